"""Cheap C-contiguous views for the Numba kernels, a small scratch matrix on the stack, and
a power of two built from its exponent bits (what a vectorised exp needs).

Numba's ``reshape`` calls a general C helper that works out strides for any
layout: 40-50 ns a call, measured in a compiled loop. The network kernels take
~17 views of the flat buffers per step, which made them ~0.8 us slower than
the kernels they call at the XOR size. These views of contiguous arrays are a
struct fill (~1 ns). Under ``NUMBA_DISABLE_JIT=1`` they are plain ``reshape``.
"""
import numpy as np
from llvmlite import ir
from numba import config, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


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


#: Capacity of ``stack_matrix`` in elements (16 KiB float32, 32 KiB float64: far below the
#: thread's stack).
STACK_ITEMS = 4096


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


if config.DISABLE_JIT:
    def pow2(n):
        """2 ** n for an integral float n in the normal exponent range of its own type."""
        return type(n)(2.0 ** int(n))


    def stack_matrix(like, rows, cols):
        """A (rows, cols) scratch matrix of ``like``'s dtype, rows * cols <= STACK_ITEMS."""
        return np.empty((rows, cols), like.dtype)

    def matrix_view(flat, rows, cols):
        """``flat[:rows * cols]`` as a (rows, cols) C-contiguous view."""
        return flat[:rows * cols].reshape((rows, cols))

    def flat_view(array):
        """A C-contiguous array as a 1-D view."""
        return array.reshape(-1)
else:
    matrix_view, flat_view, stack_matrix, pow2 = _matrix_view, _flat_view, _stack_matrix, _pow2
