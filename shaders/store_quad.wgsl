// Not a shader: the body `//#store NAME BUFFER SLOT` stamps out (template.rs),
// because WGSL cannot pass a storage buffer to a function. Writes the quad
// v[0..4] of elements base..base+4 of slot SLOT where ok[i], through BUFFER.
// bf16 packs two elements per u32, so a pair with one valid element merges
// into the word already there (another invocation owns the other half).
fn NAME(base: u32, v: array<f32, 4>, ok: array<bool, 4>) {
    let k = off(SLOTu) + base;
//#if BF16
    for (var p = 0u; p < 4u; p = p + 2u) {
        if (ok[p] || ok[p + 1u]) {
            let w = (k + p) >> 1u;
            BUFFER[w] = merge_bf16(BUFFER[w], v[p], v[p + 1u], ok[p], ok[p + 1u]);
        }
    }
//#else
    for (var i = 0u; i < 4u; i = i + 1u) {
        if (ok[i]) {
            BUFFER[k + i] = st(v[i]);
        }
    }
//#endif
}
