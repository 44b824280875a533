# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The Cython backend's one translation unit: the topic files below, included so that GCC
inlines across them. See fastmlp.backends.contract for the kernels.

Bounds checking is off: every array reaching these functions has been checked by the
contract's wrappers or built by the model. IN arrays are const memoryviews (read-only
inputs work), OUT arrays are written in place. A ``name_c`` function is the pointer-level
body of the Python-visible kernel ``name``.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, expf, fabs, isfinite, log, log1p, logf, sqrt, sqrtf, tanh
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

cnp.import_array()

cdef enum:  # contract.ACTIVATIONS, LOSSES, OPTIMIZERS
    IDENTITY, RELU, SIGMOID, TANH, SOFTMAX
cdef enum:
    CROSS_ENTROPY, MSE, L1
cdef enum:
    SGD, RMSPROP, ADAM, ADAGRAD
cdef enum:  # layout.LAYER_COLUMNS (COL_: W, B, A... name arrays here)
    FAN_IN, FAN_OUT, COL_W, COL_B, COL_Z, COL_A, COL_U, COL_OUT, COL_DZ
cdef enum:  # contract's entries of spec and of coefs
    HIDDEN_ACT, OUTPUT_ACT, LOSS
cdef enum:
    DROPOUT, L1_COEF, L2_COEF

# tuning.pxi (the tuning table: its constants and the functions that apply them, as TUNING
# and cpdef functions) is written by setup.py from fastmlp/backends/tuning.py.
include "tuning.pxi"

CODES = dict(IDENTITY=IDENTITY, RELU=RELU, SIGMOID=SIGMOID, TANH=TANH, SOFTMAX=SOFTMAX,
             CROSS_ENTROPY=CROSS_ENTROPY, MSE=MSE, L1=L1, SGD=SGD, RMSPROP=RMSPROP, ADAM=ADAM,
             ADAGRAD=ADAGRAD, FAN_IN=FAN_IN, FAN_OUT=FAN_OUT, W=COL_W, B=COL_B, Z=COL_Z,
             A=COL_A, U=COL_U, OUT=COL_OUT, DZ=COL_DZ, HIDDEN_ACT=HIDDEN_ACT,
             OUTPUT_ACT=OUTPUT_ACT, LOSS=LOSS, DROPOUT=DROPOUT, L1_COEF=L1_COEF,
             L2_COEF=L2_COEF)

include "intrinsics.pxi"
include "gemm.pxi"
include "blocked.pxi"
include "elementwise.pxi"
include "linear.pxi"
include "losses.pxi"
include "updates.pxi"
include "network.pxi"
include "narrow_pair.pxi"
include "epoch.pxi"
