/* dots and tile for one float type, FM_REAL: intrinsics.h includes this file once for float
   and once for double, naming the functions first (FM_DOTS is dots_f32, then dots_f64). The
   names are #undef'd at the end. */

/* Dot products of two rows of A (a0, a1) with DOT_COLUMNS rows of B.T (bt, k apart) at
   once, eight independent sums in vector registers, into c0[:cols] and c1[:cols]. */
static void FM_DOTS(const FM_REAL* a0, const FM_REAL* a1, const FM_REAL* bt, int k, FM_REAL* c0,
                     FM_REAL* c1, int cols) {
    typedef FM_REAL vec __attribute__((vector_size(VECTOR_BYTES), aligned(sizeof(FM_REAL))));
    typedef FM_REAL half __attribute__((vector_size(VECTOR_BYTES / 2), aligned(sizeof(FM_REAL))));
    enum { LANES = VECTOR_BYTES / sizeof(FM_REAL), HALF = LANES / 2 };
    union halves { vec whole; half part[2]; };
    vec s0[4] = {0}, s1[4] = {0};
    half h0[4], h1[4];
    FM_REAL d0[4] = {0}, d1[4] = {0};
    int p = 0;
    for (; p + LANES <= k; p += LANES) {
        vec x0 = *(const vec*)(a0 + p), x1 = *(const vec*)(a1 + p);
        for (int j = 0; j < 4; j++) {
            vec w = *(const vec*)(bt + j * k + p);
            s0[j] += x0 * w;
            s1[j] += x1 * w;
        }
    }
    for (int j = 0; j < 4; j++) {  /* halves added: a short in-order sum after */
        union halves u0 = {s0[j]}, u1 = {s1[j]};
        h0[j] = u0.part[0] + u0.part[1];
        h1[j] = u1.part[0] + u1.part[1];
    }
    if (p + HALF <= k) {  /* a half vector of the rest (k = 100 floats: 12 + 1/2) */
        half x0 = *(const half*)(a0 + p), x1 = *(const half*)(a1 + p);
        for (int j = 0; j < 4; j++) {
            half w = *(const half*)(bt + j * k + p);
            h0[j] += x0 * w;
            h1[j] += x1 * w;
        }
        p += HALF;
    }
    for (int j = 0; j < 4; j++)
        for (int l = 0; l < HALF; l++) {
            d0[j] += h0[j][l];
            d1[j] += h1[j][l];
        }
    for (; p < k; p++)
        for (int j = 0; j < 4; j++) {
            d0[j] += a0[p] * bt[j * k + p];
            d1[j] += a1[p] * bt[j * k + p];
        }
    for (int j = 0; j < cols; j++) {
        c0[j] = d0[j];
        c1[j] = d1[j];
    }
}

/* The blocked product's register tile: c[:TILE_ROWS, :2 * LANES] (+)= the packed rows of A
   (a_pack, TILE_ROWS a step) times the packed panel of B, over kc steps, summed in
   2 * TILE_ROWS vector registers and stored straight from them (c has rows of ldc). */
static void FM_TILE(const FM_REAL* a_pack, const FM_REAL* panel, int kc, FM_REAL* c, int ldc,
                 int accumulate) {
    typedef FM_REAL vec __attribute__((vector_size(TILE_VECTOR_BYTES), aligned(sizeof(FM_REAL))));
    enum { LANES = TILE_VECTOR_BYTES / sizeof(FM_REAL) };
    vec lo[TILE_ROWS] = {0}, hi[TILE_ROWS] = {0};
    for (int p = 0; p < kc; p++) {
        vec b_lo = *(const vec*)(panel + 2 * LANES * p);
        vec b_hi = *(const vec*)(panel + 2 * LANES * p + LANES);
        for (int r = 0; r < TILE_ROWS; r++) {
            FM_REAL a = a_pack[TILE_ROWS * p + r];
            lo[r] += a * b_lo;
            hi[r] += a * b_hi;
        }
    }
    for (int r = 0; r < TILE_ROWS; r++) {
        vec* row = (vec*)(c + r * ldc);
        if (accumulate) {
            lo[r] += row[0];
            hi[r] += row[1];
        }
        row[0] = lo[r];
        row[1] = hi[r];
    }
}

#undef FM_REAL
#undef FM_DOTS
#undef FM_TILE
