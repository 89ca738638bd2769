// Fused forward noising (docs/DESIGN.md §4), one quad of elements per invocation:
//   z = fma(b, ξ, a·x)        target = fma(d, ξ, c·x)
// exactly the CPU kernel's operations. Row: (a, b, c, d).
// Flags: TARGET (also write the target); noise from PHILOX or NOISE_BUF.
// Slots: x 0, z 1, target 2, noise buffer 3.

@group(0) @binding(3) var<storage, read_write> x: array<Store>;
@group(0) @binding(4) var<storage, read_write> z: array<Store>;
//#if TARGET
@group(0) @binding(5) var<storage, read_write> tgt: array<Store>;
//#endif

//#store put_z z 1

//#if TARGET
//#store put_target tgt 2
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
    var zv = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    var tv = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
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
        let r = row(b, 0u);
        let k = off(0u) + f;
        let xv = ld(x[k >> SHIFT], k);
        let n = xi(&cache, f, b, e, 3u);
        zv[i] = fma(r.y, n, r.x * xv);
        tv[i] = fma(r.w, n, r.z * xv);
    }
    put_z(base, zv, ok);
//#if TARGET
    put_target(base, tv, ok);
//#endif
}
