//! `GAUSSFLOW_REQUIRE_BACKENDS` turns an absent backend into a failure, not
//! a skip. Checked by re-running this test binary with the variable set and
//! looking at how the runner probe (an ignored test) ends.

use crate::common;

use std::process::Command;

/// Starts the runners the way every backend test does. Ignored: run only by
/// [`requirement_is_enforced`] in a child process.
#[test]
#[ignore = "run by requirement_is_enforced in a child process"]
fn probe_runners() {
    let names: Vec<&str> = common::engines().iter().map(|e| e.kind().name()).collect();
    println!("present: {names:?}");
}

/// Runs [`probe_runners`] with `GAUSSFLOW_REQUIRE_BACKENDS=require`;
/// returns (success, combined output).
fn probe_with(require: &str) -> (bool, String) {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "backend_require::probe_runners",
            "--nocapture",
        ])
        .env(crate::harness::REQUIRE_ENV, require)
        .output()
        .expect("re-run the test binary");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn requirement_is_enforced() {
    let (ok, text) = probe_with("cpu");
    assert!(ok, "requiring the CPU must pass:\n{text}");
    assert!(text.contains("present: [\"cpu\""), "{text}");
    assert!(
        text.contains("1 passed"),
        "the probe must have run:\n{text}"
    );

    let (ok, text) = probe_with("");
    assert!(ok, "requiring nothing must pass:\n{text}");

    let (ok, text) = probe_with("warp-drive");
    assert!(!ok, "an unknown name must fail:\n{text}");
    assert!(text.contains("not one of"), "{text}");

    for name in ["wgpu", "cuda"] {
        let starts = match name {
            "wgpu" => gaussflow::Engine::wgpu().is_ok(),
            _ => gaussflow::Engine::cuda(0).is_ok(),
        };
        let (ok, text) = probe_with(&format!("cpu, {name}"));
        if starts {
            assert!(ok, "{name} starts, so requiring it must pass:\n{text}");
        } else {
            assert!(
                !ok,
                "{name} does not start, so requiring it must fail:\n{text}"
            );
            assert!(text.contains("did not start"), "{text}");
        }
    }
}
