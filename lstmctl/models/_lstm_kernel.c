/* lstmctl's fused LSTM loops: the recurrence of a whole sequence in one call (forward and
 * backward), the gates of one time step, and the matrix products they need.
 *
 * The matrix products are this file's own register-blocked GEMM (below): per step the recurrent
 * product h_{t-1} W_hh^T, and per layer the input projection of all steps and the weight
 * gradients. Between the products one pass over the (B, H) block does all the gates, where the
 * pure-torch path in cells.py needs about a dozen separate elementwise kernels per step, each
 * with its own Python and dispatcher overhead. (cells.py hands large products to torch's
 * threaded BLAS instead when more than two threads are available; then only the gate loops of
 * this file run, one call per step.)
 * Built on first use by lstmctl/models/kernel.py with the system C compiler and loaded with
 * ctypes; no Python or torch headers are involved, so it compiles in well under a second.
 *
 * Gate order and layout are PyTorch's: the pre-activation row of one sample is
 * [i | f | g | o], each H wide.
 *
 * exp() is written out (Cody-Waite range reduction and a Taylor polynomial of the reduced
 * argument, exact to about one unit in the last place) so that the compiler can vectorise the
 * loops without a vector math library; sigmoid and tanh are built on it.
 */

#include <stdint.h>
#include <string.h>

/* ---- exp, float: |r| <= ln2/2 after reduction, degree 7 (error < 6e-9 relative) ---- */
static inline float exp_f(float x) {
    x = x > 88.0f ? 88.0f : x;
    x = x < -87.0f ? -87.0f : x; /* NaN passes both tests unchanged and stays NaN below */
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer in the low bits */
    float t = x * 1.44269504088896341f + magic;
    float n = t - magic;
    int32_t tb, nb;
    memcpy(&tb, &t, 4);
    const float magic_copy = magic;
    int32_t mb;
    memcpy(&mb, &magic_copy, 4);
    nb = tb - mb; /* n as an integer */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t sb = (int32_t)((uint32_t)(nb + 127) << 23); /* 2^n (unsigned shift: no UB for a NaN's n) */
    float s;
    memcpy(&s, &sb, 4);
    return p * s;
}

/* ---- exp, double: degree 13 (error < 5e-18 relative) ---- */
static inline double exp_d(double x) {
    x = x > 709.0 ? 709.0 : x;
    x = x < -708.0 ? -708.0 : x;
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    double t = x * 1.44269504088896338700e+00 + magic;
    double n = t - magic;
    int64_t tb, mb;
    memcpy(&tb, &t, 8);
    const double magic_copy = magic;
    memcpy(&mb, &magic_copy, 8);
    int64_t nb = tb - mb;
    double r = x - n * 6.93147180369123816490e-01;
    r = r - n * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t sb = (int64_t)((uint64_t)(nb + 1023) << 52);
    double s;
    memcpy(&s, &sb, 8);
    return p * s;
}

/* One step forward.
 *   pre  (B, 4H)  x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh, the gate pre-activations
 *   cp   (B, H)   c_{t-1}
 * writes
 *   act  (B, 4H)  [sigma(i), sigma(f), tanh(g), sigma(o)]   (kept for backward)
 *   c    (B, H)   c_t = f * c_{t-1} + i * g
 *   tc   (B, H)   tanh(c_t)                                  (kept for backward)
 *   h    (B, H)   h_t = o * tanh(c_t)
 * All blocks are contiguous. */
#define FORWARD(NAME, REAL, EXP)                                                               \
    void NAME(const REAL *restrict pre, const REAL *restrict cp, REAL *restrict act,          \
              REAL *restrict c, REAL *restrict tc, REAL *restrict h, int64_t B, int64_t H) {   \
        for (int64_t b = 0; b < B; b++) {                                                      \
            const REAL *z = pre + b * 4 * H;                                                   \
            REAL *a = act + b * 4 * H;                                                         \
            const REAL *cpb = cp + b * H;                                                      \
            REAL *cb = c + b * H, *tcb = tc + b * H, *hb = h + b * H;                          \
            for (int64_t j = 0; j < H; j++) {                                                  \
                REAL i = (REAL)1 / ((REAL)1 + EXP(-z[j]));                                     \
                REAL f = (REAL)1 / ((REAL)1 + EXP(-z[H + j]));                                 \
                REAL g = (REAL)1 - (REAL)2 / ((REAL)1 + EXP((REAL)2 * z[2 * H + j]));          \
                REAL o = (REAL)1 / ((REAL)1 + EXP(-z[3 * H + j]));                             \
                REAL cn = f * cpb[j] + i * g;                                                  \
                REAL t = (REAL)1 - (REAL)2 / ((REAL)1 + EXP((REAL)2 * cn));                    \
                a[j] = i;                                                                      \
                a[H + j] = f;                                                                  \
                a[2 * H + j] = g;                                                              \
                a[3 * H + j] = o;                                                              \
                cb[j] = cn;                                                                    \
                tcb[j] = t;                                                                    \
                hb[j] = o * t;                                                                 \
            }                                                                                  \
        }                                                                                      \
    }

/* One step backward.
 *   dh   (B, H)   dL/dh_t (from the output at t and from step t+1 through W_hh)
 *   dc   (B, H)   in: dL/dc_t carried from step t+1 (already times f_{t+1}); out: the same for t-1
 *   act, tc       what forward kept at step t;  cp (B, H) c_{t-1}
 * writes
 *   dz   (B, 4H)  dL/d(pre-activation) at step t                                          */
#define BACKWARD(NAME, REAL)                                                                   \
    void NAME(const REAL *restrict dh, REAL *restrict dc, const REAL *restrict act,           \
              const REAL *restrict tc, const REAL *restrict cp, REAL *restrict dz, int64_t B,  \
              int64_t H) {                                                                     \
        for (int64_t b = 0; b < B; b++) {                                                      \
            const REAL *a = act + b * 4 * H;                                                   \
            REAL *d = dz + b * 4 * H;                                                          \
            const REAL *dhb = dh + b * H, *tcb = tc + b * H, *cpb = cp + b * H;                \
            REAL *dcb = dc + b * H;                                                            \
            for (int64_t j = 0; j < H; j++) {                                                  \
                REAL i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];               \
                REAL t = tcb[j], dhj = dhb[j];                                                 \
                REAL dct = dcb[j] + dhj * o * ((REAL)1 - t * t);                               \
                d[j] = dct * g * i * ((REAL)1 - i);                                            \
                d[H + j] = dct * cpb[j] * f * ((REAL)1 - f);                                   \
                d[2 * H + j] = dct * i * ((REAL)1 - g * g);                                    \
                d[3 * H + j] = dhj * t * o * ((REAL)1 - o);                                    \
                dcb[j] = dct * f;                                                              \
            }                                                                                  \
        }                                                                                      \
    }

/* ---- GEMM, register-blocked: out = c + a w ----
 * a (M, K) with strides ars (between rows) and acs (between columns), so that a transposed
 * matrix needs no copy; w (K, N) with row stride ldw, columns contiguous; c (M, N) with row
 * stride ldc (ldc = 0 repeats one row, e.g. a bias; c = NULL means zeros); out (M, N) with row
 * stride ldo (out may be c). For the shapes of an LSTM layer (M = batch or a few thousand rows,
 * K and N in the tens to hundreds) MKL's sgemm on the AMD EPYC we measured reaches half the speed
 * of this plain MR x NR micro-kernel, which the compiler vectorises along NR and keeps in
 * registers (see the speed table in docs/models.md). K is cut into blocks of KC so the slice of w that the
 * micro-kernel sweeps stays in the L1 cache; within a block the sum over k runs in order. */
#define KC 128
#define MICRO(REAL, MRv, NRv)                                                                  \
    static inline void micro_##REAL##_##MRv##_##NRv(                                           \
        const REAL *restrict a, int64_t ars, int64_t acs, const REAL *restrict w, int64_t ldw, \
        const REAL *c, int64_t ldc, REAL *out, int64_t ldo, int64_t K) {                       \
        REAL acc[MRv][NRv];                                                                    \
        if (c) {                                                                               \
            for (int r = 0; r < MRv; r++)                                                      \
                for (int j = 0; j < NRv; j++) acc[r][j] = c[r * ldc + j];                      \
        } else {                                                                               \
            for (int r = 0; r < MRv; r++)                                                      \
                for (int j = 0; j < NRv; j++) acc[r][j] = 0;                                   \
        }                                                                                      \
        for (int64_t k = 0; k < K; k++) {                                                      \
            const REAL *wk = w + k * ldw;                                                      \
            const REAL *ak = a + k * acs;                                                      \
            for (int r = 0; r < MRv; r++) {                                                    \
                REAL av = ak[r * ars];                                                         \
                for (int j = 0; j < NRv; j++) acc[r][j] += av * wk[j];                         \
            }                                                                                  \
        }                                                                                      \
        for (int r = 0; r < MRv; r++)                                                          \
            for (int j = 0; j < NRv; j++) out[r * ldo + j] = acc[r][j];                        \
    }

#define CALL_MICRO(REAL, MRv, NRv)                                                             \
    micro_##REAL##_##MRv##_##NRv(ak + m0 * ars, ars, acs, wk + n0, ldw, cc ? cc + m0 * lc + n0 : 0, lc, \
                                 out + m0 * ldo + n0, ldo, kc)

/* Column blocks of NR, NR/2, NR/4 and 1; row blocks of MR and 1. */
#define GEMM(REAL, MRv, NR1, NR2, NR3)                                                         \
    MICRO(REAL, MRv, NR1) MICRO(REAL, MRv, NR2) MICRO(REAL, MRv, NR3) MICRO(REAL, MRv, 1)      \
    MICRO(REAL, 1, NR1) MICRO(REAL, 1, NR2) MICRO(REAL, 1, NR3) MICRO(REAL, 1, 1)              \
    static void gemm_##REAL(const REAL *a, int64_t ars, int64_t acs, const REAL *w,            \
                            int64_t ldw, const REAL *c, int64_t ldc, REAL *out, int64_t ldo,    \
                            int64_t M, int64_t N, int64_t K) {                                 \
        for (int64_t k0 = 0; k0 < K; k0 += KC) {                                               \
            int64_t kc = K - k0 < KC ? K - k0 : KC;                                            \
            const REAL *cc = k0 == 0 ? c : out; /* later blocks add to what is there */        \
            int64_t lc = k0 == 0 ? ldc : ldo;                                                  \
            const REAL *ak = a + k0 * acs, *wk = w + k0 * ldw;                                 \
            for (int64_t n0 = 0; n0 < N;) {                                                    \
                int64_t left = N - n0;                                                         \
                int64_t nr = left >= NR1 ? NR1 : left >= NR2 ? NR2 : left >= NR3 ? NR3 : 1;   \
                int64_t m0 = 0;                                                                \
                for (; m0 + MRv <= M; m0 += MRv) {                                             \
                    if (nr == NR1) CALL_MICRO(REAL, MRv, NR1);                                 \
                    else if (nr == NR2) CALL_MICRO(REAL, MRv, NR2);                            \
                    else if (nr == NR3) CALL_MICRO(REAL, MRv, NR3);                            \
                    else CALL_MICRO(REAL, MRv, 1);                                             \
                }                                                                              \
                for (; m0 < M; m0++) {                                                         \
                    if (nr == NR1) CALL_MICRO(REAL, 1, NR1);                                   \
                    else if (nr == NR2) CALL_MICRO(REAL, 1, NR2);                              \
                    else if (nr == NR3) CALL_MICRO(REAL, 1, NR3);                              \
                    else CALL_MICRO(REAL, 1, 1);                                               \
                }                                                                              \
                n0 += nr;                                                                      \
            }                                                                                  \
        }                                                                                      \
    }

GEMM(float, 8, 32, 16, 8)
GEMM(double, 8, 16, 8, 4)

FORWARD(lstm_forward_f32, float, exp_f)
FORWARD(lstm_forward_f64, double, exp_d)
BACKWARD(lstm_backward_f32, float)
BACKWARD(lstm_backward_f64, double)

/* A whole sequence forward in one call. xw (T, B, 4H): x_t W_ih^T + b_ih + b_hh for every step;
 * w_t (H, 4H): W_hh transposed, contiguous. The caller has put h_0 in Hs[0] and c_0 in C[0];
 * pre (B, 4H) is scratch. Fills A, C[1:], TC and Hs[1:] as the step function does. */
#define FORWARD_SEQ(NAME, REAL, STEP)                                                          \
    void NAME(const REAL *xw, const REAL *w_t, REAL *A, REAL *C, REAL *TC, REAL *Hs,          \
              REAL *pre, int64_t T, int64_t B, int64_t H) {                                    \
        int64_t G = 4 * H;                                                                     \
        for (int64_t t = 0; t < T; t++) {                                                      \
            gemm_##REAL(Hs + t * B * H, H, 1, w_t, G, xw + t * B * G, G, pre, G, B, G, H);        \
            STEP(pre, C + t * B * H, A + t * B * G, C + (t + 1) * B * H, TC + t * B * H,       \
                 Hs + (t + 1) * B * H, B, H);                                                  \
        }                                                                                      \
    }

/* A whole sequence backward in one call. dout (T, B, H): dL/d(output); w_hh (4H, H) contiguous.
 * The caller has put dL/dh_{T-1} (= dout[T-1] + dL/dh_n) in dh and dL/dc_n in dc. Fills dZ
 * (T, B, 4H) with dL/d(pre-activation) of every step and leaves dL/dc_0 in dc. */
#define BACKWARD_SEQ(NAME, REAL, STEP)                                                         \
    void NAME(const REAL *dout, const REAL *w_hh, const REAL *A, const REAL *C,               \
              const REAL *TC, REAL *dZ, REAL *dh, REAL *dc, int64_t T, int64_t B, int64_t H) { \
        int64_t G = 4 * H;                                                                     \
        for (int64_t t = T - 1; t >= 0; t--) {                                                 \
            if (t < T - 1)                                                                     \
                gemm_##REAL(dZ + (t + 1) * B * G, G, 1, w_hh, H, dout + t * B * H, H, dh, H, B, H, G); \
            STEP(dh, dc, A + t * B * G, TC + t * B * H, C + t * B * H, dZ + t * B * G, B, H);  \
        }                                                                                      \
    }

FORWARD_SEQ(lstm_forward_seq_f32, float, lstm_forward_f32)
FORWARD_SEQ(lstm_forward_seq_f64, double, lstm_forward_f64)
BACKWARD_SEQ(lstm_backward_seq_f32, float, lstm_backward_f32)
BACKWARD_SEQ(lstm_backward_seq_f64, double, lstm_backward_f64)

/* The GEMM above for the input projection and the weight gradients of a layer (see cells.py). */
void gemm_f32(const float *a, int64_t ars, int64_t acs, const float *w, int64_t ldw, const float *c,
              int64_t ldc, float *out, int64_t ldo, int64_t M, int64_t N, int64_t K) {
    gemm_float(a, ars, acs, w, ldw, c, ldc, out, ldo, M, N, K);
}
void gemm_f64(const double *a, int64_t ars, int64_t acs, const double *w, int64_t ldw,
              const double *c, int64_t ldc, double *out, int64_t ldo, int64_t M, int64_t N,
              int64_t K) {
    gemm_double(a, ars, acs, w, ldw, c, ldc, out, ldo, M, N, K);
}

/* Lets the loader check that it talks to the kernel it built. */
int lstmctl_kernel_version(void) { return 4; }
