// Host C++ stand-ins for the CUDA built-ins the kernels use, force-included
// (-include shim.h) before kernels/*.cu are compiled by g++ for the harness.
//
// Faithful where it matters for bits: fmaf is the C library's correctly
// rounded fma, __fsqrt_rn is IEEE sqrt, rintf rounds half to even (default
// rounding mode), the f16 conversion is a bit-exact software RNE (checked
// against the `half` crate). g++ runs with -ffp-contract=off so, as on the
// device (--fmad=false), only the written fmaf fuse.

#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct uint3 {
    unsigned x, y, z;
};
typedef uint3 dim3;

inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }

// The executing thread's coordinates, set by the launcher (harness.cpp).
extern thread_local uint3 threadIdx, blockIdx, blockDim, gridDim;

// Waits for every thread of the block (a std::barrier in threaded launches).
void gfh_syncthreads();
#define __syncthreads() gfh_syncthreads()

inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline unsigned __umulhi(unsigned a, unsigned b) {
    return (unsigned)(((unsigned long long)a * b) >> 32);
}
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
using std::fmaf;
using std::rintf;

template <class T>
inline T __ldg(const T* p) {
    return *p;
}
template <class T>
inline void __stcs(T* p, T v) {
    *p = v;
}

inline uint4 gf_ld_stream(const void* p) {
    uint4 v;
    std::memcpy(&v, p, 16);
    return v;
}

inline float gf_h2f(unsigned short h) {
    const unsigned sign = (unsigned)(h & 0x8000u) << 16;
    const unsigned exp = (h >> 10) & 0x1fu;
    unsigned man = h & 0x3ffu;
    unsigned bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {  // subnormal: normalise
        int e = -1;
        do {
            man <<= 1;
            ++e;
        } while (!(man & 0x400u));
        bits = sign | ((unsigned)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    return __uint_as_float(bits);
}

// IEEE binary32 -> binary16, round to nearest even (what cvt.rn.f16.f32 does).
inline unsigned short gf_f2h(float f) {
    const unsigned x = __float_as_uint(f);
    const unsigned sign = (x >> 16) & 0x8000u;
    const unsigned exp = (x >> 23) & 0xffu;
    const unsigned man = x & 0x7fffffu;
    if (exp == 0xff) return (unsigned short)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0u));
    const int e = (int)exp - 127 + 15;
    if (e >= 0x1f) return (unsigned short)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10) return (unsigned short)sign;  // below half the smallest subnormal
        const unsigned m = man | 0x800000u;
        const unsigned shift = (unsigned)(14 - e);
        unsigned h = m >> shift;
        const unsigned rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (h & 1u))) ++h;
        return (unsigned short)(sign | h);
    }
    unsigned h = ((unsigned)e << 10) | (man >> 13);
    const unsigned rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into inf: correct
    return (unsigned short)(sign | h);
}
