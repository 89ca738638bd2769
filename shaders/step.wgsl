// One fused sampler step (docs/DESIGN.md §4), one quad of elements per invocation,
// exactly the CPU kernel's operations (src/backend/cpu/step.rs):
//   x̂   = clamp(Σ_k h_k·in_k, −clip, clip)
//   out = fma(cξ, ξ, fma(cx̂, x̂, Σ_k o_k·in_k))   (each fma only where used)
// where the sums run over the slots the sample reads (bound, and h_k or o_k
// not 0), in slot order, the first term a product, the others fmas.
// ξ is 0 for a sample whose noise coefficient is 0.
// Row (five vec4): x_hat[8], out[8], (out_x_hat, noise, clip, pad).
// Flags: IN0 … IN7 (inputs bound: state, model, unconditional model, history
// newest … oldest), XHAT (also write x̂), NOISE (a noise source is bound:
// PHILOX or NOISE_BUF).
// Slots (offsets): inputs 0–7, out 8, x̂ 9, noise buffer 10.
// Bindings: inputs 3–10, out 11, x̂ 12.

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
//#if IN4
@group(0) @binding(7) var<storage, read_write> in4: array<Store>;
//#endif
//#if IN5
@group(0) @binding(8) var<storage, read_write> in5: array<Store>;
//#endif
//#if IN6
@group(0) @binding(9) var<storage, read_write> in6: array<Store>;
//#endif
//#if IN7
@group(0) @binding(10) var<storage, read_write> in7: array<Store>;
//#endif
@group(0) @binding(11) var<storage, read_write> out: array<Store>;
//#if XHAT
@group(0) @binding(12) var<storage, read_write> xh: array<Store>;
//#endif

// The two sums, accumulated slot by slot.
struct Acc {
    x: f32,
    y: f32,
    first: bool,
}

// Adds slot term (h, o)·v where the sample reads the slot.
fn add(a: ptr<function, Acc>, h: f32, o: f32, v: f32) {
    if (h == 0.0 && o == 0.0) {
        return;
    }
    if ((*a).first) {
        (*a).x = h * v;
        (*a).y = o * v;
        (*a).first = false;
    } else {
        (*a).x = fma(h, v, (*a).x);
        (*a).y = fma(o, v, (*a).y);
    }
}

// The sums over the bound slots for local element f of sample b, whose row
// words are h (x_hat[0..4]), h2 (x_hat[4..8]), o, o2 (out[…]).
fn sums(f: u32, h: vec4<f32>, h2: vec4<f32>, o: vec4<f32>, o2: vec4<f32>) -> Acc {
    var a = Acc(0.0, 0.0, true);
//#if IN0
    let k0 = off(0u) + f;
    add(&a, h.x, o.x, ld(in0[k0 >> SHIFT], k0));
//#endif
//#if IN1
    let k1 = off(1u) + f;
    add(&a, h.y, o.y, ld(in1[k1 >> SHIFT], k1));
//#endif
//#if IN2
    let k2 = off(2u) + f;
    add(&a, h.z, o.z, ld(in2[k2 >> SHIFT], k2));
//#endif
//#if IN3
    let k3 = off(3u) + f;
    add(&a, h.w, o.w, ld(in3[k3 >> SHIFT], k3));
//#endif
//#if IN4
    let k4 = off(4u) + f;
    add(&a, h2.x, o2.x, ld(in4[k4 >> SHIFT], k4));
//#endif
//#if IN5
    let k5 = off(5u) + f;
    add(&a, h2.y, o2.y, ld(in5[k5 >> SHIFT], k5));
//#endif
//#if IN6
    let k6 = off(6u) + f;
    add(&a, h2.z, o2.z, ld(in6[k6 >> SHIFT], k6));
//#endif
//#if IN7
    let k7 = off(7u) + f;
    add(&a, h2.w, o2.w, ld(in7[k7 >> SHIFT], k7));
//#endif
    return a;
}

//#store put_out out 8

//#if XHAT
//#store put_x_hat xh 9
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
        let s = row(b, 4u);
        let a = sums(f, row(b, 0u), row(b, 1u), row(b, 2u), row(b, 3u));
        // WGSL leaves clamp of a NaN undefined (lavapipe gave -clip); the
        // CPU's f32::clamp and the CUDA kernel pass NaN through, so a NaN is
        // kept here too, found by its bits (a float compare may be folded
        // away under the no-NaN assumption WGSL permits).
        let nan = (bitcast<u32>(a.x) & 0x7fffffffu) > 0x7f800000u;
        let x_hat = select(clamp(a.x, -s.z, s.z), a.x, nan);
        var w = a.y;
        var use_x_hat = s.x != 0.0;
//#if XHAT
        use_x_hat = true;
//#endif
        if (use_x_hat) {
            w = fma(s.x, x_hat, w);
        }
//#if NOISE
        if (s.y != 0.0) {
            w = fma(s.y, xi(&cache, f, b, e, 10u), w);
        }
//#endif
        ov[i] = w;
        hv[i] = x_hat;
    }
    put_out(base, ov, ok);
//#if XHAT
    put_x_hat(base, hv, ok);
//#endif
}
