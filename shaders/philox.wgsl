// Philox4x32-10 and Box–Muller: the WGSL twin of src/rng.rs (layout v1).
//
// Operation for operation the same as the Rust: u32-only arithmetic (WGSL
// has no u64, so the 32×32→64 product is built from 16-bit halves), the
// uniform ((r >> 8) + 1)·2⁻²⁴ ∈ (0, 1], and gaussflow's own `ln` and
// `sincos_2pi` polynomials with the constants given by their f32 bits and
// `fma` wherever the Rust writes `mul_add`. WGSL's built-in log/sin/cos are
// never used: their accuracy is only bounded by 2⁻¹¹ absolute.

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// (hi, lo) words of the 64-bit product a·b. The middle column
// (p00 >> 16) + lo16(p01) + lo16(p10) < 3·2¹⁶ cannot overflow.
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox4x32_10(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = ctr;
    var k = key;
    for (var round = 0u; round < 10u; round = round + 1u) {
        if (round > 0u) {
            k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
        }
        let p0 = mul_wide(PHILOX_M0, c.x);
        let p1 = mul_wide(PHILOX_M1, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

// ((r >> 8) + 1) · 2⁻²⁴, exact in f32, never 0.
fn philox_uniform(r: u32) -> f32 {
    return f32((r >> 8u) + 1u) * bitcast<f32>(0x33800000u);
}

// Natural log of a positive normal f32 (Cephes logf), as rng::ln.
fn gf_ln(v: f32) -> f32 {
    let bits = bitcast<u32>(v);
    var e = i32((bits >> 23u) & 0xffu) - 127;
    var m = bitcast<f32>((bits & 0x007fffffu) | 0x3f800000u);
    if (m > bitcast<f32>(0x3fb504f3u)) { // √2
        m = m * 0.5;
        e = e + 1;
    }
    let x = m - 1.0;
    let z = x * x;
    var p = bitcast<f32>(0x3d9021bbu);
    p = fma(p, x, bitcast<f32>(0xbdebd1b8u));
    p = fma(p, x, bitcast<f32>(0x3def251bu));
    p = fma(p, x, bitcast<f32>(0xbdfe5d4fu));
    p = fma(p, x, bitcast<f32>(0x3e11e9bfu));
    p = fma(p, x, bitcast<f32>(0xbe2aae50u));
    p = fma(p, x, bitcast<f32>(0x3e4cceadu));
    p = fma(p, x, bitcast<f32>(0xbe7ffffcu));
    p = fma(p, x, bitcast<f32>(0x3eaaaaaau));
    let ef = f32(e);
    var y = (x * z) * p;
    y = fma(ef, bitcast<f32>(0xb95e8083u), y); // ln 2, low part
    y = fma(-0.5, z, y);
    let r = x + y;
    return fma(ef, bitcast<f32>(0x3f318000u), r); // ln 2, high part
}

// (sin 2πu, cos 2πu) for u ∈ [0, 1], as rng::sincos_2pi: exact quadrant
// reduction on 4u (round ties to even), polynomials on [−π/4, π/4].
fn gf_sincos_2pi(u: f32) -> vec2<f32> {
    let v = 4.0 * u;
    let q = round(v);
    let r = v - q;
    let r2 = r * r;
    var s = bitcast<f32>(0x39283c1au);
    s = fma(s, r2, bitcast<f32>(0xbb996966u));
    s = fma(s, r2, bitcast<f32>(0x3da335e4u));
    s = fma(s, r2, bitcast<f32>(0xbf255de7u));
    s = fma(s, r2, bitcast<f32>(0x3fc90fdbu));
    s = s * r;
    var c = bitcast<f32>(0xb7d36909u);
    c = fma(c, r2, bitcast<f32>(0x3a70fa84u));
    c = fma(c, r2, bitcast<f32>(0xbcaae9e4u));
    c = fma(c, r2, bitcast<f32>(0x3e81e0f8u));
    c = fma(c, r2, bitcast<f32>(0xbf9de9e7u));
    c = fma(c, r2, bitcast<f32>(0x3f800000u));
    switch (i32(q) & 3) {
        case 0: { return vec2<f32>(s, c); }
        case 1: { return vec2<f32>(c, -s); }
        case 2: { return vec2<f32>(-s, -c); }
        default: { return vec2<f32>(-c, s); }
    }
}

// Four standard normals from four raw words: lanes (0, 1) and (2, 3) pair up.
fn box_muller(r: vec4<u32>) -> vec4<f32> {
    let rho0 = sqrt(-2.0 * gf_ln(philox_uniform(r.x)));
    let rho1 = sqrt(-2.0 * gf_ln(philox_uniform(r.z)));
    let sc0 = gf_sincos_2pi(philox_uniform(r.y));
    let sc1 = gf_sincos_2pi(philox_uniform(r.w));
    return vec4<f32>(rho0 * sc0.y, rho0 * sc0.x, rho1 * sc1.y, rho1 * sc1.x);
}
