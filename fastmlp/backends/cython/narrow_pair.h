/* The narrow-pair step's loops over the samples (see narrow_pair.pxi), for float (_f32)
   and double (_f64): GCC vectorises neither the sums along the samples (without
   -ffast-math it keeps each in order) nor loops whose kin and kout are not constants, so
   each kernel is written for literal kin and kout (BY_SHAPE's switch) and the sums stay
   in vector registers. A row's last, partial vector is its last full one, the lanes done
   already masked to zero where they would be added twice. The loops are written once, in
   narrow_pair.typed.h, for a float type FM_REAL; each function's name for each type is
   given below. */
#ifndef FASTMLP_NARROW_PAIR_H
#define FASTMLP_NARROW_PAIR_H
#include "tuning.h"
#define FASTMLP_INLINE static inline __attribute__((always_inline))

/* KERNEL(kin, kout, ...) for literal kin and kout in 1..NARROW_K (4). */
#define PAIR_CASE(KERNEL, KIN, KOUT, ...) \
    case KIN * 8 + KOUT: KERNEL(KIN, KOUT, __VA_ARGS__); break;
#define PAIR_CASES(KERNEL, KIN, ...) \
    PAIR_CASE(KERNEL, KIN, 1, __VA_ARGS__) PAIR_CASE(KERNEL, KIN, 2, __VA_ARGS__) \
    PAIR_CASE(KERNEL, KIN, 3, __VA_ARGS__) PAIR_CASE(KERNEL, KIN, 4, __VA_ARGS__)
#define BY_SHAPE(KERNEL, ...) \
    switch (kin * 8 + kout) { \
        PAIR_CASES(KERNEL, 1, __VA_ARGS__) PAIR_CASES(KERNEL, 2, __VA_ARGS__) \
        PAIR_CASES(KERNEL, 3, __VA_ARGS__) PAIR_CASES(KERNEL, 4, __VA_ARGS__) \
    }

#define FM_REAL float
#define FM_LANES LANES_F32
#define FM_VEC vec_f32
#define FM_HALF half_f32
#define FM_HALVES halves_f32
#define FM_LOAD load_f32
#define FM_STORE store_f32
#define FM_SUM sum_f32
#define FM_WHERE_POSITIVE where_positive_f32
#define FM_RELU relu_f32
#define FM_FROM_LANE from_lane_f32
#define FM_PAIR_FORWARD_COLUMNS pair_forward_columns_f32
#define FM_PAIR_FORWARD_UNITS pair_forward_units_f32
#define FM_PAIR_FORWARD_SHAPED pair_forward_shaped_f32
#define FM_PAIR_BACKWARD_COLUMNS pair_backward_columns_f32
#define FM_PAIR_BACKWARD_SHAPED pair_backward_shaped_f32
#define FM_ROW_SUM row_sum_f32
#define FM_PAIR_FORWARD pair_forward_f32
#define FM_PAIR_BACKWARD pair_backward_f32
#include "narrow_pair.typed.h"

#define FM_REAL double
#define FM_LANES LANES_F64
#define FM_VEC vec_f64
#define FM_HALF half_f64
#define FM_HALVES halves_f64
#define FM_LOAD load_f64
#define FM_STORE store_f64
#define FM_SUM sum_f64
#define FM_WHERE_POSITIVE where_positive_f64
#define FM_RELU relu_f64
#define FM_FROM_LANE from_lane_f64
#define FM_PAIR_FORWARD_COLUMNS pair_forward_columns_f64
#define FM_PAIR_FORWARD_UNITS pair_forward_units_f64
#define FM_PAIR_FORWARD_SHAPED pair_forward_shaped_f64
#define FM_PAIR_BACKWARD_COLUMNS pair_backward_columns_f64
#define FM_PAIR_BACKWARD_SHAPED pair_backward_shaped_f64
#define FM_ROW_SUM row_sum_f64
#define FM_PAIR_FORWARD pair_forward_f64
#define FM_PAIR_BACKWARD pair_backward_f64
#include "narrow_pair.typed.h"

#endif
