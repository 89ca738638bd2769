//! `GAUSSFLOW_BACKEND` (docs/DESIGN.md §8): an unknown name is an InvalidArgument,
//! an explicitly requested backend that cannot start is BackendUnavailable,
//! never a panic and never a silent fallback.
//!
//! The test changes the process environment, which no other thread may
//! read meanwhile: it runs alone, in a child process of the suite.

use gaussflow::backend::BACKEND_ENV;
use gaussflow::{BackendKind, Engine, Error};

fn set(value: Option<&str>) {
    // SAFETY: runs alone in a child process (`run_in_child`, one test
    // thread); no other thread reads the environment while it runs.
    unsafe {
        match value {
            Some(v) => std::env::set_var(BACKEND_ENV, v),
            None => std::env::remove_var(BACKEND_ENV),
        }
    }
}

#[test]
fn backend_environment_variable() {
    crate::harness::run_in_child("engine_env::backend_environment_variable_alone");
}

#[test]
#[ignore = "run alone by backend_environment_variable in a child process"]
fn backend_environment_variable_alone() {
    let saved = std::env::var(BACKEND_ENV).ok();

    for bogus in ["bogus", "gpu", "cpu,wgpu", "cudaa"] {
        set(Some(bogus));
        let err = Engine::auto().map(|_| ());
        assert!(
            matches!(&err, Err(Error::InvalidArgument { what, .. }) if what == BACKEND_ENV),
            "{bogus:?}: {err:?}"
        );
        assert!(matches!(
            Engine::env_choice(),
            Err(Error::InvalidArgument { .. })
        ));
    }

    for cpu in ["cpu", " CPU ", "Cpu"] {
        set(Some(cpu));
        let e = Engine::auto().expect("cpu always starts");
        assert_eq!(e.kind(), BackendKind::Cpu, "{cpu:?}");
    }

    for (name, kind) in [("cuda", BackendKind::Cuda), ("wgpu", BackendKind::Wgpu)] {
        let direct = Engine::new(kind).map(|e| e.kind());
        set(Some(name));
        match (Engine::auto(), direct) {
            (Ok(e), Ok(k)) => assert_eq!(e.kind(), k),
            (Err(err), Err(_)) => assert!(
                matches!(&err, Error::BackendUnavailable { backend, .. } if *backend == kind),
                "{name}: {err:?}"
            ),
            (a, b) => panic!(
                "{name}: auto() and Engine::new disagree: {:?} vs {b:?}",
                a.map(|e| e.kind())
            ),
        }
    }

    // Unset or empty: auto() chooses, records what it tried, never fails.
    for value in [None, Some(""), Some("  ")] {
        set(value);
        assert_eq!(Engine::env_choice(), Ok(None));
        let e = Engine::auto().expect("auto() falls back to the CPU");
        let chosen = e.attempts().last().expect("attempts recorded");
        assert_eq!(chosen.backend, e.kind());
        assert!(chosen.outcome.is_ok());
        assert!(
            e.attempts()
                .iter()
                .rev()
                .skip(1)
                .all(|a| a.outcome.is_err())
        );
    }

    set(saved.as_deref());
}
