"""One log line, once per process, when Numba starts compiling a fastmlp kernel.

A first step can wait many seconds on the compiler; a cache miss is the only moment to
say so (a kernel loaded from Numba's disk cache compiles nothing, and says nothing). The
line goes to the ``fastmlp`` logger at WARNING, the level Python prints when logging is
not configured (``logging.lastResort``): a silent multi-second stall looks like a hang.
``logging.getLogger("fastmlp").setLevel(logging.ERROR)`` silences it.
"""
import logging
import sys

from numba.core import event, types

LOGGER = logging.getLogger("fastmlp")


class CompileNotice(event.Listener):
    """Logs the first compile of a kernel (a module-level dispatcher) of ``package``, then
    stays quiet. Numba's own helpers compiled for it (overload bodies) do not count."""

    def __init__(self, package="fastmlp."):
        self.package, self.said = package, False

    def on_start(self, ev):
        dispatcher = ev.data["dispatcher"]
        module, name = dispatcher.py_func.__module__, dispatcher.py_func.__name__
        if self.said or not module.startswith(self.package) \
                or getattr(sys.modules.get(module), name, None) is not dispatcher:
            return
        self.said = True
        arrays = [a for a in ev.data["args"] if isinstance(a, types.Array)]
        where = dispatcher._cache.cache_path
        LOGGER.warning("compiling numba kernels for %s (first use: this takes a while); %s",
                       arrays[0].dtype if arrays else "scalars",
                       f"they are cached in {where} afterwards" if where else
                       "they are not cached (FASTMLP_FASTMATH=1 or another machine kind)")

    def on_end(self, ev):
        pass


NOTICE = CompileNotice()
event.register("numba:compile", NOTICE)
