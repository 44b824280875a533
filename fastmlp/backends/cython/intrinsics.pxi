# The C helpers of intrinsics.h (vector registers, bit casts), and their fused-type wrappers.

cdef extern from "intrinsics.h":
    unsigned int denormals_off() noexcept nogil
    void fp_control_restore(unsigned int old) noexcept nogil
    float pow2_f32(float t) noexcept nogil
    double pow2_f64(double t) noexcept nogil
    float zero_where_f32(bint below, float v) noexcept nogil
    double zero_where_f64(bint below, double v) noexcept nogil
    float log_split_f32(float v, float* e) noexcept nogil
    double log_split_f64(double v, double* e) noexcept nogil
    const double LOG2E, LN2_HI, LN2_LO
    const float MAGIC_F32
    const double MAGIC_F64
    void dots_f32(const float* a0, const float* a1, const float* bt, int k, float* c0,
                  float* c1, int cols) noexcept nogil
    void dots_f64(const double* a0, const double* a1, const double* bt, int k, double* c0,
                  double* c1, int cols) noexcept nogil
    void tile_f32(const float* a_pack, const float* panel, int kc, float* c, int ldc,
                  bint accumulate) noexcept nogil
    void tile_f64(const double* a_pack, const double* panel, int kc, double* c, int ldc,
                  bint accumulate) noexcept nogil


cdef inline floating zero_where(bint condition, floating v) noexcept nogil:
    """+0 where condition, else v, branch-free (see zero_where_f32)."""
    if floating is float:
        return zero_where_f32(condition, v)
    else:
        return zero_where_f64(condition, v)


cdef inline floating log_split(floating v, floating* e) noexcept nogil:
    """v's mantissa in [sqrt(1/2), sqrt(2)), its exponent into e (see log_split_f32)."""
    if floating is float:
        return log_split_f32(v, e)
    else:
        return log_split_f64(v, e)


cdef inline void dots(const floating* a0, const floating* a1, const floating* bt, int k,
                      floating* c0, floating* c1, int cols) noexcept nogil:
    """Two rows of A dotted with DOT_COLUMNS rows of B.T (see dots_f32)."""
    if floating is float:
        dots_f32(a0, a1, bt, k, c0, c1, cols)
    else:
        dots_f64(a0, a1, bt, k, c0, c1, cols)


cdef inline void tile(const floating* a_pack, const floating* panel, int kc, floating* c,
                      int ldc, bint accumulate) noexcept nogil:
    if floating is float:
        tile_f32(a_pack, panel, kc, c, ldc, accumulate)
    else:
        tile_f64(a_pack, panel, kc, c, ldc, accumulate)
