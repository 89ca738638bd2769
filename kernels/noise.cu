// Forward noising (docs/DESIGN.md §4): per sample b, with row (a, b, c, d),
//   z = fma(b, ξ, a·x)        target = fma(d, ξ, c·x)
// exactly as the canonical CPU kernel (src/backend/cpu.rs).

#include "common.cuh"

template <class S, bool ALIGNED>
__device__ __forceinline__ void gf_noise(const gf_noise_args& a) {
    enum { VEC = S::VEC };
    const gf_u64 units = (a.dim + VEC - 1) / VEC;
    GF_FOR_SAMPLES(b, a.batch) {
        const gf_noise_row r = gf_row(a.rows, a.row_stride, a.row0, b);
        const unsigned id = gf_sample_id(a.noise, b);
        const gf_u64 row = b * a.dim;
        GF_FOR_UNITS(u, units) {
            const gf_u64 e0 = u * VEC;
            float x[VEC], xi[VEC], o[VEC];
            gf_load<S, ALIGNED>(a.x, row, e0, a.dim, x);
            gf_noise_unit<S, ALIGNED>(a.noise, id, row, e0, a.dim, xi);
#pragma unroll
            for (int i = 0; i < VEC; ++i) o[i] = fmaf(r.b, xi[i], r.a * x[i]);
            gf_store<S, ALIGNED>(a.z, row, e0, a.dim, o);
            if (a.target) {
#pragma unroll
                for (int i = 0; i < VEC; ++i) o[i] = fmaf(r.d, xi[i], r.c * x[i]);
                gf_store<S, ALIGNED>(a.target, row, e0, a.dim, o);
            }
        }
    }
}

// _v: every pointer 16-byte aligned and D a multiple of the unit; _s: any.
#define GF_NOISE(NAME, S)                                                                       \
    extern "C" __global__ void __launch_bounds__(GF_THREADS) gf_noise_##NAME##_v(const gf_noise_args a) { \
        gf_noise<S, true>(a);                                                                  \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(GF_THREADS) gf_noise_##NAME##_s(const gf_noise_args a) { \
        gf_noise<S, false>(a);                                                                 \
    }

GF_NOISE(f32, gf_f32)
GF_NOISE(f16, gf_f16)
GF_NOISE(bf16, gf_bf16)
