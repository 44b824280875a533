"""Dense layers: the product and its neighbouring passes, fused where the shape allows."""
from fastmlp.backends.contract import RELU
from fastmlp.backends.numba.elementwise import bias_activation, relu_backward
from fastmlp.backends.numba.gemm import gemm, narrow_k, narrow_selection, weight_grads
from fastmlp.backends.numba.intrinsics import kernel_jit
from fastmlp.backends.tuning import narrow_k_applies


@kernel_jit
def linear_forward(X, W, b, act, out, narrow=True):
    """The contract's; ``narrow`` None: no narrow loop compiled in (``gemm``), else the
    ones it selects (``gemm.narrow_selection``)."""
    if narrow is not None and act == RELU and narrow_k_applies(X.shape[0], X.shape[1],
                                                               W.shape[1]):
        narrow_k(X, W, out, b, True, None, narrow)  # product, bias and ReLU in one pass
        return
    gemm(X, W, out, narrow)
    bias_activation(out, b, act)


@kernel_jit
def linear_backward_relu(X, W, dZ, dW, db, dX, narrow=True, relu_out=None):
    """The contract's linear_backward (``narrow`` as in ``linear_forward``); given
    ``relu_out`` (the ReLU output that fed this layer), dX also gets ReLU's derivative, in
    the product's pass where the shape allows."""
    if narrow is not None and narrow_k_applies(dZ.shape[0], X.shape[1], dZ.shape[1]):
        k1, k2, k3, k4 = narrow_selection(narrow).weight_grads
        weight_grads(X, dZ, dW, db, k1, k2, k3, k4)  # a narrow X: dW has few rows
    else:
        gemm(X.T, dZ, dW, narrow)
        db[:] = 0
        for i in range(dZ.shape[0]):
            for j in range(dZ.shape[1]):
                db[j] += dZ[i, j]
    if dX is None:
        return
    if narrow is not None and relu_out is not None and narrow_k_applies(dZ.shape[0], dZ.shape[1],
                                                                        W.shape[0]):
        narrow_k(dZ, W.T, dX, None, False, relu_out, narrow)
        return
    gemm(dZ, W.T, dX, narrow)
    if relu_out is not None:
        relu_backward(relu_out, dX)


#: The contract's: the same dispatcher, so a first call from Python compiles one function
#: less (a wrapper compiled at top level optimised and emitted the whole tree again: 2 s).
linear_backward = linear_backward_relu
