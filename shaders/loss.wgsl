// Weighted loss and its gradient (docs/DESIGN.md §4), two entry points:
//
// `partial`: one workgroup per (sample, block of LOSS_BLOCK = 256 × 16
//   elements). Invocation i takes the block's elements 16i … 16i + 15,
//   computes δ = pred − target (target read, or rebuilt as fma(d, ξ, c·x)
//   exactly as the CPU does) and accumulates δ² in element order; the
//   workgroup then adds its 256 sums in a fixed tree. Which elements an
//   invocation sums depends only on their place in the sample, so a sample's
//   loss has the same bits wherever it sits in the batch. Sums are carried
//   as unevaluated (hi, lo) f32 pairs (two-sum): deterministic and close to
//   the exactly rounded sum.
//   The gradient (2w/D)·δ is written by the same invocation. For bf16 (two
//   elements per u32 word) each invocation writes whole words instead: its
//   16 elements shifted down by one when the block starts in the middle of a
//   word, so it also computes the element before its first (in the previous
//   block or sample). Every word then has one writer; a word half outside
//   the tensor is merged by read-modify-write.
// `finish`: one invocation per sample adds that sample's block sums in order
//   and writes L_b = w_b · Σ δ² / D.
//
// Row: (weight, c, d, pad). Flags: REBUILD (target = c·x + d·ξ, with
// PHILOX or NOISE_BUF), GRAD (write the gradient).
// Slots: pred 0, target 1, x 2, noise buffer 3, grad 4, loss 5, partials 6.
// P.q = 1 when the window ends at the end of the tensor.

const LOSS_BLOCK: u32 = 4096u;

@group(0) @binding(3) var<storage, read_write> pred: array<Store>;
//#if REBUILD
@group(0) @binding(4) var<storage, read_write> xs: array<Store>;
//#else
@group(0) @binding(4) var<storage, read_write> tgt: array<Store>;
//#endif
//#if GRAD
@group(0) @binding(5) var<storage, read_write> grad: array<Store>;
//#endif
@group(0) @binding(6) var<storage, read_write> partials: array<vec2<f32>>;
@group(0) @binding(7) var<storage, read_write> loss: array<f32>;

var<workgroup> red: array<vec2<f32>, WG>;

// (hi, lo) + (hi, lo): Knuth's two-sum on the high parts, low parts added,
// renormalised.
// Not inf or NaN, by the bits (WGSL lets a float compare assume neither).
fn finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

fn add2(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let s = a.x + b.x;
    // The compensation of an infinite sum is inf − inf = NaN: an infinite
    // δ² gives an infinite loss here as on the CPU, not NaN.
    if (!finite(s)) {
        return vec2<f32>(s, 0.0);
    }
    let bb = s - a.x;
    let err = (a.x - (s - bb)) + (b.x - bb);
    let lo = (a.y + b.y) + err;
    let hi = s + lo;
    return vec2<f32>(hi, lo - (hi - s));
}

// a / b with one residual correction (WGSL division may be 2.5 ulp off).
fn div_corrected(a: f32, b: f32) -> f32 {
    let q = a / b;
    if (!finite(q)) {
        return q;
    }
    let r = fma(-q, b, a);
    return q + r / b;
}

// (δ, ∂L/∂pred) of local element f, element e of local sample b.
fn delta(cache: ptr<function, NoiseCache>, f: u32, b: u32, e: u32) -> vec2<f32> {
    let r = row(b, 0u);
    let kp = off(0u) + f;
    let p = ld(pred[kp >> SHIFT], kp);
//#if REBUILD
    let kx = off(2u) + f;
    let t = fma(r.z, xi(cache, f, b, e, 3u), r.y * ld(xs[kx >> SHIFT], kx));
//#else
    let kt = off(1u) + f;
    let t = ld(tgt[kt >> SHIFT], kt);
//#endif
    let d = p - t;
    return vec2<f32>(d, div_corrected(2.0 * r.x, f32(P.dim)) * d);
}

@compute @workgroup_size(WG)
fn partial(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let j = group_index(wg, nwg);
    var acc = vec2<f32>(0.0, 0.0);
    if (j < P.count) {
        let bj = P.item_blk + j;
        let b = P.item_b + bj / P.nblk;
        let blk = bj % P.nblk;
        let e_start = blk * LOSS_BLOCK;
        // The block is local elements f0 .. f1; this invocation sums s0 ….
        let f0 = b * P.dim + e_start - P.e0;
        let f1 = f0 + min(LOSS_BLOCK, P.dim - e_start);
        let s0 = f0 + 16u * li;
        // Elements written: s0 − shift …, up to w_end (whole words for bf16).
        var shift = 0u;
        var w_end = f1;
//#if BF16
//#if GRAD
        shift = (off(4u) + f0) & 1u;
        if (!(P.q == 1u && f1 == P.n)) {
            w_end = f1 - ((off(4u) + f1) & 1u);
        }
//#endif
//#endif
        let w0 = s0 - shift;
        var cache = noise_cache();
        var pos = pos_start();
        var gv: array<f32, 17>;
        for (var i = 0u; i < 16u + shift; i = i + 1u) {
            let f = w0 + i;
            if (f >= P.n || f >= f1) {
                continue;
            }
            pos_next(&pos, f);
            let v = delta(&cache, f, pos.b, pos.e);
            // The element before s0 (i < shift) is summed by its own invocation.
            if (i >= shift) {
                acc = add2(acc, vec2<f32>(v.x * v.x, 0.0));
            }
            gv[i] = v.y;
        }
//#if GRAD
        let kg = off(4u) + w0;
//#if BF16
        for (var i = 0u; i < 16u; i = i + 2u) {
            let lo_ok = w0 + i < min(w_end, P.n);
            let hi_ok = w0 + i + 1u < min(w_end, P.n);
            if (lo_ok || hi_ok) {
                let w = (kg + i) >> 1u;
                grad[w] = merge_bf16(grad[w], gv[i], gv[i + 1u], lo_ok, hi_ok);
            }
        }
//#else
        for (var i = 0u; i < 16u; i = i + 1u) {
            if (w0 + i < min(w_end, P.n)) {
                grad[kg + i] = st(gv[i]);
            }
        }
//#endif
//#endif
    }
    red[li] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (li < s) {
            red[li] = add2(red[li], red[li + s]);
        }
        workgroupBarrier();
    }
    if (li == 0u && j < P.count) {
        partials[off(6u) + j] = red[0];
    }
}

@compute @workgroup_size(WG)
fn finish(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let b = group_index(wg, nwg) * WG + li;
    if (b >= P.count) {
        return;
    }
    var acc = vec2<f32>(0.0, 0.0);
    let p0 = off(6u) + b * P.nblk;
    for (var k = 0u; k < P.nblk; k = k + 1u) {
        acc = add2(acc, partials[p0 + k]);
    }
    let w = row(b, 0u).x;
    loss[off(5u) + b] = w * div_corrected(acc.x + acc.y, f32(P.dim));
}
