// One fused sampler step (docs/DESIGN.md §4), per sample b with a StepRow:
//   x̂   = clamp(Σ_k h_k·in_k, −clip, clip)
//   out = fma(cξ, ξ, fma(cx̂, x̂, Σ_k o_k·in_k))   (each fma only where used)
// where the sums run over the slots the sample reads (an input given and a
// non-zero h_k or o_k), in slot order, the first term a product and every
// later one an fma: exactly the canonical CPU kernel (src/backend/cpu/step.rs),
// so results agree bit for bit. A slot that is not read is never loaded, so
// DDIM moves 3 arrays whatever the number of slots; ξ is generated only for
// rows whose noise coefficient is not 0.
//
// The sums accumulate while loading (one slot's unit live at a time) rather
// than loading every slot first: with 8 slots of 8 half-precision lanes the
// latter would hold 64 floats and spill.

#include "common.cuh"

// TREE: ξ may be Brownian-tree increments (gf_step_tree_*: its own entry
// points, so the plain steps keep their registers).
template <class S, bool ALIGNED, bool TREE>
__device__ __forceinline__ void gf_step(const gf_step_args& a) {
    enum { VEC = S::VEC };
    const gf_u64 units = (a.dim + VEC - 1) / VEC;
    GF_FOR_SAMPLES(b, a.batch) {
        const gf_step_row r = gf_row(a.rows, a.row_stride, a.row0, b);
        const bool noisy = a.noise.enabled && r.noise != 0.0f;
        // As the CPU kernel: the x̂ term is added only where x̂ is used or
        // written (so a NaN x̂ times 0 cannot reach out), ξ only where drawn.
        const bool use_x_hat = a.x_hat != 0 || r.out_x_hat != 0.0f;
        const unsigned id = noisy ? gf_sample_id(a.noise, b) : 0u;
        unsigned used = 0u;  // bit k: slot k is read by this sample
#pragma unroll
        for (int k = 0; k < GF_STEP_INPUTS; ++k) {
            if (a.in[k] && (r.x_hat[k] != 0.0f || r.out[k] != 0.0f)) used |= 1u << k;
        }
        const gf_u64 row = b * a.dim;
        GF_FOR_UNITS(u, units) {
            const gf_u64 e0 = u * VEC;
            float x[VEC], y[VEC], v[VEC], o[VEC];
#pragma unroll
            for (int i = 0; i < VEC; ++i) x[i] = y[i] = 0.0f;
            bool first = true;
#pragma unroll
            for (int k = 0; k < GF_STEP_INPUTS; ++k) {
                if (!(used & (1u << k))) continue;
                gf_load<S, ALIGNED>(a.in[k], row, e0, a.dim, v);
                const float hk = r.x_hat[k], ok = r.out[k];
#pragma unroll
                for (int i = 0; i < VEC; ++i) {
                    x[i] = first ? hk * v[i] : fmaf(hk, v[i], x[i]);
                    y[i] = first ? ok * v[i] : fmaf(ok, v[i], y[i]);
                }
                first = false;
            }
            if (noisy) gf_noise_unit<S, ALIGNED, TREE>(a.noise, id, row, e0, a.dim, v);
#pragma unroll
            for (int i = 0; i < VEC; ++i) {
                // f32::clamp: NaN passes through, unlike fminf/fmaxf.
                float h = x[i] < -r.clip ? -r.clip : x[i];
                h = h > r.clip ? r.clip : h;
                x[i] = h;
                float w = y[i];
                if (use_x_hat) w = fmaf(r.out_x_hat, h, w);
                if (noisy) w = fmaf(r.noise, v[i], w);
                o[i] = w;
            }
            gf_store<S, ALIGNED>(a.out, row, e0, a.dim, o);
            if (a.x_hat) gf_store<S, ALIGNED>(a.x_hat, row, e0, a.dim, x);
        }
    }
}

#define GF_STEP(NAME, S)                                                                       \
    extern "C" __global__ void __launch_bounds__(GF_THREADS) gf_step_##NAME##_v(const gf_step_args a) { \
        gf_step<S, true, false>(a);                                                           \
    }                                                                                         \
    extern "C" __global__ void __launch_bounds__(GF_THREADS) gf_step_##NAME##_s(const gf_step_args a) { \
        gf_step<S, false, false>(a);                                                          \
    }                                                                                         \
    extern "C" __global__ void __launch_bounds__(GF_THREADS)                                  \
        gf_step_tree_##NAME##_v(const gf_step_args a) {                                       \
        gf_step<S, true, true>(a);                                                            \
    }                                                                                         \
    extern "C" __global__ void __launch_bounds__(GF_THREADS)                                  \
        gf_step_tree_##NAME##_s(const gf_step_args a) {                                       \
        gf_step<S, false, true>(a);                                                           \
    }

GF_STEP(f32, gf_f32)
GF_STEP(f16, gf_f16)
GF_STEP(bf16, gf_bf16)
