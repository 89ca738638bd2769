// Test entry: raw Philox4x32-10 words and their Box–Muller normals for a list
// of counters under one key, to hold the WGSL twin to src/rng.rs.

struct DumpParams {
    key: vec2<u32>,
    count: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> DP: DumpParams;
@group(0) @binding(1) var<storage, read> counters: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> bits: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> normals: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = (wg.y * nwg.x + wg.x) * 256u + li;
    if (i >= DP.count) {
        return;
    }
    let r = philox4x32_10(counters[i], DP.key);
    bits[i] = r;
    normals[i] = box_muller(r);
}
