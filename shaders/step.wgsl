// One fused sampler step (docs/DESIGN.md §4), one quad of elements per invocation,
// exactly the CPU kernel's operations:
//   x̂  = clamp(fma(h3, in3, fma(h2, in2, fma(h1, in1, h0·in0))), −clip, clip)
//   out = fma(cξ, ξ, fma(cx̂, x̂, fma(o3, in3, fma(o2, in2, fma(o1, in1, o0·in0)))))
// An absent input reads as 0; ξ is 0 for a sample whose noise coefficient is 0.
// Row (three vec4): x_hat[4], out[4], (out_x_hat, noise, clip, pad).
// Flags: IN0 … IN3 (inputs given), XHAT (also write x̂), NOISE (a noise
// source is bound: PHILOX or NOISE_BUF).
// Slots: inputs 0–3, out 4, x̂ 5, noise buffer 6.

//#if IN0
@group(0) @binding(3) var<storage, read_write> in0: array<Store>;
//#endif
//#if IN1
@group(0) @binding(4) var<storage, read_write> in1: array<Store>;
//#endif
//#if IN2
@group(0) @binding(5) var<storage, read_write> in2: array<Store>;
//#endif
//#if IN3
@group(0) @binding(6) var<storage, read_write> in3: array<Store>;
//#endif
@group(0) @binding(7) var<storage, read_write> out: array<Store>;
//#if XHAT
@group(0) @binding(8) var<storage, read_write> xh: array<Store>;
//#endif

fn inputs(f: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
//#if IN0
    let k0 = off(0u) + f;
    v.x = ld(in0[k0 >> SHIFT], k0);
//#endif
//#if IN1
    let k1 = off(1u) + f;
    v.y = ld(in1[k1 >> SHIFT], k1);
//#endif
//#if IN2
    let k2 = off(2u) + f;
    v.z = ld(in2[k2 >> SHIFT], k2);
//#endif
//#if IN3
    let k3 = off(3u) + f;
    v.w = ld(in3[k3 >> SHIFT], k3);
//#endif
    return v;
}

//#store put_out out 4

//#if XHAT
//#store put_x_hat xh 5
//#endif

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let j = group_index(wg, nwg) * WG + li;
    if (j >= P.count) {
        return;
    }
    let base = 4u * j - P.q;
    var cache = noise_cache();
    var pos = pos_start();
    var ov = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    var hv = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    var ok = array<bool, 4>(false, false, false, false);
    for (var i = 0u; i < 4u; i = i + 1u) {
        let f = base + i;
        if (f >= P.n) {
            continue;
        }
        ok[i] = true;
        pos_next(&pos, f);
        let b = pos.b;
        let e = pos.e;
        let h = row(b, 0u);
        let o = row(b, 1u);
        let s = row(b, 2u);
        let v = inputs(f);
        var x_hat = fma(h.w, v.w, fma(h.z, v.z, fma(h.y, v.y, h.x * v.x)));
        // WGSL leaves clamp of a NaN undefined (lavapipe gave -clip); the
        // CPU's f32::clamp and the CUDA kernel pass NaN through, so a NaN is
        // kept here too, found by its bits (a float compare may be folded
        // away under the no-NaN assumption WGSL permits).
        let nan = (bitcast<u32>(x_hat) & 0x7fffffffu) > 0x7f800000u;
        x_hat = select(clamp(x_hat, -s.z, s.z), x_hat, nan);
        var n = 0.0;
//#if NOISE
        if (s.y != 0.0) {
            n = xi(&cache, f, b, e, 6u);
        }
//#endif
        let acc = fma(o.w, v.w, fma(o.z, v.z, fma(o.y, v.y, o.x * v.x)));
        ov[i] = fma(s.y, n, fma(s.x, x_hat, acc));
        hv[i] = x_hat;
    }
    put_out(base, ov, ok);
//#if XHAT
    put_x_hat(base, hv, ok);
//#endif
}
