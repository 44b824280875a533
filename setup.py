"""Build script: lists the compiled extension; metadata lives in pyproject.toml.

The Cython backend is built with OpenMP when the compiler accepts ``-fopenmp``
(checked by compiling a tiny program) and serially, with a warning, otherwise.
It is tuned for the building machine with ``-march=native`` unless
``FASTMLP_NO_NATIVE=1`` is set (do that when building wheels for other machines).
"""
import os
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_PROBE = "#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n"


def compiler_accepts(compiler, flags):
    """Whether ``compiler`` builds and links a tiny OpenMP program with ``flags``."""
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "probe.c")
        with open(source, "w") as handle:
            handle.write(OPENMP_PROBE)
        command = [compiler, source, "-o", os.path.join(folder, "probe"), *flags]
        return subprocess.run(command, capture_output=True).returncode == 0


class BuildExt(build_ext):
    def build_extensions(self):
        compiler = self.compiler.compiler_so[0]
        # -fno-math-errno: sqrt need not set errno, so the optimizer loops have no branch
        # and vectorise (the results are the same). -fno-wrapv undoes the -fwrapv of
        # Python's own flags (nothing here relies on signed overflow wrapping): with it,
        # GCC kept the blocked product's int indices 32-bit in the loop (one core: 38-44
        # GFLOP/s against 60-75).
        flags = ["-O3", "-fno-math-errno", "-fno-wrapv"] + (
            [] if os.environ.get("FASTMLP_NO_NATIVE") == "1" else ["-march=native"])
        openmp = ["-fopenmp"] if compiler_accepts(compiler, ["-fopenmp"]) else []
        if not openmp:
            print("warning: the C compiler does not support OpenMP; building the cython "
                  "backend serially", file=sys.stderr)
        for extension in self.extensions:
            extension.extra_compile_args += flags + openmp
            extension.extra_link_args += openmp
        super().build_extensions()


def extensions():
    import numpy
    from Cython.Build import cythonize

    kernels = Extension("fastmlp.backends._cython_kernels",
                        ["fastmlp/backends/_cython_kernels.pyx"],
                        include_dirs=[numpy.get_include()],
                        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
    return cythonize([kernels], compiler_directives={"language_level": 3})


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
