// gaussflow CUDA C: what every kernel shares.
//
// * the argument structs (mirrored field for field by src/backend/cuda/abi.rs;
//   a harness test compares sizeof/offsetof on both sides),
// * Philox4x32-10 and Box–Muller with gaussflow's own ln and sincos_2pi,
//   copied operation for operation from src/rng/mod.rs (constants by f32 bit
//   pattern, fmaf exactly where Rust has mul_add; the PTX is generated with
//   --fmad=false so no other multiply-add is contracted),
// * loads and stores by storage type: one thread handles one "unit" of
//   16 bytes (4 f32 or 8 f16/bf16) of one sample; the aligned variant moves a
//   unit with one 128-bit access, the general one element by element,
// * a fixed-order block reduction (shared memory tree, __syncthreads only, so
//   the host harness can honour every barrier).
//
// The same file compiles as CUDA (NVRTC, scripts/gen_ptx.py) and as host C++
// (cuda-harness/, with a force-included shim that defines the CUDA built-ins).
// Nothing here includes a system or CUDA header, so the PTX depends only on
// the files in kernels/ and the pinned NVRTC.

#pragma once

typedef unsigned long long gf_u64;

// ---------------------------------------------------------------------------
// Argument structs (kernel parameters, passed by value).

// Coefficient rows: identical to src/rows.rs (#[repr(C)]).
struct gf_noise_row {
    float a, b, c, d;
};
// Step inputs: STATE, MODEL, MODEL_UNCOND, then GF_HISTORY_SLOTS history
// entries, newest first (src/rows.rs).
#define GF_STEP_INPUTS 8
struct gf_step_row {
    float x_hat[GF_STEP_INPUTS];
    float out[GF_STEP_INPUTS];
    float out_x_hat, noise, clip, pad;
};
struct gf_loss_row {
    float weight, c, d, pad;
};

// Where ξ comes from: a [B, D] buffer of the storage type (buf != 0), else
// Philox keyed by (key, sample id, stream, domain) when enabled != 0 —
// plain normals, or Brownian-tree increments when bm[0] (the tree depth) is
// not 0 — else no noise at all (ξ = 0).
struct gf_noise_src {
    const void* buf;
    const unsigned* ids;  // [B] explicit sample ids, or 0: id = id_offset + b
    unsigned id_offset;
    unsigned key_lo, key_hi;
    unsigned stream, domain;
    unsigned enabled;
    // Brownian increment: depth, leaf of lo, leaf of hi, then the f32 bits
    // of f_hi, 1 - f_lo, f_hi - f_lo, scale, 0 (src/rng/brownian.rs).
    unsigned bm[8];
};

// Rows: rows[b * row_stride] when rows != 0 (stride 0 = one shared row),
// else the row passed by value in row0 (one shared row, no upload).
struct gf_noise_args {
    const void* x;
    void* z;
    void* target;  // may be 0
    const gf_noise_row* rows;
    gf_u64 row_stride;
    gf_u64 batch, dim;
    gf_noise_src noise;
    gf_noise_row row0;
};

struct gf_step_args {
    const void* in[GF_STEP_INPUTS];  // by slot (STATE, MODEL, MODEL_UNCOND, history…); 0 = absent
    void* out;
    void* x_hat;  // may be 0
    const gf_step_row* rows;
    gf_u64 row_stride;
    gf_u64 batch, dim;
    gf_noise_src noise;
    gf_step_row row0;
};

struct gf_loss_args {
    const void* pred;
    const void* target;  // 0: rebuild c·x + d·ξ from x and noise
    const void* x;
    void* grad;  // may be 0
    float* partials;  // [B, chunks]
    const gf_loss_row* rows;
    gf_u64 row_stride;
    gf_u64 batch, dim, chunks;
    gf_noise_src noise;
    gf_loss_row row0;
};

struct gf_loss_finalize_args {
    const float* partials;  // [B, chunks]
    float* loss;  // [B]
    const gf_loss_row* rows;
    gf_u64 row_stride;
    gf_u64 batch, dim, chunks;
    gf_loss_row row0;
};

// Threads per block of every kernel (the loss reduction order depends on it,
// so it is a constant, not a property of the device).
#define GF_THREADS 256
// Elements of one sample reduced by one loss block (fixed, for the same reason).
#define GF_LOSS_CHUNK 8192

// ---------------------------------------------------------------------------
// Bits and conversions.

#define GF_F32(bits) __uint_as_float(bits##u)

// f16 <-> f32. The device uses the hardware conversion (cvt.rn: IEEE
// round to nearest even, subnormals kept); cuda_fp16.h does the same with
// the same asm, but including it would make the PTX depend on a header
// outside kernels/. The host harness supplies a bit-exact software twin.
#if defined(__CUDA_ARCH__)
__device__ __forceinline__ float gf_h2f(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ unsigned short gf_f2h(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
#endif

// bf16: integer operations, the same on every target (sm_70 has no bf16
// convert), rounding exactly as half::bf16::from_f32: NaN stays a quiet NaN
// with its sign and top payload bits, everything else rounds to nearest even.
__device__ __forceinline__ float gf_bf2f(unsigned short h) {
    return __uint_as_float((unsigned)h << 16);
}
__device__ __forceinline__ unsigned short gf_f2bf(float f) {
    const unsigned x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((x >> 16) | 0x0040u);
    return (unsigned short)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// Storage policies: the raw element type, the unit width, the conversions.
struct gf_f32 {
    typedef float raw;
    enum { VEC = 4 };
    static __device__ __forceinline__ float load(raw r) { return r; }
    static __device__ __forceinline__ raw store(float f) { return f; }
};
struct gf_f16 {
    typedef unsigned short raw;
    enum { VEC = 8 };
    static __device__ __forceinline__ float load(raw r) { return gf_h2f(r); }
    static __device__ __forceinline__ raw store(float f) { return gf_f2h(f); }
};
struct gf_bf16 {
    typedef unsigned short raw;
    enum { VEC = 8 };
    static __device__ __forceinline__ float load(raw r) { return gf_bf2f(r); }
    static __device__ __forceinline__ raw store(float f) { return gf_f2bf(f); }
};

// ---------------------------------------------------------------------------
// Memory access.

// A 16-byte load of an input stream that every thread reads once:
// non-coherent (read-only path) and not allocated in L1. CUDA C can say
// "read-only" (__ldg, ld.global.nc) or "streaming" (__ldcs, ld.global.cs) but
// not "read-only, bypass L1"; this is the one place the kernels use inline PTX
// for memory. Needs PTX ISA 7.4 and sm_70.
#if defined(__CUDA_ARCH__)
__device__ __forceinline__ uint4 gf_ld_stream(const void* p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.b32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}
#endif

// Unpack / pack one 16-byte unit.
template <class S>
__device__ __forceinline__ void gf_unpack(uint4 r, float (&v)[S::VEC]);
template <>
__device__ __forceinline__ void gf_unpack<gf_f32>(uint4 r, float (&v)[4]) {
    v[0] = __uint_as_float(r.x);
    v[1] = __uint_as_float(r.y);
    v[2] = __uint_as_float(r.z);
    v[3] = __uint_as_float(r.w);
}
template <class S>
__device__ __forceinline__ void gf_unpack16(uint4 r, float (&v)[8]) {
    const unsigned w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        v[2 * i] = S::load((unsigned short)(w[i] & 0xffffu));
        v[2 * i + 1] = S::load((unsigned short)(w[i] >> 16));
    }
}
template <>
__device__ __forceinline__ void gf_unpack<gf_f16>(uint4 r, float (&v)[8]) {
    gf_unpack16<gf_f16>(r, v);
}
template <>
__device__ __forceinline__ void gf_unpack<gf_bf16>(uint4 r, float (&v)[8]) {
    gf_unpack16<gf_bf16>(r, v);
}

template <class S>
__device__ __forceinline__ uint4 gf_pack(const float (&v)[S::VEC]);
template <>
__device__ __forceinline__ uint4 gf_pack<gf_f32>(const float (&v)[4]) {
    return make_uint4(__float_as_uint(v[0]), __float_as_uint(v[1]), __float_as_uint(v[2]),
                      __float_as_uint(v[3]));
}
template <class S>
__device__ __forceinline__ uint4 gf_pack16(const float (&v)[8]) {
    unsigned w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
        w[i] = (unsigned)S::store(v[2 * i]) | ((unsigned)S::store(v[2 * i + 1]) << 16);
    return make_uint4(w[0], w[1], w[2], w[3]);
}
template <>
__device__ __forceinline__ uint4 gf_pack<gf_f16>(const float (&v)[8]) {
    return gf_pack16<gf_f16>(v);
}
template <>
__device__ __forceinline__ uint4 gf_pack<gf_bf16>(const float (&v)[8]) {
    return gf_pack16<gf_bf16>(v);
}

// Loads the unit of elements e0 .. e0 + VEC of the row starting at flat index
// `row` (= b·D). ALIGNED: D is a multiple of VEC and the base is 16-byte
// aligned, so the unit is one aligned 16-byte load. Otherwise element by
// element, elements past D read as 0.
template <class S, bool ALIGNED>
__device__ __forceinline__ void gf_load(const void* base, gf_u64 row, gf_u64 e0, gf_u64 dim,
                                        float (&v)[S::VEC]) {
    const typename S::raw* p = static_cast<const typename S::raw*>(base) + row + e0;
    if (ALIGNED) {
        gf_unpack<S>(gf_ld_stream(p), v);
    } else {
#pragma unroll
        for (int i = 0; i < S::VEC; ++i) v[i] = e0 + i < dim ? S::load(__ldg(p + i)) : 0.0f;
    }
}

// Stores a unit: one streaming (evict-first, st.global.cs) 16-byte store when
// aligned, else element by element up to D.
template <class S, bool ALIGNED>
__device__ __forceinline__ void gf_store(void* base, gf_u64 row, gf_u64 e0, gf_u64 dim,
                                         const float (&v)[S::VEC]) {
    typename S::raw* p = static_cast<typename S::raw*>(base) + row + e0;
    if (ALIGNED) {
        __stcs(reinterpret_cast<uint4*>(p), gf_pack<S>(v));
    } else {
#pragma unroll
        for (int i = 0; i < S::VEC; ++i)
            if (e0 + i < dim) __stcs(p + i, S::store(v[i]));
    }
}

// ---------------------------------------------------------------------------
// Philox4x32-10 (Random123), layout v1 of src/rng/mod.rs.

#define GF_PHILOX_M0 0xD2511F53u
#define GF_PHILOX_M1 0xCD9E8D57u
#define GF_PHILOX_W0 0x9E3779B9u
#define GF_PHILOX_W1 0xBB67AE85u

__device__ __forceinline__ uint4 gf_philox(uint4 c, unsigned k0, unsigned k1) {
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += GF_PHILOX_W0;
            k1 += GF_PHILOX_W1;
        }
        // __umulhi is mul.hi.u32: the high word of the 32×32 product.
        const unsigned hi0 = __umulhi(GF_PHILOX_M0, c.x), lo0 = GF_PHILOX_M0 * c.x;
        const unsigned hi1 = __umulhi(GF_PHILOX_M1, c.z), lo1 = GF_PHILOX_M1 * c.z;
        c = make_uint4(hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0);
    }
    return c;
}

// ((r >> 8) + 1) · 2⁻²⁴ ∈ (0, 1], exact.
__device__ __forceinline__ float gf_uniform(unsigned r) {
    return (float)((r >> 8) + 1u) * GF_F32(0x33800000);
}

// rng/mod.rs ln(): Cephes logf, same operation sequence. BEGIN-CONSTANTS ln
__device__ __forceinline__ float gf_ln(float v) {
    const unsigned bits = __float_as_uint(v);
    int e = (int)((bits >> 23) & 0xffu) - 127;
    float m = __uint_as_float((bits & 0x007fffffu) | 0x3f800000u);
    if (m > GF_F32(0x3fb504f3)) {  // SQRT_2
        m = m * 0.5f;
        e += 1;
    }
    const float x = m - 1.0f;
    const float z = x * x;
    float p = GF_F32(0x3d9021bb);
    p = fmaf(p, x, GF_F32(0xbdebd1b8));
    p = fmaf(p, x, GF_F32(0x3def251b));
    p = fmaf(p, x, GF_F32(0xbdfe5d4f));
    p = fmaf(p, x, GF_F32(0x3e11e9bf));
    p = fmaf(p, x, GF_F32(0xbe2aae50));
    p = fmaf(p, x, GF_F32(0x3e4ccead));
    p = fmaf(p, x, GF_F32(0xbe7ffffc));
    p = fmaf(p, x, GF_F32(0x3eaaaaaa));
    const float ef = (float)e;
    float y = (x * z) * p;
    y = fmaf(ef, GF_F32(0xb95e8083), y);  // LN2_LO
    y = fmaf(-0.5f, z, y);
    const float r = x + y;
    return fmaf(ef, GF_F32(0x3f318000), r);  // LN2_HI
}
// END-CONSTANTS ln

// rng/mod.rs sincos_2pi(): (sin 2πu, cos 2πu) by exact quadrant reduction on 4u.
// BEGIN-CONSTANTS sincos
__device__ __forceinline__ void gf_sincos_2pi(float u, float* s_out, float* c_out) {
    const float v = 4.0f * u;
    const float q = rintf(v);  // round half to even, as round_ties_even
    const float r = v - q;
    const float r2 = r * r;
    float s = GF_F32(0x39283c1a);
    s = fmaf(s, r2, GF_F32(0xbb996966));
    s = fmaf(s, r2, GF_F32(0x3da335e4));
    s = fmaf(s, r2, GF_F32(0xbf255de7));
    s = fmaf(s, r2, GF_F32(0x3fc90fdb));
    s = s * r;
    float c = GF_F32(0xb7d36909);
    c = fmaf(c, r2, GF_F32(0x3a70fa84));
    c = fmaf(c, r2, GF_F32(0xbcaae9e4));
    c = fmaf(c, r2, GF_F32(0x3e81e0f8));
    c = fmaf(c, r2, GF_F32(0xbf9de9e7));
    c = fmaf(c, r2, GF_F32(0x3f800000));
    // Quadrant k of (sin, cos): (s, c), (c, −s), (−s, −c), (−c, s); written
    // as selects so lanes of a warp in different quadrants do not diverge.
    const int k = (int)q & 3;
    const float sa = (k & 1) ? c : s, ca = (k & 1) ? s : c;
    *s_out = (k & 2) ? -sa : sa;
    *c_out = ((k + 1) & 2) ? -ca : ca;
}
// END-CONSTANTS sincos

// Four standard normals from four raw words (pairs (0, 1) and (2, 3)).
__device__ __forceinline__ void gf_box_muller(uint4 r, float* n) {
    const float rho0 = __fsqrt_rn(-2.0f * gf_ln(gf_uniform(r.x)));
    const float rho1 = __fsqrt_rn(-2.0f * gf_ln(gf_uniform(r.z)));
    float s0, c0, s1, c1;
    gf_sincos_2pi(gf_uniform(r.y), &s0, &c0);
    gf_sincos_2pi(gf_uniform(r.w), &s1, &c1);
    n[0] = rho0 * c0;
    n[1] = rho0 * s0;
    n[2] = rho1 * c1;
    n[3] = rho1 * s1;
}

__device__ __forceinline__ unsigned gf_sample_id(const gf_noise_src& n, gf_u64 b) {
    return n.ids ? n.ids[b] : n.id_offset + (unsigned)b;
}

// Brownian-tree increments of Philox block `block` of sample `id`: the walk
// of src/rng/brownian.rs with the same f32 operations in the same order
// (node n's normals are stream n; bridge scale √(2^-j)/2 a power of two,
// times f32 √½ for odd j). Loops stay rolled: the depth is a launch value.
__device__ __forceinline__ void gf_bm_z(const gf_noise_src& n, unsigned id, unsigned block,
                                        unsigned node, float* z) {
    gf_box_muller(gf_philox(make_uint4(block, id, node, n.domain), n.key_lo, n.key_hi), z);
}

__device__ __forceinline__ float gf_bm_bridge(unsigned j) {
    const float p = __uint_as_float((127u - (j / 2u + 1u)) << 23);
    return (j & 1u) ? p * GF_F32(0x3f3504f3) : p;
}

// (left, right) = fma(±s, z_node, 0.5·d), the halves of node's increment d.
__device__ __forceinline__ void gf_bm_split(const gf_noise_src& n, unsigned id, unsigned block,
                                            unsigned j, unsigned node, const float* d, float* l,
                                            float* r) {
    float z[4];
    gf_bm_z(n, id, block, node, z);
    const float s = gf_bm_bridge(j);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float half = 0.5f * d[i];
        l[i] = fmaf(s, z[i], half);
        r[i] = fmaf(-s, z[i], half);
    }
}

__device__ __forceinline__ void gf_brownian4(const gf_noise_src& n, unsigned id, unsigned block,
                                             float* xi) {
    const unsigned depth = n.bm[0], lo = n.bm[1], hi = n.bm[2];
    const float f_hi = __uint_as_float(n.bm[3]), g_lo = __uint_as_float(n.bm[4]);
    const float df = __uint_as_float(n.bm[5]), scale = __uint_as_float(n.bm[6]);
    float d[4], l[4], r[4];
    gf_bm_z(n, id, block, 0u, d);
    unsigned node = 1u;
#pragma unroll 1
    for (unsigned k = 1u; k <= depth; ++k) {
        const unsigned sh = depth - k;
        const unsigned bl = (lo >> sh) & 1u, bh = (hi >> sh) & 1u;
        gf_bm_split(n, id, block, k - 1u, node, d, l, r);
        if (bl == bh) {
#pragma unroll
            for (int i = 0; i < 4; ++i) d[i] = bh ? r[i] : l[i];
            node = 2u * node + bh;
            continue;
        }
        float above[4], da[4], below[4], db[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            above[i] = 0.0f;
            da[i] = r[i];
            below[i] = 0.0f;
            db[i] = l[i];
        }
        unsigned na = 2u * node + 1u, nb = 2u * node;
#pragma unroll 1
        for (unsigned j = k + 1u; j <= depth; ++j) {
            const unsigned sj = depth - j;
            gf_bm_split(n, id, block, j - 1u, na, da, l, r);
            const bool ha = (hi >> sj) & 1u;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                if (ha) above[i] = above[i] + l[i];
                da[i] = ha ? r[i] : l[i];
            }
            na = 2u * na + (ha ? 1u : 0u);
            gf_bm_split(n, id, block, j - 1u, nb, db, l, r);
            const bool hb = (lo >> sj) & 1u;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                if (!hb) below[i] = below[i] + r[i];
                db[i] = hb ? r[i] : l[i];
            }
            nb = 2u * nb + (hb ? 1u : 0u);
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            above[i] = fmaf(f_hi, da[i], above[i]);
            below[i] = fmaf(g_lo, db[i], below[i]);
            xi[i] = scale * (below[i] + above[i]);
        }
        return;
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) xi[i] = scale * (df * d[i]);
}

// ξ for the unit at element e0 (a multiple of 4) of the sample with id `id`:
// element i uses Philox block i / 4, lane i % 4, so the unit is VEC / 4 blocks.
// TREE: the kernel may take Brownian-tree noise (the step only; the host
// refuses it elsewhere, and the other kernels stay free of its registers).
template <class S, bool ALIGNED, bool TREE = false>
__device__ __forceinline__ void gf_noise_unit(const gf_noise_src& n, unsigned id, gf_u64 row,
                                              gf_u64 e0, gf_u64 dim, float (&xi)[S::VEC]) {
    if (n.buf) {
        gf_load<S, ALIGNED>(n.buf, row, e0, dim, xi);
    } else if (TREE && n.bm[0]) {
        const unsigned block = (unsigned)(e0 >> 2);
#pragma unroll
        for (int q = 0; q < S::VEC / 4; ++q) gf_brownian4(n, id, block + q, &xi[4 * q]);
    } else {
        const unsigned block = (unsigned)(e0 >> 2);
#pragma unroll
        for (int q = 0; q < S::VEC / 4; ++q)
            gf_box_muller(gf_philox(make_uint4(block + q, id, n.stream, n.domain), n.key_lo, n.key_hi),
                          &xi[4 * q]);
    }
}

template <class Row>
__device__ __forceinline__ Row gf_row(const Row* rows, gf_u64 stride, const Row& row0, gf_u64 b) {
    return rows ? rows[b * stride] : row0;
}

// ---------------------------------------------------------------------------
// Fixed-order block sum: a shared-memory tree over GF_THREADS lanes. The
// result is the same bits for the same inputs whatever the device or grid.
// Every thread of the block must call it (it holds __syncthreads).
template <class T>
__device__ __forceinline__ T gf_block_sum(T v, T* s) {
    const unsigned t = threadIdx.x;
    s[t] = v;
    __syncthreads();
#pragma unroll
    for (unsigned half = GF_THREADS / 2; half > 0; half >>= 1) {
        if (t < half) s[t] = s[t] + s[t + half];
        __syncthreads();
    }
    const T total = s[0];
    __syncthreads();  // s may be reused right after
    return total;
}

// Grid-stride loops: samples over blockIdx.y, units (or chunks) over x, so no
// index is ever divided and any grid shape covers the whole [B, D].
#define GF_FOR_SAMPLES(b, batch) for (gf_u64 b = blockIdx.y; b < (batch); b += gridDim.y)
#define GF_FOR_UNITS(u, units)                                                          \
    for (gf_u64 u = (gf_u64)blockIdx.x * blockDim.x + threadIdx.x; u < (units); \
         u += (gf_u64)gridDim.x * blockDim.x)
