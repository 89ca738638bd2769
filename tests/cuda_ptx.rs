//! The committed PTX is fresh and says what the README claims, checked with
//! no CUDA tool at all (scripts/gen_ptx.py --check regenerates it with the
//! pinned NVRTC, scripts/check_ptx.py assembles it with ptxas).

use std::path::Path;

use gaussflow::backend::cuda::ptx;
use sha2::{Digest, Sha256};

fn header<'a>(src: &'a str, key: &str) -> &'a str {
    src.lines()
        .find_map(|l| l.strip_prefix(&format!("// {key}: ")))
        .unwrap_or_else(|| panic!("PTX header has no `{key}` line"))
}

/// The recipe of scripts/gen_ptx.py `source_hash`.
fn source_hash(files: &[&str], options: &str, isa: &str, nvrtc: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let mut h = Sha256::new();
    h.update(b"gaussflow-ptx-v1\n");
    h.update(format!("nvrtc {nvrtc}\n"));
    h.update(format!("options {options}\n"));
    h.update(format!("ptx-isa {isa}\n"));
    for f in files {
        let data = std::fs::read(dir.join(f)).unwrap();
        h.update(format!("file {f} {}\n", data.len()));
        h.update(&data);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn ptx_records_the_hash_of_its_current_sources() {
    for (file, src) in ptx::MODULES {
        let isa = header(src, "ptx-isa").split_whitespace().next().unwrap();
        let files: Vec<&str> = header(src, "sources").split_whitespace().collect();
        assert_eq!(
            files[0],
            file.replace(".ptx", ".cu"),
            "{file}: first source"
        );
        assert!(
            files.contains(&"common.cuh"),
            "{file}: the common header is hashed"
        );
        let want = source_hash(&files, header(src, "options"), isa, header(src, "nvrtc"));
        assert_eq!(
            header(src, "sources-sha256"),
            want,
            "kernels/{file} is stale: run `python3 scripts/gen_ptx.py`"
        );
    }
}

#[test]
fn ptx_targets_compute_70_at_the_declared_isa_without_contraction() {
    for (file, src) in ptx::MODULES {
        assert!(
            src.contains(&format!("\n.version {}\n", ptx::PTX_ISA)),
            "{file}: .version"
        );
        assert!(src.contains("\n.target sm_70\n"), "{file}: .target");
        assert!(
            src.contains("\n.address_size 64\n"),
            "{file}: 64-bit addressing"
        );
        let opts = header(src, "options");
        assert!(
            opts.contains("--fmad=false"),
            "{file}: contraction must be off"
        );
        assert_eq!(header(src, "nvrtc"), "12.9", "{file}: pinned NVRTC");
        // Every multiply-add in the PTX is one the source wrote (fma.rn), none contracted (mad).
        assert!(
            !src.contains("mad.rn.f32") && !src.contains("mad.f32"),
            "{file}: contracted mad"
        );
    }
}

/// The one inline PTX load, the intrinsics' stores and Philox's mul.hi are in
/// the generated code where the README says.
#[test]
fn ptx_has_the_claimed_memory_instructions() {
    let body = |src: &str, entry: &str| -> String {
        let start = src.find(&format!(".visible .entry {entry}(")).unwrap();
        let rest = &src[start + 1..];
        let end = rest.find(".visible .entry ").unwrap_or(rest.len());
        rest[..end].to_string()
    };
    for (src, family) in [
        (ptx::NOISE, "noise"),
        (ptx::STEP, "step"),
        (ptx::LOSS, "loss"),
    ] {
        for dt in ["f32", "f16", "bf16"] {
            let v = body(src, &format!("gf_{family}_{dt}_v"));
            let s = body(src, &format!("gf_{family}_{dt}_s"));
            assert!(
                v.contains("ld.global.nc.L1::no_allocate.v4.b32"),
                "{family} {dt} _v: 128-bit streaming load"
            );
            assert!(
                !s.contains(".v4."),
                "{family} {dt} _s: the general variant has no vector access"
            );
            if family != "loss" {
                assert!(
                    v.contains("st.global.cs.v4."),
                    "{family} {dt} _v: 128-bit streaming store"
                );
                assert!(
                    s.contains("st.global.cs."),
                    "{family} {dt} _s: streaming stores"
                );
            }
            assert!(v.contains("mul.hi.u32"), "{family} {dt}: Philox mul.hi");
            if dt == "f16" {
                assert!(
                    v.contains("cvt.f32.f16") && v.contains("cvt.rn.f16.f32")
                        || family == "loss" && v.contains("cvt.f32.f16")
                );
            }
        }
    }
}

/// The f32 constants of ln and sincos_2pi in kernels/common.cuh are src/rng/mod.rs's,
/// bit pattern for bit pattern.
#[test]
fn transcendental_constants_match_rng_rs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cuh = std::fs::read_to_string(root.join("kernels/common.cuh")).unwrap();
    let rs = std::fs::read_to_string(root.join("src/rng/mod.rs")).unwrap();
    let hexes = |text: &str, prefix: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .match_indices(prefix)
            .map(|(i, _)| text[i + prefix.len()..i + prefix.len() + 10].to_ascii_lowercase())
            .filter(|h| h.starts_with("0x") && h[2..].chars().all(|c| c.is_ascii_hexdigit()))
            .collect();
        v.sort();
        v
    };
    let section = |name: &str| {
        let a = cuh.find(&format!("BEGIN-CONSTANTS {name}")).unwrap();
        let b = cuh.find(&format!("END-CONSTANTS {name}")).unwrap();
        cuh[a..b].to_string()
    };
    let mut cuda = hexes(&(section("ln") + &section("sincos")), "GF_F32(");
    // ln's centring threshold is std's SQRT_2 in src/rng/mod.rs.
    assert_eq!(std::f32::consts::SQRT_2.to_bits(), 0x3fb504f3);
    let sqrt2 = cuda
        .iter()
        .position(|h| h == "0x3fb504f3")
        .expect("SQRT_2 in gf_ln");
    cuda.remove(sqrt2);
    let rust = hexes(&rs, "f32::from_bits(");
    assert_eq!(
        cuda.len(),
        2 + 9 + 5 + 6,
        "LN2 ×2, LN_P ×9, SIN_C ×5, COS_C ×6"
    );
    assert_eq!(cuda, rust);
}
