/* The C the Cython kernels call: what Cython cannot say (vector registers, bit casts).
   GCC/Clang vector extensions; each function written for float (_f32) and double (_f64).
   Sizes come from tuning.h, which setup.py writes from fastmlp/backends/tuning.py. */
#ifndef FASTMLP_INTRINSICS_H
#define FASTMLP_INTRINSICS_H
#include <stdint.h>
#include <string.h>
#include "tuning.h"

/* Flush-to-zero and denormals-are-zero (MXCSR's FLUSH_DENORMALS bits) for one training
   call: a network near convergence fills with denormal floats (tiny probabilities, Adam's
   second moments), each operation on one costing ~100 cycles. denormals_off returns the old
   control word for fp_control_restore. Off x86 both do nothing. */
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
static inline unsigned int denormals_off(void) {
    unsigned int old = _mm_getcsr(); _mm_setcsr(old | FLUSH_DENORMALS); return old;
}
static inline void fp_control_restore(unsigned int old) { _mm_setcsr(old); }
#else
static inline unsigned int denormals_off(void) { return 0; }
static inline void fp_control_restore(unsigned int old) { (void)old; }
#endif

/* 2**n from t = n + 1.5 * 2**23 + 127 (float) or n + 1.5 * 2**52 + 1023 (double). */
static inline float pow2_f32(float t) {
    uint32_t bits; memcpy(&bits, &t, 4); bits <<= 23; memcpy(&t, &bits, 4); return t;
}
static inline double pow2_f64(double t) {
    uint64_t bits; memcpy(&bits, &t, 8); bits <<= 52; memcpy(&t, &bits, 8); return t;
}

/* m in [sqrt(1/2), sqrt(2)) and *e with v = m * 2**e, for a positive normal v (fdlibm's
   reduction for log); e becomes a float by adding the bits of 1.5 * 2**23 (or 2**52): AVX2
   has no int64-to-double conversion. */
static inline float log_split_f32(float v, float* e) {
    uint32_t bits, low = 0x3f3504f3u, magic = 0x4b400000u;  /* sqrt(1/2), 1.5 * 2**23 */
    float exponent;
    memcpy(&bits, &v, 4); bits -= low;
    uint32_t field = (uint32_t)((int32_t)bits >> 23) + magic;
    memcpy(&exponent, &field, 4); *e = exponent - 12582912.0f;
    bits = (bits & 0x7fffffu) + low; memcpy(&v, &bits, 4); return v;
}
static inline double log_split_f64(double v, double* e) {
    uint64_t bits, low = 0x3fe6a09e667f3bcdull, magic = 0x4338000000000000ull;
    double exponent;
    memcpy(&bits, &v, 8); bits -= low;
    uint64_t field = (uint64_t)((int64_t)bits >> 52) + magic;
    memcpy(&exponent, &field, 8); *e = exponent - 6755399441055744.0;
    bits = (bits & 0xfffffffffffffull) + low; memcpy(&v, &bits, 8); return v;
}

/* v, or +0 where below is true, by a mask: a branch would hold the multiply making v,
   and GCC does not move a float operation out of a branch (it may trap), nor vectorise. */
static inline float zero_where_f32(int below, float v) {
    uint32_t bits; memcpy(&bits, &v, 4); bits &= (uint32_t)below - 1u; memcpy(&v, &bits, 4);
    return v;
}
static inline double zero_where_f64(int below, double v) {
    uint64_t bits; memcpy(&bits, &v, 8); bits &= (uint64_t)below - 1u; memcpy(&v, &bits, 8);
    return v;
}

/* exp's Cody-Waite reduction x = n ln2 + r: n * LN2_HI is exact (LN2_HI has 16 significant
   bits); n rounds by adding MAGIC, which leaves round(n) + the exponent bias in the low
   mantissa bits (no float-to-int conversion: AVX2 has none for int64). */
static const double LOG2E = 1.4426950408889634;
static const double LN2_HI = 0.693145751953125;
static const double LN2_LO = 1.428606820309417232e-06;
static const float MAGIC_F32 = 12582912.0f + 127.0f;
static const double MAGIC_F64 = 6755399441055744.0 + 1023.0;

/* dots (the narrow-n product's dot products) and tile (the blocked product's register
   tile), written once in intrinsics.typed.h for a float type FM_REAL. */
#define FM_REAL float
#define FM_DOTS dots_f32
#define FM_TILE tile_f32
#include "intrinsics.typed.h"

#define FM_REAL double
#define FM_DOTS dots_f64
#define FM_TILE tile_f64
#include "intrinsics.typed.h"

#endif
