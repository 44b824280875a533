# The compiled core of the cython backend: C-level helpers shared by the kernels.
# The Python-visible kernels (def functions) follow fastmlp.backends.contract.
from cython cimport floating

cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k, const floating* A, int lda,
               const floating* B, int ldb, floating* C) noexcept nogil
cdef void bias_activation(floating* Z, const floating* b, int rows, int cols, int act) noexcept nogil
cdef void activation_grad(const floating* A, floating* dA, int rows, int cols, int act) noexcept nogil
cdef double output_loss_c(int out_act, int loss, const floating* Z, const floating* Y, floating* P,
                          floating* dZ, int rows, int cols) noexcept nogil
