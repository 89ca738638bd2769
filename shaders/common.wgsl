// Definitions shared by the noise, step and loss kernels.
//
// Assembled by src/backend/wgpu/template.rs, which keeps the lines between
// `//#if FLAG` … `//#else` … `//#endif` according to the variant's flags:
// F32 / F16 / BF16 (storage type), PHILOX (in-kernel noise), BROWNIAN (with
// PHILOX: Brownian-tree increments instead of plain normals), IDS (explicit
// sample ids), NOISE_BUF (noise read from a tensor) and each op's own.
//
// Layout of a launch. The kernels see a window of the flattened [B, D]
// tensors: local element f (0 ≤ f < P.n) is sample b = (P.e0 + f) / D
// (counted from the window's first sample) and element e = (P.e0 + f) % D of
// it. Work is done in quads of four consecutive elements: local quad j covers
// [4j − P.q, 4j − P.q + 4), and u32 wrap-around makes "−1" fail the `< P.n`
// test. For bf16, packed two to a u32 word, the phase P.q puts every quad on
// a word boundary of every written tensor, so two invocations never write
// halves of one word; only a word half outside the tensor is merged by
// read-modify-write (and no other tensor of the launch can own that half).

const WG: u32 = 256u;

struct Params {
    n: u32,
    dim: u32,
    e0: u32,
    q: u32,
    count: u32,
    row_base: u32,
    row_stride: u32,
    id_base: u32,
    key: vec2<u32>,
    stream: u32,
    domain: u32,
    item_b: u32,
    item_blk: u32,
    nblk: u32,
    pad: u32,
    // Brownian-tree increment (BROWNIAN): depth, leaf of lo, leaf of hi,
    // then the f32 bits of f_hi, 1 − f_lo, f_hi − f_lo, scale, 0.
    bm: array<vec4<u32>, 2>,
    off: array<vec4<u32>, 3>,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> rows: array<vec4<f32>>;

// Element offset, inside its binding, of local element 0 of tensor `slot`.
fn off(slot: u32) -> u32 {
    return P.off[slot >> 2u][slot & 3u];
}

// Word `k` (16-byte units) of local sample b's coefficient row.
fn row(b: u32, k: u32) -> vec4<f32> {
    return rows[P.row_base + b * P.row_stride + k];
}

// (sample, element) of a run of consecutive local elements: one division
// for the first, then counting.
struct Pos {
    b: u32,
    e: u32,
    started: bool,
}

fn pos_start() -> Pos {
    return Pos(0u, 0u, false);
}

// Moves to local element f (the one after the previous call's).
fn pos_next(p: ptr<function, Pos>, f: u32) {
    if ((*p).started) {
        (*p).e = (*p).e + 1u;
        if ((*p).e == P.dim) {
            (*p).e = 0u;
            (*p).b = (*p).b + 1u;
        }
    } else {
        let g = P.e0 + f;
        (*p).b = g / P.dim;
        (*p).e = g - (*p).b * P.dim;
        (*p).started = true;
    }
}

// Linear index of this workgroup in a 2-D dispatch (x up to 65535 wide).
fn group_index(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.y * nwg.x + wg.x;
}

// ---- storage types: ld(word, k) widens element k, the store helpers narrow
// with round-to-nearest-even by bit operations (as the `half` crate does), so
// every adapter rounds the same way.

//#if F32
alias Store = f32;
const SHIFT: u32 = 0u;
fn ld(v: f32, k: u32) -> f32 {
    return v;
}
fn st(x: f32) -> f32 {
    return x;
}
//#endif

//#if F16
alias Store = f16;
const SHIFT: u32 = 0u;
// f16 bits → f32, exact.
fn f16_bits_to_f32(h: u32) -> f32 {
    let s = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0x1fu) {
        return bitcast<f32>(s | 0x7f800000u | (m << 13u));
    }
    if (e == 0u) {
        let mag = f32(m) * bitcast<f32>(0x33800000u); // m · 2⁻²⁴, exact
        return select(mag, -mag, s != 0u);
    }
    return bitcast<f32>(s | ((e + 112u) << 23u) | (m << 13u));
}
// f32 → f16 bits, round to nearest even, overflow to ±inf, NaN kept quiet
// (half::f16::from_f32).
fn f32_to_f16_bits(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    let sign = (x & 0x80000000u) >> 16u;
    let ex = x & 0x7f800000u;
    let man = x & 0x007fffffu;
    if (ex == 0x7f800000u) {
        let nan_bit = select(0x0200u, 0u, man == 0u);
        return sign | 0x7c00u | nan_bit | (man >> 13u);
    }
    let half_exp = i32(ex >> 23u) - 127 + 15;
    if (half_exp >= 0x1f) {
        return sign | 0x7c00u;
    }
    if (half_exp <= 0) {
        if (14 - half_exp > 24) {
            return sign;
        }
        let m = man | 0x00800000u;
        let sh = u32(14 - half_exp);
        var half_man = m >> sh;
        let round_bit = 1u << (sh - 1u);
        if ((m & round_bit) != 0u && (m & (3u * round_bit - 1u)) != 0u) {
            half_man = half_man + 1u;
        }
        return sign | half_man;
    }
    let bits = sign | (u32(half_exp) << 10u) | (man >> 13u);
    if ((man & 0x1000u) != 0u && (man & 0x2fffu) != 0u) {
        return bits + 1u;
    }
    return bits;
}
fn ld(v: f16, k: u32) -> f32 {
    return f32(v);
}
// Rounds by bits first, so the conversion to f16 is of a representable
// value and exact whatever rounding the adapter's conversion uses.
fn st(x: f32) -> f16 {
    return f16(f16_bits_to_f32(f32_to_f16_bits(x)));
}
//#endif

//#if BF16
alias Store = u32;
const SHIFT: u32 = 1u;
// Element k of a packed pair: even elements in the low half (little endian).
fn ld(w: u32, k: u32) -> f32 {
    return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (k & 1u) == 1u));
}
// f32 → bf16 bits, round to nearest even, NaN kept quiet (half::bf16::from_f32).
fn bf16_bits(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (x >> 16u) | 0x0040u;
    }
    if ((x & 0x8000u) != 0u && (x & 0x17fffu) != 0u) {
        return (x >> 16u) + 1u;
    }
    return x >> 16u;
}
fn pack_bf16(lo: f32, hi: f32) -> u32 {
    return bf16_bits(lo) | (bf16_bits(hi) << 16u);
}
// The word for elements (lo, hi) where only those flagged valid may change.
fn merge_bf16(old: u32, lo: f32, hi: f32, lo_ok: bool, hi_ok: bool) -> u32 {
    var w = old;
    if (lo_ok) {
        w = (w & 0xffff0000u) | bf16_bits(lo);
    }
    if (hi_ok) {
        w = (w & 0x0000ffffu) | (bf16_bits(hi) << 16u);
    }
    return w;
}
//#endif

// ---- noise source: ξ of local sample b, element e.

//#if IDS
@group(0) @binding(2) var<storage, read> ids: array<u32>;
fn sample_id(b: u32) -> u32 {
    return ids[P.id_base + b];
}
//#else
fn sample_id(b: u32) -> u32 {
    return P.id_base + b;
}
//#endif

//#if NOISE_BUF
@group(0) @binding(2) var<storage, read_write> nbuf: array<Store>;
//#endif

// Normals of one Philox block, cached across the elements of a quad (which
// span at most three blocks).
struct NoiseCache {
    b: u32,
    blk: u32,
    v: vec4<f32>,
}

fn noise_cache() -> NoiseCache {
    return NoiseCache(0xffffffffu, 0xffffffffu, vec4<f32>(0.0));
}

//#if BROWNIAN
// Brownian-tree increments (src/rng/brownian.rs, the same f32 operations in
// the same order): the four elements of Philox block blk of sample id, one
// walk down the tree with vec4 values; node n's normals are stream n.
fn bm_z(id: u32, blk: u32, node: u32) -> vec4<f32> {
    return box_muller(philox4x32_10(vec4<u32>(blk, id, node, P.domain), P.key));
}

// √(2^-j)/2: a power of two, times f32 √½ for odd j (exact products).
fn bm_bridge(j: u32) -> f32 {
    let p = bitcast<f32>((127u - (j / 2u + 1u)) << 23u);
    return select(p, p * bitcast<f32>(0x3f3504f3u), (j & 1u) == 1u);
}

struct Halves {
    l: vec4<f32>,
    r: vec4<f32>,
}

// The halves fma(±s, z_n, 0.5·d) of the increment d of node n at level j.
fn bm_split(id: u32, blk: u32, j: u32, n: u32, d: vec4<f32>) -> Halves {
    let s = bm_bridge(j);
    let z = bm_z(id, blk, n);
    let half = 0.5 * d;
    return Halves(fma(vec4<f32>(s), z, half), fma(vec4<f32>(-s), z, half));
}

fn brownian4(id: u32, blk: u32) -> vec4<f32> {
    let depth = P.bm[0].x;
    let lo = P.bm[0].y;
    let hi = P.bm[0].z;
    let f_hi = bitcast<f32>(P.bm[0].w);
    let g_lo = bitcast<f32>(P.bm[1].x);
    let df = bitcast<f32>(P.bm[1].y);
    let scale = bitcast<f32>(P.bm[1].z);
    var d = bm_z(id, blk, 0u);
    var n = 1u;
    for (var k = 1u; k <= depth; k = k + 1u) {
        let sh = depth - k;
        let bl = (lo >> sh) & 1u;
        let bh = (hi >> sh) & 1u;
        let h = bm_split(id, blk, k - 1u, n, d);
        if (bl == bh) {
            d = select(h.l, h.r, bh == 1u);
            n = 2u * n + bh;
            continue;
        }
        var above = vec4<f32>(0.0);
        var da = h.r;
        var na = 2u * n + 1u;
        var below = vec4<f32>(0.0);
        var db = h.l;
        var nb = 2u * n;
        for (var j = k + 1u; j <= depth; j = j + 1u) {
            let sj = depth - j;
            let a = bm_split(id, blk, j - 1u, na, da);
            if (((hi >> sj) & 1u) == 1u) {
                above = above + a.l;
                da = a.r;
                na = 2u * na + 1u;
            } else {
                da = a.l;
                na = 2u * na;
            }
            let c = bm_split(id, blk, j - 1u, nb, db);
            if (((lo >> sj) & 1u) == 1u) {
                db = c.r;
                nb = 2u * nb + 1u;
            } else {
                below = below + c.r;
                db = c.l;
                nb = 2u * nb;
            }
        }
        above = fma(vec4<f32>(f_hi), da, above);
        below = fma(vec4<f32>(g_lo), db, below);
        return scale * (below + above);
    }
    return scale * (df * d);
}
//#endif

//#if PHILOX
fn philox_normal(cache: ptr<function, NoiseCache>, b: u32, e: u32) -> f32 {
    let blk = e >> 2u;
    if ((*cache).b != b || (*cache).blk != blk) {
//#if BROWNIAN
        (*cache).v = brownian4(sample_id(b), blk);
//#else
        let bits = philox4x32_10(vec4<u32>(blk, sample_id(b), P.stream, P.domain), P.key);
        (*cache).v = box_muller(bits);
//#endif
        (*cache).b = b;
        (*cache).blk = blk;
    }
    return (*cache).v[e & 3u];
}
//#endif

// ξ of local element f (sample b, element e); NB is the noise buffer's slot.
fn xi(cache: ptr<function, NoiseCache>, f: u32, b: u32, e: u32, nb_slot: u32) -> f32 {
//#if PHILOX
    return philox_normal(cache, b, e);
//#else
//#if NOISE_BUF
    let k = off(nb_slot) + f;
    return ld(nbuf[k >> SHIFT], k);
//#else
    return 0.0;
//#endif
//#endif
}
