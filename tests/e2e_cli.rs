//! The CLI shell of issue #6: `gaussflow figures --out DIR` writes the four
//! SVGs (with axis labels and legends as SVG text), and `gaussflow claims
//! --json` prints the claims with their numbers and verdicts (the host-only
//! claims here, to stay fast; every claim has its own test in
//! `claims_seed.rs`).

use std::process::Command;

/// Runs `cmd`, asserts it succeeded (with its stderr), parses its stdout as JSON.
fn json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gaussflow"))
}

#[test]
fn figures_are_written_as_svg_with_text() {
    let dir = std::env::temp_dir().join(format!("gaussflow-figures-{}", std::process::id()));
    let out = bin().args(["figures", "--out"]).arg(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "figures failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, must) in [
        (
            "trajectories_scaled.svg",
            &["DDIM", "PF-ODE Euler", "diffusion time t", "flow→VP"][..],
        ),
        (
            "vp_vs_flow_paths.svg",
            &["VP cosine", "flow", "s = 0.1", "state z_t"][..],
        ),
        (
            "churn_weights.svg",
            &["DDPM (η = 1)", "DDIM (η = 0)", "|weight|"][..],
        ),
        (
            "weighting_functions.svg",
            &["ELBO", "flow matching", "min-SNR-5", "EDM", "log-SNR λ"][..],
        ),
    ] {
        let svg = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(svg.starts_with("<svg"), "{name} is not an SVG");
        assert!(svg.contains("<text"), "{name} has no text");
        assert!(
            svg.contains("<polyline") || svg.contains("<path"),
            "{name} has no lines"
        );
        for m in must {
            assert!(svg.contains(m), "{name} lacks {m:?}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn claims_json_reports_numbers_and_verdicts() {
    let v = json(bin().args(["claims", "--only", "4,6,7,8", "--json"]));
    assert_eq!(v["pass"], true);
    let claims = v["claims"].as_array().unwrap();
    assert_eq!(
        claims
            .iter()
            .map(|c| c["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [4, 6, 7, 8]
    );
    for c in claims {
        assert_eq!(c["pass"], true);
        assert!(!c["numbers"].as_array().unwrap().is_empty());
        assert!(c["criterion"].as_str().is_some_and(|s| !s.is_empty()));
    }
}

#[test]
fn claims_table_and_bad_claim_number() {
    let out = bin().args(["claims", "--only", "4"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("[PASS] 4."), "{text}");
    assert!(text.contains("claims: 1/1 PASS"), "{text}");
    let out = bin().args(["claims", "--only", "12"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("[FAIL] 12."));
}

/// `verify` prints one line per op family (with the worst err/tol per
/// storage type) and the verdict; `--full` prints every row.
#[test]
fn verify_prints_a_summary_and_the_full_table_on_request() {
    let run = |extra: &[&str]| {
        let out = bin()
            .args(["verify", "--backend", "cpu", "--sizes", "7"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let summary = run(&[]);
    for op in ["noise", "step", "loss"] {
        let line = summary
            .lines()
            .find(|l| l.trim_start().starts_with(op))
            .unwrap_or_else(|| panic!("no {op} line in:\n{summary}"));
        assert!(
            line.contains("0 failed") && line.contains("worst err/tol f32 "),
            "{line}"
        );
    }
    assert!(summary.contains("verify: PASS"), "{summary}");
    let full = run(&["--full"]);
    let rows = full
        .lines()
        .filter(|l| l.ends_with("PASS") || l.contains(" PASS "))
        .count();
    assert!(summary.lines().count() < 15, "summary too long:\n{summary}");
    assert!(
        rows >= 78,
        "expected every row with --full, got {rows}:\n{full}"
    );
}

/// The exit status and the output of `gaussflow args…` (with `env` set).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut c = bin();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// `GAUSSFLOW_BACKEND=cuda gaussflow verify` on a machine without a driver
/// verified the CPU and wgpu and said PASS; the backend asked for must run.
#[test]
fn verify_honours_gaussflow_backend_and_fails_when_it_does_not_start() {
    if gaussflow::Engine::cuda(0).is_ok() {
        eprintln!("a CUDA device is present: the no-driver case is SKIPPED here");
        return;
    }
    let (code, text) = run(
        &["verify", "--sizes", "8", "--dtypes", "f32"],
        &[("GAUSSFLOW_BACKEND", "cuda")],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("verify cuda: FAILED to start"), "{text}");
    assert!(!text.contains("verify: PASS"), "{text}");
    assert!(
        !text.contains("== verify cpu"),
        "only the named backend runs: {text}"
    );
}

/// An unwritable `--out` named no path ("Not a directory (os error 20)").
#[test]
fn figures_to_an_unwritable_path_names_it() {
    let file = std::env::temp_dir().join(format!("gaussflow-not-a-dir-{}", std::process::id()));
    std::fs::write(&file, b"a file, not a directory").unwrap();
    let out = file.join("figures");
    let (code, text) = run(&["figures", "--out", out.to_str().unwrap()], &[]);
    std::fs::remove_file(&file).ok();
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains(out.to_str().unwrap()), "{text}");
}

/// `--sizes 0` checks nothing: `verify` reported FAIL, wgpu `bench` printed
/// NaN columns. Both refuse the size now, naming the option.
#[test]
fn a_size_of_zero_is_refused_by_verify_and_bench() {
    for args in [
        &["verify", "--sizes", "0", "--backend", "cpu"][..],
        &["bench", "--sizes", "0", "--backend", "cpu", "--quick"][..],
    ] {
        let (code, text) = run(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(
            text.contains("--sizes") && text.contains("at least 1"),
            "{text}"
        );
        assert!(!text.contains("NaN") && !text.contains("FAIL"), "{text}");
    }
}

/// `bench --sizes 2^40` aborted (allocation failure) and `--sizes 2^64 − 1`
/// panicked (capacity overflow); both are errors naming the allocation.
#[test]
fn bench_with_a_huge_size_is_an_error_not_an_abort() {
    for size in ["1099511627776", "18446744073709551615"] {
        let (code, text) = run(
            &[
                "bench",
                "--sizes",
                size,
                "--backend",
                "cpu",
                "--dtypes",
                "f32",
                "--quick",
            ],
            &[],
        );
        assert_eq!(code, Some(2), "size {size}: {text}");
        assert!(text.contains("cannot allocate"), "{text}");
        assert!(!text.contains("panicked"), "{text}");
    }
}
/// `bench --shapes` measures the `[B, D]` shapes it is given (and only
/// those when `--sizes` is absent), reporting each row's shape; a malformed
/// or empty shape is a usage error naming it.
#[test]
fn bench_measures_explicit_shapes() {
    let v = json(bin().args([
        "bench",
        "--backend",
        "cpu",
        "--json",
        "--quick",
        "--ops",
        "step/ddim",
        "--dtypes",
        "f32",
        "--shapes",
        "4096x2,1x8192",
    ]));
    let rows = v["backends"][0]["rows"].as_array().unwrap();
    let shapes: Vec<_> = rows.iter().map(|r| r["shape"].clone()).collect();
    assert_eq!(
        shapes,
        [serde_json::json!([4096, 2]), serde_json::json!([1, 8192])]
    );
    for bad in ["4096", "0x2", "4x0", "ax2"] {
        let (code, text) = run(&["bench", "--backend", "cpu", "--shapes", bad], &[]);
        assert_eq!(code, Some(2), "{bad}: {text}");
        assert!(text.contains(bad), "{bad}: {text}");
    }
}

/// `bench --samplers` gives one row per named sampler with its stage, the
/// arrays it moves and the eager baseline; an unknown name is an error
/// listing the known ones.
#[test]
fn bench_samplers_gives_a_row_per_sampler() {
    let v = json(bin().args([
        "bench",
        "--backend",
        "cpu",
        "--json",
        "--quick",
        "--dtypes",
        "f32",
        "--sizes",
        "4099",
        "--samplers",
        "ddim,lms4,dpm++3m-sde",
    ]));
    let rows = v["backends"][0]["sampler_rows"].as_array().unwrap();
    let names: Vec<_> = rows
        .iter()
        .map(|r| r["sampler"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ddim", "lms4", "dpm++3m-sde"]);
    // ddim: z, ε̂ read, z_s written; LMS 4: x, ε̂, 3 derivatives read, x_s
    // and ε̂ written; 3M SDE draws noise.
    let arrays: Vec<_> = rows
        .iter()
        .map(|r| (r["reads"].as_u64().unwrap(), r["writes"].as_u64().unwrap()))
        .collect();
    assert_eq!(arrays[..2], [(2, 1), (5, 2)]);
    assert_eq!(rows[2]["noise"], serde_json::json!(true));
    for r in rows {
        assert!(r["copy_fraction"].as_f64().unwrap() > 0.0);
        assert!(r["unfused_passes"].as_u64().unwrap() >= 3);
    }
    let (code, text) = run(
        &["bench", "--backend", "cpu", "--samplers", "no-such-sampler"],
        &[],
    );
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains("no-such-sampler") && text.contains("lms4"),
        "{text}"
    );
}

/// `info` names the instruction set the CPU kernels use and every one the
/// processor has, as text and JSON; the bench JSON says which path
/// produced the CPU figures.
#[test]
fn info_and_bench_name_the_cpu_instruction_sets() {
    let cpu = gaussflow::backend::cpu::CpuBackend::new();
    let isa = cpu.isa();
    let out = bin().arg("info").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("cpu isa: "))
        .unwrap_or_else(|| panic!("no `cpu isa:` line in\n{text}"));
    assert!(
        line.ends_with(&format!("kernels use: {}", isa.kernels)),
        "{line}"
    );
    for path in &isa.available {
        assert!(line.contains(path), "{path} missing from {line}");
    }
    assert!(isa.available.contains(&"portable"));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        assert!(line.contains("avx2 (avx2, fma"), "{line}");
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        assert!(line.contains("avx512f"), "{line}");
    }

    let v = json(bin().args(["info", "--json"]));
    assert_eq!(v["cpu_isa"]["kernels"], isa.kernels);
    assert_eq!(
        v["cpu_isa"]["available"].as_array().unwrap().len(),
        isa.available.len()
    );
    assert_eq!(
        v["cpu_isa"]["features"].as_array().unwrap().len(),
        isa.features.len()
    );

    // Forcing the portable path shows in both.
    let out = bin()
        .args(["info"])
        .env("GAUSSFLOW_CPU_SIMD", "portable")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kernels use: portable"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v = json(
        bin()
            .args([
                "bench",
                "--backend",
                "cpu",
                "--json",
                "--quick",
                "--ops",
                "randn",
                "--sizes",
                "4096",
                "--dtypes",
                "f32",
            ])
            .env("GAUSSFLOW_CPU_SIMD", "portable"),
    );
    let cpu = &v["backends"][0];
    assert_eq!(cpu["backend"], "cpu");
    assert_eq!(cpu["isa"]["kernels"], "portable");
    assert!(
        cpu["isa"]["available"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "portable"),
        "{cpu}"
    );
}

#[test]
fn samplers_lists_the_catalog_as_text_and_json() {
    use gaussflow::sampler::catalog::catalog;
    let v = json(bin().args(["samplers", "--json"]));
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), catalog().len());
    for (j, e) in entries.iter().zip(catalog()) {
        assert_eq!(j["provided"].as_bool(), Some(e.not_provided.is_none()));
        assert_eq!(j["comfyui"].as_str(), e.comfyui);
        assert_eq!(
            j["checked_by"].as_array().unwrap().len(),
            e.checked_by.len()
        );
    }
    let out = bin().arg("samplers").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("k-diffusion sample_dpmpp_2m"), "{text}");
    assert!(
        text.contains("checked by tests/golden_kdiffusion.rs::"),
        "{text}"
    );
}
