/* The narrow-pair loops for one float type, FM_REAL: narrow_pair.h includes this file once
   for float and once for double, naming each function and type first (FM_LOAD is load_f32,
   then load_f64...). The names are #undef'd at the end. */

typedef FM_REAL FM_VEC __attribute__((vector_size(VECTOR_BYTES), aligned(sizeof(FM_REAL))));
enum { FM_LANES = VECTOR_BYTES / sizeof(FM_REAL) };
FASTMLP_INLINE FM_VEC FM_LOAD(const FM_REAL* p) {
    return *(const FM_VEC*)p;
}
FASTMLP_INLINE void FM_STORE(FM_REAL* p, FM_VEC v) {
    *(FM_VEC*)p = v;
}
typedef FM_REAL FM_HALF __attribute__((vector_size(VECTOR_BYTES / 2), aligned(sizeof(FM_REAL))));
union FM_HALVES { FM_VEC whole; FM_HALF part[2]; };
/* v's lanes summed, its halves added first as the dots do: four adds in a chain,
   not seven, for the backward pass's six sums a unit. */
FASTMLP_INLINE FM_REAL FM_SUM(FM_VEC v) {
    union FM_HALVES u = {v};
    FM_HALF half = u.part[0] + u.part[1];
    FM_REAL total = 0;
    for (int l = 0; l < FM_LANES / 2; l++)
        total += half[l];
    return total;
}
FASTMLP_INLINE FM_VEC FM_WHERE_POSITIVE(FM_VEC v, FM_VEC gate) {  /* else +0 */
    const FM_VEC zero = {0};
    return (FM_VEC)((__typeof__(gate > zero))v & (gate > zero));
}
FASTMLP_INLINE FM_VEC FM_RELU(FM_VEC v) {  /* v where not v <= 0: a NaN stays NaN */
    const FM_VEC zero = {0};
    return (FM_VEC)((__typeof__(v <= zero))v & ~(v <= zero));
}
FASTMLP_INLINE FM_VEC FM_FROM_LANE(FM_VEC v, int skip) {  /* lanes < skip: +0 */
    FM_VEC lane;
    for (int l = 0; l < FM_LANES; l++)
        lane[l] = l;
    return FM_WHERE_POSITIVE(v, lane - (FM_REAL)(skip - 0.5));
}

/* The samples i.. of `units` hidden units: ReLU of a[q] . x + bias[q] into rows
   h[q], and w[j] . those added into the logit rows. */
FASTMLP_INLINE void FM_PAIR_FORWARD_COLUMNS(
        int kin, int kout, int units, FM_REAL a[4][4], const FM_REAL* bias, FM_REAL w[4][4],
        const FM_REAL* XT, FM_REAL** h, FM_REAL* ZT, int n, int i, int skip) {
    FM_VEC x[4], v[4];
    for (int c = 0; c < kin; c++)
        x[c] = FM_LOAD(XT + (long)c * n + i);
    for (int q = 0; q < units; q++) {
        FM_VEC s = bias[q] + a[q][0] * x[0];
        for (int c = 1; c < kin; c++)
            s += a[q][c] * x[c];
        v[q] = FM_RELU(s);
        FM_STORE(h[q] + i, v[q]);
        if (skip)  /* lanes done already: stored again alike, added once */
            v[q] = FM_FROM_LANE(v[q], skip);
    }
    for (int j = 0; j < kout; j++) {
        FM_VEC z = FM_LOAD(ZT + (long)j * n + i);
        for (int q = 0; q < units; q++)
            z += w[j][q] * v[q];
        FM_STORE(ZT + (long)j * n + i, z);
    }
}
/* Hidden units p..p+units: their weights read once into locals, then the samples. */
FASTMLP_INLINE void FM_PAIR_FORWARD_UNITS(
        int kin, int kout, int units, int p, const FM_REAL* XT, const FM_REAL* W1,
        const FM_REAL* b1, const FM_REAL* W2, FM_REAL* HT, FM_REAL* ZT, int hidden, int n,
        int stride) {
    FM_REAL a[4][4], bias[4], w[4][4], *h[4];
    for (int q = 0; q < units; q++) {
        h[q] = HT + (long)(p + q) * stride;
        bias[q] = b1[p + q];
        for (int c = 0; c < kin; c++)
            a[q][c] = W1[c * hidden + p + q];
        for (int j = 0; j < kout; j++)
            w[j][q] = W2[(p + q) * kout + j];
    }
    int i = 0;
    for (; i + FM_LANES <= n; i += FM_LANES)
        FM_PAIR_FORWARD_COLUMNS(kin, kout, units, a, bias, w, XT, h, ZT, n, i, 0);
    if (i < n)
        FM_PAIR_FORWARD_COLUMNS(kin, kout, units, a, bias, w, XT, h, ZT, n, n - FM_LANES,
                            i - (n - FM_LANES));
}
/* HT = relu(W1.T @ XT + b1) and ZT = W2.T @ HT + b2, four hidden units a pass (HT's
   rows `stride` long, tuning.pair_columns(n)). */
FASTMLP_INLINE void FM_PAIR_FORWARD_SHAPED(
        int kin, int kout, const FM_REAL* XT, const FM_REAL* W1, const FM_REAL* b1,
        const FM_REAL* W2, const FM_REAL* b2, FM_REAL* HT, FM_REAL* ZT, int hidden, int n,
        int stride) {
    for (int j = 0; j < kout; j++)
        for (int i = 0; i < n; i++)
            ZT[(long)j * n + i] = b2[j];
    int p = 0;
    for (; p + 4 <= hidden; p += 4)
        FM_PAIR_FORWARD_UNITS(kin, kout, 4, p, XT, W1, b1, W2, HT, ZT, hidden, n, stride);
    for (; p < hidden; p++)
        FM_PAIR_FORWARD_UNITS(kin, kout, 1, p, XT, W1, b1, W2, HT, ZT, hidden, n, stride);
}

/* The samples i.. of hidden unit h's sums: h . dZT[j] into c[j]; its delta (dZT's
   rows weighted by w, ReLU's mask applied) into bias and, dotted with XT's rows, g. */
FASTMLP_INLINE void FM_PAIR_BACKWARD_COLUMNS(
        int kin, int kout, const FM_REAL* w, const FM_REAL* XT, const FM_REAL* h,
        const FM_REAL* dZT, int n, int i, int skip, FM_VEC* c, FM_VEC* g, FM_VEC* bias) {
    FM_VEC hv = FM_LOAD(h + i), d = {0};
    if (skip)  /* lanes done already: a zero h adds nothing (nor its delta) */
        hv = FM_FROM_LANE(hv, skip);
    for (int j = 0; j < kout; j++) {
        FM_VEC z = FM_LOAD(dZT + (long)j * n + i);
        c[j] += hv * z;
        d += w[j] * z;
    }
    d = FM_WHERE_POSITIVE(d, hv);
    *bias += d;
    for (int q = 0; q < kin; q++)
        g[q] += FM_LOAD(XT + (long)q * n + i) * d;
}
/* dW2, db1 and dW1, one pass over the samples a hidden unit. */
FASTMLP_INLINE void FM_PAIR_BACKWARD_SHAPED(int kin, int kout, const FM_REAL* XT, const FM_REAL* HT,
                                 const FM_REAL* dZT, const FM_REAL* W2, FM_REAL* dW1, FM_REAL* db1,
                                 FM_REAL* dW2, int hidden, int n, int stride) {
    for (int p = 0; p < hidden; p++) {
        const FM_REAL* h = HT + (long)p * stride;
        FM_VEC c[4] = {0}, g[4] = {0}, bias = {0};
        FM_REAL w[4];
        for (int j = 0; j < kout; j++)
            w[j] = W2[p * kout + j];
        int i = 0;
        for (; i + FM_LANES <= n; i += FM_LANES)
            FM_PAIR_BACKWARD_COLUMNS(kin, kout, w, XT, h, dZT, n, i, 0, c, g, &bias);
        if (i < n)
            FM_PAIR_BACKWARD_COLUMNS(kin, kout, w, XT, h, dZT, n, n - FM_LANES,
                                 i - (n - FM_LANES), c, g, &bias);
        for (int j = 0; j < kout; j++)
            dW2[p * kout + j] = FM_SUM(c[j]);
        for (int q = 0; q < kin; q++)
            dW1[q * hidden + p] = FM_SUM(g[q]);
        db1[p] = FM_SUM(bias);
    }
}

/* The sum of p[:n], in vectors (n >= LANES). */
static FM_REAL FM_ROW_SUM(const FM_REAL* p, int n) {
    FM_VEC total = {0};
    int i = 0;
    for (; i + FM_LANES <= n; i += FM_LANES)
        total += FM_LOAD(p + i);
    if (i < n)
        total += FM_FROM_LANE(FM_LOAD(p + n - FM_LANES), i - (n - FM_LANES));
    return FM_SUM(total);
}
static void FM_PAIR_FORWARD(int kin, int kout, const FM_REAL* XT, const FM_REAL* W1,
                            const FM_REAL* b1, const FM_REAL* W2, const FM_REAL* b2,
                            FM_REAL* HT, FM_REAL* ZT, int hidden, int n, int stride) {
    BY_SHAPE(FM_PAIR_FORWARD_SHAPED, XT, W1, b1, W2, b2, HT, ZT, hidden, n, stride)
}
static void FM_PAIR_BACKWARD(int kin, int kout, const FM_REAL* XT, const FM_REAL* HT,
                             const FM_REAL* dZT, const FM_REAL* W2, FM_REAL* dW1,
                             FM_REAL* db1, FM_REAL* dW2, int hidden, int n, int stride) {
    BY_SHAPE(FM_PAIR_BACKWARD_SHAPED, XT, HT, dZT, W2, dW1, db1, dW2, hidden, n, stride)
}

#undef FM_REAL
#undef FM_LANES
#undef FM_VEC
#undef FM_HALF
#undef FM_HALVES
#undef FM_LOAD
#undef FM_STORE
#undef FM_SUM
#undef FM_WHERE_POSITIVE
#undef FM_RELU
#undef FM_FROM_LANE
#undef FM_PAIR_FORWARD_COLUMNS
#undef FM_PAIR_FORWARD_UNITS
#undef FM_PAIR_FORWARD_SHAPED
#undef FM_PAIR_BACKWARD_COLUMNS
#undef FM_PAIR_BACKWARD_SHAPED
#undef FM_ROW_SUM
#undef FM_PAIR_FORWARD
#undef FM_PAIR_BACKWARD
