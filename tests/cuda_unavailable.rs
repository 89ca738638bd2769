//! Selecting CUDA on a machine without an NVIDIA driver is an error that says
//! why, never a panic (cudarc's own entry points panic without the driver
//! library; the backend probes for it first). The test sets GAUSSFLOW_BACKEND,
//! which no other thread may read meanwhile: it runs alone, in a child process.

use gaussflow::{BackendKind, Engine, Error, backend::cuda};

#[test]
fn cuda_without_a_driver_is_backend_unavailable_with_the_reason() {
    crate::harness::run_in_child(
        "cuda_unavailable::cuda_without_a_driver_is_backend_unavailable_with_the_reason_alone",
    );
}

#[test]
#[ignore = "run alone by cuda_without_a_driver_is_backend_unavailable_with_the_reason"]
fn cuda_without_a_driver_is_backend_unavailable_with_the_reason_alone() {
    let missing = cuda::driver_missing();
    let explicit = Engine::cuda(0);
    // SAFETY: runs alone in a child process: no other thread reads the environment.
    unsafe { std::env::set_var("GAUSSFLOW_BACKEND", "cuda") };
    let from_env = Engine::auto();
    unsafe { std::env::remove_var("GAUSSFLOW_BACKEND") };
    let probes = Engine::probe_all();
    let cuda_probe = probes
        .iter()
        .find(|a| a.backend == BackendKind::Cuda)
        .expect("info probes CUDA");

    match missing {
        Some(why) => {
            // This machine has no driver library: every path says so.
            assert!(why.contains("libcuda"), "{why}");
            for (what, r) in [
                ("Engine::cuda(0)", explicit),
                ("GAUSSFLOW_BACKEND=cuda", from_env),
            ] {
                match r {
                    Err(Error::BackendUnavailable { backend, reason }) => {
                        assert_eq!(backend, BackendKind::Cuda, "{what}");
                        assert_eq!(reason, why, "{what}");
                    }
                    other => panic!("{what}: expected BackendUnavailable, got {other:?}"),
                }
            }
            let msg = cuda_probe
                .outcome
                .as_ref()
                .expect_err("CUDA cannot start here");
            assert!(
                msg.starts_with("cuda backend unavailable: ") && msg.contains("libcuda"),
                "{msg}"
            );
            // auto() without the variable falls through to another backend.
            let e = Engine::auto().expect("auto never fails without the variable");
            assert_ne!(e.kind(), BackendKind::Cuda);
            let tried = &e.attempts()[0];
            assert_eq!(tried.backend, BackendKind::Cuda);
            assert!(tried.outcome.as_ref().is_err_and(|m| m.contains("libcuda")));
        }
        None => {
            // A driver is present (a GPU machine): CUDA starts or says why not.
            for r in [explicit, from_env] {
                match r {
                    Ok(e) => assert_eq!(e.kind(), BackendKind::Cuda),
                    Err(Error::BackendUnavailable { reason, .. }) => assert!(!reason.is_empty()),
                    Err(other) => panic!("unexpected error {other:?}"),
                }
            }
        }
    }
}
