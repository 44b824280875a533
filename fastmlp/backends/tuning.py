"""The compiled backends' tuning table: every size that picks a path or a tile, and the
functions that apply them.

Both compiled backends follow this table. The Numba backend compiles ``FUNCTIONS`` as
they are, into its kernels; ``setup.py`` writes ``CONSTANTS`` into ``cython/tuning.h`` and
the same functions' bodies, under ``CYTHON_SIGNATURES``, into ``cython/tuning.pxi`` for
the Cython build (tests/test_twins.py checks that the build agrees). ``narrow_pair``
runs in Python, for both backends. Numba's disk cache is keyed on every source of the
backend, this one included (``intrinsics.WholeBackendStamp``): a change here recompiles
the kernels on their next use, as the Cython build sees it itself.
The values that depend on the machine's kind (``cpu.machine_kind``: the BLAS kernels its
CPU runs) come from ``BY_KIND``: the Cython build takes the building machine's, Numba the
importing machine's (its cache entries are keyed on the CPU's features, which decide the
kind: intrinsics.py). The measurements behind each value are in docs/performance.md.
"""
from collections import namedtuple

from fastmlp.backends.contract import CROSS_ENTROPY, HIDDEN_ACT, LOSS, OUTPUT_ACT, RELU, SOFTMAX
from fastmlp.backends.cpu import machine_kind
from fastmlp.backends.layout import A, DZ, FAN_IN, FAN_OUT, U

#: This machine's kind (``cpu.KINDS``).
KIND = machine_kind()
#: Per kind, the thresholds measured on it (bench/product_paths.py). AVX-512 (OpenBLAS's
#: SkylakeX kernels, on an Ice Lake Xeon): their small-matrix kernels beat the i-k-j loop at
#: every size. AVX2 (Haswell/Zen kernels, on AMD EPYC), and the fallback: the loop wins
#: below 65536 multiply-adds. The other values were measured on AMD (on Ice Lake, narrow_k
#: still wins and narrow_n about ties: docs/performance.md). ``COPY_BT``: SkylakeX has no
#: small kernel for B transposed (dX = dZ @ W.T), so a B.T that fits the stack is copied.
BY_KIND = {"avx512": {"SMALL_GEMM": 0, "COPY_BT": 1},
           "avx2": {"SMALL_GEMM": 65536, "COPY_BT": 0},
           "generic": {"SMALL_GEMM": 65536, "COPY_BT": 0}}

#: Below this many multiply-adds (m * k * n) a plain loop, whatever the layouts, beats
#: the ~0.2 us a BLAS call costs; from here up the other paths beat it (bench/tiny_gemm.py).
TINY_GEMM = 1024
#: Below this size the i-k-j loop (it vectorises along B's rows) beats BLAS (``BY_KIND``).
SMALL_GEMM = BY_KIND[KIND]["SMALL_GEMM"]
#: Whether a BLAS product with B transposed copies B.T (at most STACK_ITEMS) to the stack
#: first, for BLAS's kernels of untransposed B (``BY_KIND``).
COPY_BT = BY_KIND[KIND]["COPY_BT"]
#: Below this size the narrow loops beat BLAS (they win at ~256k, tie at ~1M).
NARROW_GEMM = 1 << 19
#: Inner dimensions up to this take the narrow-k loop: one pass over each row of out.
NARROW_K = 4
#: At least this many output columns fill a vector; fewer take the narrow-n dot loops.
MIN_LOOP_COLUMNS = 8
#: The most float32 lanes of any machine kind's vectors (AVX-512's): the narrow pair's
#: rows of samples are padded to a multiple (``pair_columns``), at most twice
#: MIN_LOOP_COLUMNS.
PAD_LANES = 16
#: Columns of B the narrow-n dots take a pass (its copy of B.T is padded to a multiple).
DOT_COLUMNS = 4
#: Elements of a kernel's stack scratch (16 KiB float32): far below a thread's stack.
STACK_ITEMS = 4096
#: MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6), the x86 SSE control
#: word's bits that the training kernels of both backends set for their own call.
FLUSH_DENORMALS = 0x8040
#: Rows of B packed at once by the blocked product: the packed block stays in L2.
PACK_ROWS = 256
#: Per kind, the blocked product's register tile: TILE_ROWS rows of two vectors of
#: TILE_VECTOR_BYTES. Its 2 * TILE_ROWS vector sums, two vectors of B and a broadcast fit
#: the registers: AVX-512's 32 of 64 bytes, AVX2's 16 of 32 (the fallback's too: a machine
#: without AVX2 splits each vector in two).
TILE_BY_KIND = {"avx512": {"TILE_ROWS": 12, "TILE_VECTOR_BYTES": 64},
                "avx2": {"TILE_ROWS": 6, "TILE_VECTOR_BYTES": 32},
                "generic": {"TILE_ROWS": 6, "TILE_VECTOR_BYTES": 32}}
TILE_ROWS = TILE_BY_KIND[KIND]["TILE_ROWS"]
TILE_VECTOR_BYTES = TILE_BY_KIND[KIND]["TILE_VECTOR_BYTES"]
#: Bytes of the vector registers the other vector loops are written for (AVX2's, which
#: every x86-64 machine with AVX2 or AVX-512 runs).
VECTOR_BYTES = 32
#: Columns of the widest register tile (two vectors of float32): the edge scratch's width.
TILE_COLUMNS_MAX = 2 * TILE_VECTOR_BYTES // 4

#: Paths of a matrix product, as ``gemm_path`` returns them.
GEMM_PATHS = ("loop", "narrow_k", "narrow_n", "blas")
LOOP_PATH, NARROW_K_PATH, NARROW_N_PATH, BLAS_PATH = range(4)


def tile_columns(itemsize):
    """Columns of the register tile for elements of ``itemsize`` bytes: two vectors."""
    return 2 * TILE_VECTOR_BYTES // itemsize


def dot_padded(n):
    """``n`` rounded up to a multiple of DOT_COLUMNS."""
    return (n + DOT_COLUMNS - 1) // DOT_COLUMNS * DOT_COLUMNS


def pair_columns(n):
    """The narrow pair's row length for n samples: ``n`` rounded up to whole vectors, so
    that Numba's loops along the rows have no scalar tail (LLVM's kept every weight as a
    scalar beside its broadcast, and spilled them)."""
    return (n + PAD_LANES - 1) // PAD_LANES * PAD_LANES


def narrow_k_applies(m, k, n):
    """Whether an (m, k) @ (k, n) product runs the narrow-k loop; also the weight gradient
    of a layer with k inputs over m samples, whose k + 1 sums of n live on the stack."""
    return (TINY_GEMM <= m * k * n < NARROW_GEMM and k <= NARROW_K and n >= MIN_LOOP_COLUMNS
            and (NARROW_K + 1) * n <= STACK_ITEMS)


def gemm_path(m, k, n, trans_a, trans_b):
    """The path (``GEMM_PATHS``) of out (m, n) = op(A) @ op(B), inner dimension k, where
    ``trans_a`` / ``trans_b`` say that A / B is a transposed view of a C-contiguous array."""
    size = m * k * n
    if size < TINY_GEMM:
        return LOOP_PATH
    if narrow_k_applies(m, k, n):
        return NARROW_K_PATH
    if size < NARROW_GEMM and n < MIN_LOOP_COLUMNS and (
            m * n if trans_a else k * dot_padded(n)) <= STACK_ITEMS:
        return NARROW_N_PATH
    if size < SMALL_GEMM and n >= MIN_LOOP_COLUMNS and not trans_b:
        return LOOP_PATH
    return BLAS_PATH


def path_name(m, k, n, trans_a=False, trans_b=False):
    """The name (``GEMM_PATHS``) of the path ``gemm_path`` picks for the shape."""
    return GEMM_PATHS[gemm_path(m, k, n, trans_a, trans_b)]


def dense_products(batch, fan_in, fan_out):
    """A dense layer's products over ``batch`` rows (X, W and dZ C-contiguous), each as its
    path, inner dimension and whether A is transposed: ``"XW"`` (forward), ``"dW"`` (X.T @
    dZ, or the one-pass ``"weight_grads"`` for a narrow X, whose k is the fan-in) and
    ``"dX"`` (dZ @ W.T)."""
    dW = (("weight_grads", fan_in, False) if narrow_k_applies(batch, fan_in, fan_out)
          else (path_name(fan_in, batch, fan_out, True), batch, True))
    return dict(XW=(path_name(batch, fan_in, fan_out), fan_in, False), dW=dW,
                dX=(path_name(batch, fan_out, fan_in, False, True), fan_out, False))


def dense_paths(batch, fan_in, fan_out):
    """The paths of ``dense_products``."""
    return {name: path for name, (path, _, _) in dense_products(batch, fan_in, fan_out).items()}


def layer_paths(sizes, batch):
    """The paths of a layer-by-layer training step's products, per layer of ``sizes`` over
    ``batch`` rows: ``dense_paths``, but for the first layer without ``"dX"``. (A
    ``narrow_pair`` network runs its own kernels instead.)"""
    paths = [dense_paths(batch, fan_in, fan_out) for fan_in, fan_out in zip(sizes[:-1], sizes[1:])]
    del paths[0]["dX"]
    return paths


#: The paths of ``layer_paths`` that run a narrow loop (the rest: the i-k-j loop or BLAS).
NARROW_LOOPS = ("narrow_k", "narrow_n", "weight_grads")


def narrow_loops(n_samples, layers, training=True):
    """Whether a layer-by-layer pass over ``n_samples`` rows of the network whose layout
    table is ``layers`` (a training step, or with ``training`` False inference) runs any
    narrow loop. When none does, the Numba backend compiles its network kernels without
    them (their ``narrow`` argument None): most of a first step's compile time."""
    sizes = [int(layers[0, FAN_IN])] + [int(f) for f in layers[:, FAN_OUT]]
    return any(path in NARROW_LOOPS for products in layer_paths(sizes, n_samples)
               for product, path in products.items() if training or product == "XW")


#: The narrow loops a Numba kernel compiles in (its ``narrow``), each flag None (not
#: compiled in) or True: the narrow-k loop and the one-pass weight grads, each per k = 1
#: to NARROW_K (a tuple of flags), and the narrow-n loops for a C-contiguous and for a
#: transposed A.
NarrowLoops = namedtuple("NarrowLoops", "narrow_k weight_grads narrow_n narrow_n_transposed")


def narrow_selection(products):
    """The Numba kernels' ``narrow`` for a call whose products are ``products`` ((path,
    inner dimension, A transposed) triples, as ``dense_products`` gives them): None when
    none takes a narrow loop, else ``NarrowLoops`` with True for the loops they take."""
    if not any(path in NARROW_LOOPS for path, _, _ in products):
        return None

    def per_k(loop):
        taken = {k for path, k, _ in products if path == loop}
        return tuple(True if k in taken else None for k in range(1, NARROW_K + 1))

    def narrow_n(transposed):
        return True if ("narrow_n", transposed) in {(p, t) for p, _, t in products} else None

    return NarrowLoops(per_k("narrow_k"), per_k("weight_grads"), narrow_n(False), narrow_n(True))


def describe():
    """This process's machine kind and the thresholds it chose, for the report."""
    return dict(kind=KIND, **{name: CONSTANTS[name] for name in (
        "TINY_GEMM", "SMALL_GEMM", "NARROW_GEMM", "NARROW_K", "MIN_LOOP_COLUMNS", "TILE_ROWS",
        "TILE_VECTOR_BYTES", "COPY_BT")})


def narrow_pair(n_samples, layers, spec):
    """``(inputs, classes)`` when a training step runs the narrow-pair kernels, else ``()``:
    one ReLU hidden layer between at most NARROW_K inputs and classes under softmax
    cross-entropy, no dropout, and a batch that fills vectors and whose rows (X.T, the
    softmax's scratch), ``pair_columns`` long, fit the stack. The hidden layer's gradient
    region follows its activations' (``layout.plan``): the hidden layer's rows of
    ``pair_columns`` take both (``MIN_LOOP_COLUMNS`` samples are half of PAD_LANES at
    least). Every network entry point of both backends asks."""
    if len(layers) != 2:
        return ()
    kin, kout, hidden = int(layers[0, FAN_IN]), int(layers[1, FAN_OUT]), int(layers[0, FAN_OUT])
    if (spec[HIDDEN_ACT] == RELU and spec[OUTPUT_ACT] == SOFTMAX and spec[LOSS] == CROSS_ENTROPY
            and layers[0, U] < 0 and layers[0, DZ] == layers[0, A] + n_samples * hidden
            and kin <= NARROW_K and kout <= NARROW_K and n_samples >= MIN_LOOP_COLUMNS
            and max(kin, kout + 2) * pair_columns(n_samples) <= STACK_ITEMS):
        return kin, kout
    return ()


#: The constants the Cython build reads (setup.py writes them into cython/tuning.pxi).
CONSTANTS = {name: globals()[name] for name in (
    "TINY_GEMM", "SMALL_GEMM", "NARROW_GEMM", "NARROW_K", "MIN_LOOP_COLUMNS", "DOT_COLUMNS",
    "STACK_ITEMS", "PAD_LANES", "PACK_ROWS", "TILE_ROWS", "TILE_COLUMNS_MAX", "VECTOR_BYTES",
    "LOOP_PATH", "NARROW_K_PATH", "NARROW_N_PATH", "BLAS_PATH", "TILE_VECTOR_BYTES", "COPY_BT",
    "FLUSH_DENORMALS")}
#: The functions the Numba kernels call (compiled into them)...
FUNCTIONS = (tile_columns, dot_padded, pair_columns, narrow_k_applies, gemm_path)
#: ... and the C signatures under which setup.py gives their bodies, as they are, to the
#: Cython build (cython/tuning.pxi; ``inline``: the product paths call them in every call).
CYTHON_SIGNATURES = {
    "tile_columns": "cdef inline int tile_columns(int itemsize) noexcept nogil",
    "dot_padded": "cdef inline long long dot_padded(long long n) noexcept nogil",
    "pair_columns": "cdef inline long long pair_columns(long long n) noexcept nogil",
    "narrow_k_applies": "cdef inline bint narrow_k_applies(long long m, long long k, "
                        "long long n) noexcept nogil",
    "gemm_path": "cdef inline int gemm_path(long long m, long long k, long long n, "
                 "bint trans_a, bint trans_b) noexcept nogil",
}
