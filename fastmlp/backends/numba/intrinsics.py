"""What Numba's loops cannot say, as LLVM IR, and the compile flags of every kernel.

Cheap C-contiguous views (``matrix_view``, ``flat_view``: a struct fill, where Numba's
``reshape`` calls a general helper), a scratch matrix on the stack (``stack_matrix``), a
power of two from its exponent bits (``pow2``, for a vectorised exp) and a number's split
into mantissa and exponent (``log_split``, for a vectorised log), the register tile of the
blocked product (``tile``) and a copy between arrays of one shape (``copy_into``). Under
``NUMBA_DISABLE_JIT=1`` they are plain NumPy. Also the decorators of every kernel: the
backend's exports (``kernel_jit``) and the helpers only compiled code calls (``jit`` and the
others, ``CompiledOnly``).

``FASTMLP_FASTMATH=1`` compiles with ``fastmath=True`` (results then differ from the
NumPy reference in the last bits) and without the disk cache; the default keeps IEEE
semantics.
"""
import hashlib
import math
import os
import platform
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import config, njit, types
from numba.core import caching, cgutils
from numba.core.codegen import get_host_cpu_features
from numba.core.registry import CPUDispatcher
from numba.extending import intrinsic, overload, register_jitable
from numba.np.arrayobj import make_array, populate_array

from fastmlp.backends import tuning
from fastmlp.backends.cpu import kind_of
from fastmlp.backends.tuning import STACK_ITEMS, TILE_ROWS, TILE_VECTOR_BYTES, tile_columns

FASTMATH = os.environ.get("FASTMLP_FASTMATH") == "1"


def cache_kind():
    """The machine kind of the CPU features Numba keys its cache entries on (with its
    host CPU's name): an entry compiled on another kind of machine never matches."""
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else \
        get_host_cpu_features()
    return kind_of({f[1:] for f in features.split(",") if f.startswith("+")})


def cache_follows_kind():
    """Whether Numba's cache key decides tuning.KIND: the host CPU decides both, unless
    FASTMLP_MACHINE_KIND or NUMBA_CPU_FEATURES stands in for it; then they must agree."""
    stand_in = "FASTMLP_MACHINE_KIND" in os.environ or config.CPU_FEATURES is not None
    return not stand_in or tuning.KIND == cache_kind()


def sources_digest(folders=(Path(__file__).parent, Path(__file__).parent.parent)):
    """One hash of every module a kernel's machine code can depend on: this package's and
    the backend modules it takes constants and functions from (tuning, layout, cpu ...)."""
    digest = hashlib.sha256()
    for path in sorted(p for folder in folders for p in folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.digest()


class WholeBackendStamp:
    """Cache locator mixin: a kernel's cache entry is stale when any source of the backend
    changed. Numba's own stamp hashes the kernel's file only, so an edit of a callee in
    another module, or of tuning.py, would go on running the old machine code."""

    package, digest = str(Path(__file__).parent), sources_digest()

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != cls.package:
            return None
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        return super().get_source_stamp(), self.digest


# Numba asks its locators in order, the first that can cache wins: these three are its own
# (NUMBA_CACHE_DIR, the package's __pycache__, the user's cache folder) with the stamp above.
LOCATORS = tuple(type("Backend" + base.__name__, (WholeBackendStamp, base), {})
                 for base in (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
                              caching.UserWideCacheLocator))
caching.CacheImpl._locator_classes[:0] = LOCATORS

# Numba's disk cache is keyed on the bytecode, not on the compile flags: a fastmath build
# would be loaded by a later default run (and back), so only the default build is cached;
# nor on tuning.py's constants, which follow the machine kind.
CACHE = not FASTMATH and cache_follows_kind()


class CompiledOnly(CPUDispatcher):
    """The dispatcher of a function that only compiled code calls: compiled without the
    wrappers a call from Python goes through (CPython's and a C function's): a tenth of a
    cold step's compile (bench/compile_time.py, spiral b300 f32 6.7-6.8 -> 5.9-6.2 s).
    Called from Python, it runs a twin compiled with them and not cached: Numba's cache keys
    an entry on the signature, not on the wrappers, and a twin that loaded this one's
    machine code would jump into a wrapper that is not there."""

    def __call__(self, *args, **kwargs):
        return self.python_twin()(*args, **kwargs)

    def python_twin(self):
        """A dispatcher of this function that Python can call (made once)."""
        twin = self.__dict__.get("_python_twin")
        if twin is None:
            twin = self._python_twin = CPUDispatcher(
                self.py_func, self.locals, dict(self.targetoptions, no_cpython_wrapper=False))
        return twin


def compiled(python_calls=False, **flags):
    """A decorator compiling with Numba's ``flags``: a kernel that Python calls (the
    backend's exports) if ``python_calls``, else a ``CompiledOnly`` helper. Neither
    compiles the wrapper a C caller takes (``cfunc``'s): nothing here is one.
    error_model="numpy": division follows IEEE (inf/nan) like the NumPy reference; the
    default "python" model checks every divisor for zero, a branch that stops
    vectorisation."""
    options = dict(error_model="numpy", no_cfunc_wrapper=True, **flags)
    if python_calls:
        return njit(cache=CACHE, **options)

    def decorate(function):  # njit's, with the dispatcher class CompiledOnly
        if config.DISABLE_JIT:
            return function
        dispatcher = CompiledOnly(function, {},
                                  dict(options, nopython=True, no_cpython_wrapper=True))
        if CACHE:
            dispatcher.enable_caching()
        return dispatcher

    return decorate


jit = compiled(fastmath=FASTMATH)
kernel_jit = compiled(True, fastmath=FASTMATH)
# A thin level of the call tree, inlined into its callers by Numba: every compiled function
# is its own LLVM module, which links its callees' code in and optimises and emits all of
# it again, so each level of a deep tree costs seconds of a cold compile. An inlined body's
# tests of its arguments against None are not pruned (they are no longer the compiled
# function's arguments), so a branch on None stays in a function compiled apart; and it
# takes its caller's flags: only for bodies whose callers are plain ``jit`` ones too.
inline_jit = compiled(fastmath=FASTMATH, inline="always")
inline_kernel_jit = compiled(True, fastmath=FASTMATH, inline="always")
# FMA contraction, for the product loops: their results differ from np.dot's in the last
# bits anyway.
contract_jit = compiled(fastmath=FASTMATH or {"contract"})
# Reassociation too, for the dot products: a sum in order cannot be split over vector lanes.
reassoc_jit = compiled(fastmath=FASTMATH or {"contract", "reassoc"})

for _function in tuning.FUNCTIONS:  # the kernels call the tuning table's functions
    register_jitable(_function)


def _view_codegen(make_shape):
    """Codegen of a view sharing the source's data and owner, with shape ``make_shape``."""

    def codegen(context, builder, signature, args):
        source_type, view_type = signature.args[0], signature.return_type
        source = make_array(source_type)(context, builder, args[0])
        view = make_array(view_type)(context, builder)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(
            context.get_data_type(source_type.dtype)))
        shape = make_shape(builder, source, args)
        strides = [itemsize]
        for size in reversed(shape[1:]):  # C order: each stride is the next one times its size
            strides.insert(0, builder.mul(strides[0], size))
        populate_array(view, data=source.data, shape=cgutils.pack_array(builder, shape),
                       strides=cgutils.pack_array(builder, strides), itemsize=itemsize,
                       meminfo=source.meminfo, parent=source.parent)
        result = view._getvalue()
        context.nrt.incref(builder, view_type, result)  # the view is a new reference
        return result

    return codegen


def _is_c_array(value, ndim=None):
    return (isinstance(value, types.Array) and value.layout == "C"
            and (ndim is None or value.ndim == ndim))


@intrinsic
def _matrix_view(typingctx, flat, rows, cols):
    if not _is_c_array(flat, 1):
        return None
    signature = types.Array(flat.dtype, 2, "C")(flat, types.intp, types.intp)
    return signature, _view_codegen(lambda builder, source, args: [args[1], args[2]])


@intrinsic
def _flat_view(typingctx, array):
    if not _is_c_array(array):
        return None
    signature = types.Array(array.dtype, 1, "C")(array)
    return signature, _view_codegen(lambda builder, source, args: [source.nitems])


def _unowned(context, builder, kind, value):
    """``value`` of type ``kind`` with every array in it (it may be a tuple) unowned."""
    if isinstance(kind, types.Array):
        source = make_array(kind)(context, builder, value)
        view = make_array(kind)(context, builder)
        populate_array(view, data=source.data, shape=source.shape, strides=source.strides,
                       itemsize=source.itemsize, meminfo=None)
        return view._getvalue()  # no meminfo: nothing to count, nothing to free
    if isinstance(kind, types.BaseTuple):
        for i, item in enumerate(kind):
            value = builder.insert_value(value, _unowned(context, builder, item,
                                                         builder.extract_value(value, i)), i)
    return value


@intrinsic
def _borrowed(typingctx, arrays):
    kinds = arrays.types if isinstance(arrays, types.BaseTuple) else (arrays,)
    if not all(isinstance(kind, (types.Array, types.NoneType)) for kind in kinds):
        return None
    return arrays(arrays), lambda context, builder, signature, args: _unowned(
        context, builder, arrays, args[0])


@intrinsic
def _stack_matrix(typingctx, like, rows, cols):
    if not isinstance(like, types.Array):
        return None
    signature = types.Array(like.dtype, 2, "C")(like, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        view_type = signature.return_type
        element = context.get_data_type(like.dtype)
        # alloca_once puts the buffer in the entry block of the calling function: it lives
        # as long as that call, and a loop calling this reuses it.
        data = cgutils.alloca_once(builder, element,
                                   size=context.get_constant(types.intp, STACK_ITEMS))
        view = make_array(view_type)(context, builder)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(element))
        populate_array(view, data=data, shape=cgutils.pack_array(builder, [args[1], args[2]]),
                       strides=cgutils.pack_array(builder, [builder.mul(itemsize, args[2]),
                                                            itemsize]),
                       itemsize=itemsize, meminfo=None)
        return view._getvalue()  # no meminfo: nothing to count, nothing to free

    return signature, codegen


@intrinsic
def _pow2(typingctx, n):
    if n not in (types.float32, types.float64):
        return None
    bits, mantissa, bias = (32, 23, 127) if n == types.float32 else (64, 52, 1023)

    def codegen(context, builder, signature, args):
        integer = ir.IntType(bits)
        exponent = builder.add(builder.fptosi(args[0], integer), ir.Constant(integer, bias))
        field = builder.shl(exponent, ir.Constant(integer, mantissa))
        return builder.bitcast(field, context.get_value_type(n))

    return n(n), codegen


@intrinsic
def _log_split(typingctx, v):
    """(m, e) with v = m * 2**e, m in [sqrt(1/2), sqrt(2)) and e integral, both of v's type,
    for a positive normal v: from its bits, as fdlibm's log reduces its argument. e becomes a
    float by adding the bits of 1.5 * 2**mantissa (no int-to-float conversion: AVX2 has none
    for int64)."""
    if v not in (types.float32, types.float64):
        return None
    bits, mantissa = (32, 23) if v == types.float32 else (64, 52)
    constants = np.array([2 ** -0.5, 1.5 * 2 ** mantissa], v.name)
    (low_bits, magic_bits), magic = constants.view(f"i{bits // 8}").tolist(), constants[1]

    def codegen(context, builder, signature, args):
        integer, real = ir.IntType(bits), context.get_value_type(v)
        low = ir.Constant(integer, low_bits)
        shifted = builder.sub(builder.bitcast(args[0], integer), low)
        fraction = builder.add(builder.and_(shifted, ir.Constant(integer, 2 ** mantissa - 1)),
                               low)
        exponent = builder.add(builder.ashr(shifted, ir.Constant(integer, mantissa)),
                               ir.Constant(integer, magic_bits))
        exponent = builder.fsub(builder.bitcast(exponent, real), ir.Constant(real, magic))
        return context.make_tuple(builder, signature.return_type,
                                  (builder.bitcast(fraction, real), exponent))

    return types.UniTuple(v, 2)(v), codegen


@intrinsic
def _tile(typingctx, a_pack, b_pack, b_offset, depth, out, row, col, accumulate):
    """out[row:row + TILE_ROWS, col:col + NR] (+)= the product of a packed row block and a
    packed panel, summed in 2 * TILE_ROWS vector registers: the Cython backend's C tile.

    In LLVM IR because Numba's loop vectorizer only vectorises an innermost loop (the sums
    would go through memory) and its SLP vectorizer is off by default. Nothing is
    bounds-checked: the caller passes a whole tile inside ``out`` and packs of ``depth`` rows.
    """
    arrays = (_is_c_array(a_pack, 1), _is_c_array(b_pack, 1), _is_c_array(out, 2))
    if not all(arrays) or out.dtype not in (types.float32, types.float64) \
            or not a_pack.dtype == b_pack.dtype == out.dtype:
        return None
    signature = types.void(a_pack, b_pack, types.intp, types.intp, out, types.intp, types.intp,
                           types.boolean)

    def codegen(context, builder, signature, args):
        a_arg, b_arg, b_offset, depth, out_arg, row, col, accumulate = args
        element = context.get_data_type(out.dtype)
        itemsize = context.get_abi_sizeof(element)
        lanes = TILE_VECTOR_BYTES // itemsize
        vector = ir.VectorType(element, lanes)
        index = context.get_value_type(types.intp)
        a = make_array(a_pack)(context, builder, a_arg).data
        b = builder.gep(make_array(b_pack)(context, builder, b_arg).data, [b_offset])
        target = make_array(out)(context, builder, out_arg)
        stride = cgutils.unpack_tuple(builder, target.shape, 2)[1]
        multiply_add = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [vector] * 3),
            f"llvm.fmuladd.v{lanes}f{8 * itemsize}")
        # Sums in allocas: LLVM's mem2reg keeps them in registers across the loop.
        sums = [[cgutils.alloca_once_value(builder, ir.Constant(vector, None)) for _ in range(2)]
                for _ in range(TILE_ROWS)]
        with cgutils.for_range(builder, depth, intp=index) as loop:
            panel_row = builder.gep(b, [builder.mul(loop.index, ir.Constant(index, 2 * lanes))])
            halves = [builder.load(builder.bitcast(builder.gep(panel_row, [ir.Constant(index, h)]),
                                                   vector.as_pointer()), align=itemsize)
                      for h in (0, lanes)]
            a_row = builder.gep(a, [builder.mul(loop.index, ir.Constant(index, TILE_ROWS))])
            for r in range(TILE_ROWS):
                value = builder.load(builder.gep(a_row, [ir.Constant(index, r)]))
                splat = builder.shuffle_vector(
                    builder.insert_element(ir.Constant(vector, ir.Undefined), value,
                                           ir.Constant(ir.IntType(32), 0)),
                    ir.Constant(vector, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32),
                                                                                 lanes), None))
                for h in range(2):
                    builder.store(builder.call(multiply_add, [splat, halves[h],
                                                              builder.load(sums[r][h])]),
                                  sums[r][h])
        for r in range(TILE_ROWS):
            start = builder.add(builder.mul(builder.add(row, ir.Constant(index, r)), stride), col)
            for h in range(2):
                place = builder.bitcast(
                    builder.gep(target.data, [builder.add(start, ir.Constant(index, h * lanes))]),
                    vector.as_pointer())
                with builder.if_then(accumulate):
                    builder.store(builder.fadd(builder.load(sums[r][h]),
                                               builder.load(place, align=itemsize)), sums[r][h])
                builder.store(builder.load(sums[r][h]), place, align=itemsize)
        return context.get_dummy_value()

    return signature, codegen


X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _mxcsr(builder, instruction, cell):
    """``stmxcsr`` (MXCSR into the i32 ``cell``) or ``ldmxcsr`` (``cell`` into MXCSR)."""
    pointer = builder.bitcast(cell, ir.IntType(8).as_pointer())
    function = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [pointer.type]),
        f"llvm.x86.sse.{instruction}")
    builder.call(function, [pointer])


@intrinsic
def _denormals_off(typingctx):
    """Sets flush-to-zero and denormals-are-zero in this thread's MXCSR; returns its old
    value, for ``fp_control_restore``. A no-op returning 0 off x86."""

    def codegen(context, builder, signature, args):
        word = ir.IntType(32)
        if not X86:
            return ir.Constant(word, 0)
        cell = cgutils.alloca_once(builder, word)
        _mxcsr(builder, "stmxcsr", cell)
        old = builder.load(cell)
        builder.store(builder.or_(old, ir.Constant(word, tuning.FLUSH_DENORMALS)), cell)
        _mxcsr(builder, "ldmxcsr", cell)
        return old

    return types.uint32(), codegen


@intrinsic
def _fp_control_restore(typingctx, old):
    """Puts back the MXCSR value ``denormals_off`` returned."""
    if old != types.uint32:
        return None

    def codegen(context, builder, signature, args):
        if X86:
            _mxcsr(builder, "ldmxcsr", cgutils.alloca_once_value(builder, args[0]))
        return context.get_dummy_value()

    return types.void(old), codegen


def copy_into(source, out):
    """out[...] = source, for 1-D or 2-D arrays of one shape. Not a slice assignment in the
    kernels: Numba compiles that with a shape-mismatch message (str and join of tuples),
    seconds of every cold process's compile."""
    out[...] = source


@overload(copy_into, jit_options={"error_model": "numpy"})
def _copy_into(source, out):
    if out.ndim == 1:
        def copy_rows(source, out):
            for i in range(out.shape[0]):
                out[i] = source[i]
        return copy_rows

    def copy_matrix(source, out):
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                out[i, j] = source[i, j]
    return copy_matrix


if config.DISABLE_JIT:
    def pow2(n):
        """2 ** n for an integral float n in the normal exponent range of its own type."""
        return type(n)(2.0 ** int(n))

    def log_split(v):
        """(m, e) with v = m * 2**e, m in [sqrt(1/2), sqrt(2)), for a positive normal v."""
        m, e = math.frexp(v)
        m, e = (2 * m, e - 1) if m < 2 ** -0.5 else (m, e)
        return type(v)(m), type(v)(e)


    def stack_matrix(like, rows, cols):
        """A (rows, cols) scratch matrix of ``like``'s dtype, rows * cols <= STACK_ITEMS."""
        return np.empty((rows, cols), like.dtype)

    def matrix_view(flat, rows, cols):
        """``flat[:rows * cols]`` as a (rows, cols) C-contiguous view."""
        return flat[:rows * cols].reshape((rows, cols))

    def flat_view(array):
        """A C-contiguous array as a 1-D view."""
        return array.reshape(-1)

    def borrowed(arrays):
        """An array, or a tuple of arrays (and Nones), as views without an owner: Numba
        counts references to every view of an owned array (an atomic add, then subtract,
        20-odd cycles each), a third of the XOR step's compiled time (perf). For a kernel's
        arguments, which its Python caller holds for the whole call; the views the kernel
        makes of them are not counted either."""
        return arrays

    def tile(a_pack, b_pack, b_offset, depth, out, row, col, accumulate):
        """out[row:row + TILE_ROWS, col:col + NR] (+)= a_pack's first depth x TILE_ROWS
        block (p-major) transposed @ b_pack's depth x NR panel at b_offset."""
        columns = tile_columns(out.itemsize)
        a = a_pack[:depth * TILE_ROWS].reshape(depth, TILE_ROWS)
        b = b_pack[b_offset:b_offset + depth * columns].reshape(depth, columns)
        block = out[row:row + TILE_ROWS, col:col + columns]
        block[...] = (block if accumulate else 0) + a.T @ b

    def denormals_off():
        """Plain Python cannot reach MXCSR: nothing to set (NumPy's own arithmetic)."""
        return np.uint32(0)

    def fp_control_restore(old):
        pass
else:
    matrix_view, flat_view, stack_matrix, pow2 = _matrix_view, _flat_view, _stack_matrix, _pow2
    log_split = _log_split
    borrowed = _borrowed
    denormals_off, fp_control_restore = _denormals_off, _fp_control_restore
    tile = _tile
