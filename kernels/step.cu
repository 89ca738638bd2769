// One fused sampler step (docs/DESIGN.md §4), per sample b with a StepRow:
//   x̂   = clamp(fma(h3, in3, fma(h2, in2, fma(h1, in1, h0·in0))), −clip, clip)
//   out = fma(cξ, ξ, fma(cx̂, x̂, fma(o3, in3, fma(o2, in2, fma(o1, in1, o0·in0)))))
// exactly as the canonical CPU kernel (src/backend/cpu.rs). An absent input
// reads as 0; ξ is generated only for rows whose noise coefficient is not 0.

#include "common.cuh"

template <class S, bool ALIGNED>
__device__ __forceinline__ void gf_step(const gf_step_args& a) {
    enum { VEC = S::VEC };
    const gf_u64 units = (a.dim + VEC - 1) / VEC;
    GF_FOR_SAMPLES(b, a.batch) {
        const gf_step_row r = gf_row(a.rows, a.row_stride, a.row0, b);
        const bool noisy = a.noise.enabled && r.noise != 0.0f;
        const unsigned id = noisy ? gf_sample_id(a.noise, b) : 0u;
        const gf_u64 row = b * a.dim;
        GF_FOR_UNITS(u, units) {
            const gf_u64 e0 = u * VEC;
            float v[4][VEC], xi[VEC], h[VEC], o[VEC];
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                if (a.in[k]) {
                    gf_load<S, ALIGNED>(a.in[k], row, e0, a.dim, v[k]);
                } else {
#pragma unroll
                    for (int i = 0; i < VEC; ++i) v[k][i] = 0.0f;
                }
            }
            if (noisy) {
                gf_noise_unit<S, ALIGNED>(a.noise, id, row, e0, a.dim, xi);
            } else {
#pragma unroll
                for (int i = 0; i < VEC; ++i) xi[i] = 0.0f;
            }
#pragma unroll
            for (int i = 0; i < VEC; ++i) {
                float x = fmaf(r.x_hat[3], v[3][i],
                               fmaf(r.x_hat[2], v[2][i], fmaf(r.x_hat[1], v[1][i], r.x_hat[0] * v[0][i])));
                // f32::clamp: NaN passes through, unlike fminf/fmaxf.
                x = x < -r.clip ? -r.clip : x;
                x = x > r.clip ? r.clip : x;
                h[i] = x;
                const float y = fmaf(r.out[3], v[3][i],
                                     fmaf(r.out[2], v[2][i], fmaf(r.out[1], v[1][i], r.out[0] * v[0][i])));
                o[i] = fmaf(r.noise, xi[i], fmaf(r.out_x_hat, x, y));
            }
            gf_store<S, ALIGNED>(a.out, row, e0, a.dim, o);
            if (a.x_hat) gf_store<S, ALIGNED>(a.x_hat, row, e0, a.dim, h);
        }
    }
}

#define GF_STEP(NAME, S)                                                                       \
    extern "C" __global__ void __launch_bounds__(GF_THREADS) gf_step_##NAME##_v(const gf_step_args a) { \
        gf_step<S, true>(a);                                                                  \
    }                                                                                         \
    extern "C" __global__ void __launch_bounds__(GF_THREADS) gf_step_##NAME##_s(const gf_step_args a) { \
        gf_step<S, false>(a);                                                                 \
    }

GF_STEP(f32, gf_f32)
GF_STEP(f16, gf_f16)
GF_STEP(bf16, gf_bf16)
