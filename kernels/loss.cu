// Weighted loss and its gradient (docs/DESIGN.md §4), per sample b with a LossRow:
//   δ = pred − target (target read, or rebuilt as fma(d, ξ, c·x))
//   grad = (2w/D)·δ          L_b = w · Σ δ² / D
// Two launches with a fixed reduction order, so the same input gives the same
// bits on any device and grid:
//  1. gf_loss_*: block (b, chunk) sums δ² over GF_LOSS_CHUNK elements of sample
//     b, each thread in f32 over a fixed set of units (fma(δ, δ, acc) in
//     element order), then a fixed shared-memory tree; one partial per block.
//  2. gf_loss_finalize: block b adds its partials in f64, thread j taking
//     partials j, j + 256, …, then the same tree; L_b = (f32)(w · Σ / D).

#include "common.cuh"

template <class S, bool ALIGNED>
__device__ __forceinline__ void gf_loss(const gf_loss_args& a) {
    enum { VEC = S::VEC, UNITS = GF_LOSS_CHUNK / S::VEC, PER_THREAD = UNITS / GF_THREADS };
    __shared__ float s[GF_THREADS];
    GF_FOR_SAMPLES(b, a.batch) {
        const gf_loss_row r = gf_row(a.rows, a.row_stride, a.row0, b);
        const unsigned id = a.target ? 0u : gf_sample_id(a.noise, b);
        const float scale = (float)(2.0 * (double)r.weight / (double)a.dim);
        const gf_u64 row = b * a.dim;
        for (gf_u64 chunk = blockIdx.x; chunk < a.chunks; chunk += gridDim.x) {
            float acc = 0.0f;
            // Two units in flight per thread; a full unroll only grows the code.
#pragma unroll 2
            for (int k = 0; k < PER_THREAD; ++k) {
                const gf_u64 e0 = (chunk * UNITS + (gf_u64)k * GF_THREADS + threadIdx.x) * VEC;
                if (e0 >= a.dim) continue;
                float p[VEC], t[VEC], d[VEC];
                gf_load<S, ALIGNED>(a.pred, row, e0, a.dim, p);
                if (a.target) {
                    gf_load<S, ALIGNED>(a.target, row, e0, a.dim, t);
                } else {
                    float x[VEC];
                    gf_load<S, ALIGNED>(a.x, row, e0, a.dim, x);
                    gf_noise_unit<S, ALIGNED>(a.noise, id, row, e0, a.dim, t);
#pragma unroll
                    for (int i = 0; i < VEC; ++i) t[i] = fmaf(r.d, t[i], r.c * x[i]);
                }
#pragma unroll
                for (int i = 0; i < VEC; ++i) {
                    // Past D (general variant only) a rebuilt target is not 0: mask δ.
                    d[i] = (ALIGNED || e0 + i < a.dim) ? p[i] - t[i] : 0.0f;
                    acc = fmaf(d[i], d[i], acc);
                    d[i] = scale * d[i];
                }
                if (a.grad) gf_store<S, ALIGNED>(a.grad, row, e0, a.dim, d);
            }
            const float total = gf_block_sum(acc, s);
            if (threadIdx.x == 0) a.partials[b * a.chunks + chunk] = total;
        }
    }
}

#define GF_LOSS(NAME, S)                                                                       \
    extern "C" __global__ void __launch_bounds__(GF_THREADS) gf_loss_##NAME##_v(const gf_loss_args a) { \
        gf_loss<S, true>(a);                                                                  \
    }                                                                                         \
    extern "C" __global__ void __launch_bounds__(GF_THREADS) gf_loss_##NAME##_s(const gf_loss_args a) { \
        gf_loss<S, false>(a);                                                                 \
    }

GF_LOSS(f32, gf_f32)
GF_LOSS(f16, gf_f16)
GF_LOSS(bf16, gf_bf16)

extern "C" __global__ void __launch_bounds__(GF_THREADS) gf_loss_finalize(const gf_loss_finalize_args a) {
    __shared__ double s[GF_THREADS];
    for (gf_u64 b = blockIdx.x; b < a.batch; b += gridDim.x) {
        const gf_loss_row r = gf_row(a.rows, a.row_stride, a.row0, b);
        double acc = 0.0;
        for (gf_u64 j = threadIdx.x; j < a.chunks; j += GF_THREADS) acc += (double)a.partials[b * a.chunks + j];
        const double total = gf_block_sum(acc, s);
        if (threadIdx.x == 0) a.loss[b] = (float)((double)r.weight * total / (double)a.dim);
    }
}
