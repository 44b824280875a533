"""The machine kind the tuning table is chosen for, from the features the CPU reports.

The kind names the vector width the CPU offers and, mostly, the OpenBLAS kernels it runs
(OpenBLAS picks them by much the same features at load time): ``"avx512"`` (SkylakeX and
later, whose small-matrix kernels make a small product's BLAS call cheap), ``"avx2"``
(Haswell and Zen kernels) and ``"generic"`` (anything else, or a CPU that reports nothing
we can read). Not always: OpenBLAS 0.3.30-0.3.31 runs its Haswell kernels on AMD's Zen 5,
whose AVX-512 makes it ``"avx512"`` here; the thresholds held there all the same
(docs/performance.md, "A CPU whose flags and OpenBLAS's kernels disagree").
``FASTMLP_MACHINE_KIND`` sets the kind instead (to build for another machine). Standard
library only: setup.py loads this file by its path, without importing fastmlp.
"""
import os

#: Kinds from the most specific down, with the CPU features (Linux /proc/cpuinfo and LLVM
#: use the same names for these) each needs; ``"generic"`` needs none.
KIND_FEATURES = {"avx512": {"avx512f", "avx512bw", "avx512dq", "avx512vl", "fma"},
                 "avx2": {"avx2", "fma"}, "generic": set()}
KINDS = tuple(KIND_FEATURES)


def kind_of(features):
    """The first kind of ``KINDS`` whose features ``features`` (a set of names) all has."""
    return next(kind for kind, needs in KIND_FEATURES.items() if needs <= set(features))


def cpu_features(path="/proc/cpuinfo"):
    """The feature flags of the first CPU in ``path`` (Linux), or an empty set."""
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine_kind():
    """``FASTMLP_MACHINE_KIND`` if set (one of ``KINDS``), else this CPU's kind."""
    chosen = os.environ.get("FASTMLP_MACHINE_KIND")
    if chosen is None:
        return kind_of(cpu_features())
    if chosen not in KINDS:
        raise ValueError(f"FASTMLP_MACHINE_KIND must be one of {', '.join(KINDS)}, "
                         f"got {chosen!r}")
    return chosen
