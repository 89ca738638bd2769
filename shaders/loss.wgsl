// Weighted loss and its gradient (DESIGN §4), two entry points:
//
// `partial`: one workgroup per (sample, block of LOSS_BLOCK elements). Each
//   invocation walks quads of the block, computes δ = pred − target
//   (target read, or rebuilt as fma(d, ξ, c·x) exactly as the CPU does),
//   accumulates δ² for the elements inside the block, and writes the
//   gradient (2w/D)·δ of the quads the block owns (a quad belongs to the
//   block holding its first element, so with bf16 words and odd D every word
//   has one writer). The workgroup then sums its 256 accumulators in a fixed
//   tree. Sums are carried as unevaluated (hi, lo) f32 pairs (two-sum), so
//   the result is deterministic and close to the exactly rounded sum.
// `finish`: one invocation per sample adds that sample's block sums in order
//   and writes L_b = w_b · Σ δ² / D.
//
// Row: (weight, c, d, pad). Flags: REBUILD (target = c·x + d·ξ, with
// PHILOX or NOISE_BUF), GRAD (write the gradient).
// Slots: pred 0, target 1, x 2, noise buffer 3, grad 4, loss 5, partials 6.

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
fn add2(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let s = a.x + b.x;
    let bb = s - a.x;
    let err = (a.x - (s - bb)) + (b.x - bb);
    let lo = (a.y + b.y) + err;
    let hi = s + lo;
    return vec2<f32>(hi, lo - (hi - s));
}

// a / b with one residual correction (WGSL division may be 2.5 ulp off).
fn div_corrected(a: f32, b: f32) -> f32 {
    let q = a / b;
    let r = fma(-q, b, a);
    return q + r / b;
}

//#if GRAD
fn put_grad(base: u32, v: array<f32, 4>, ok: array<bool, 4>) {
    let k = off(4u) + base;
//#if BF16
    for (var p = 0u; p < 4u; p = p + 2u) {
        if (ok[p] || ok[p + 1u]) {
            let w = (k + p) >> 1u;
            grad[w] = merge_bf16(grad[w], v[p], v[p + 1u], ok[p], ok[p + 1u]);
        }
    }
//#else
    for (var i = 0u; i < 4u; i = i + 1u) {
        if (ok[i]) {
            grad[k + i] = st(v[i]);
        }
    }
//#endif
}
//#endif

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
        let f0 = b * P.dim + e_start - P.e0;
        let f1 = f0 + min(LOSS_BLOCK, P.dim - e_start);
        let ka = (f0 + P.q) >> 2u;
        let kb = (f1 - 1u + P.q) >> 2u;
        for (var k = ka + li; k <= kb; k = k + WG) {
            let base = 4u * k - P.q;
            var cache = noise_cache();
            var gv = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
            var ok = array<bool, 4>(false, false, false, false);
            for (var i = 0u; i < 4u; i = i + 1u) {
                let f = base + i;
                if (f >= P.n) {
                    continue;
                }
                ok[i] = true;
                let g = P.e0 + f;
                let bi = g / P.dim;
                let e = g - bi * P.dim;
                let r = row(bi, 0u);
                let kp = off(0u) + f;
                let p = ld(pred[kp >> SHIFT], kp);
//#if REBUILD
                let kx = off(2u) + f;
                let t = fma(r.z, xi(&cache, f, bi, e, 3u), r.y * ld(xs[kx >> SHIFT], kx));
//#else
                let kt = off(1u) + f;
                let t = ld(tgt[kt >> SHIFT], kt);
//#endif
                let d = p - t;
                if (f >= f0 && f < f1) {
                    acc = add2(acc, vec2<f32>(d * d, 0.0));
                }
                gv[i] = div_corrected(2.0 * r.x, f32(P.dim)) * d;
            }
//#if GRAD
            // The quad's first element in the tensor decides its owner.
            let first = select(base + 1u, base, ok[0]);
            if (first >= f0 && first < f1) {
                put_grad(base, gv, ok);
            }
//#endif
        }
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
