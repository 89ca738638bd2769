//! The backends present on this machine, for test bodies written once and
//! run on each of them. The engines themselves belong to the suite's
//! harness (`tests/suite/harness.rs`), which starts them once and drops
//! them before `main` returns; `#[test(engines)]` runs a test once per
//! backend and reports an absent one as ignored, with its reason.

#![allow(dead_code)]

use std::sync::Arc;

use gaussflow::Engine;
use gaussflow::verify::KernelRunner;

use crate::harness;

/// A present backend as a kernel runner, with its name (`cpu`, `wgpu`,
/// `cuda`, as in `GAUSSFLOW_REQUIRE_BACKENDS`).
pub struct Present<'a> {
    /// Its name.
    pub name: &'static str,
    /// The engine as a [`KernelRunner`].
    pub runner: &'a (dyn KernelRunner + Sync),
}

impl<'a> Present<'a> {
    /// The runner of `engine`.
    pub fn of(engine: &'a Engine) -> Present<'a> {
        Present {
            name: engine.kind().name(),
            runner: engine,
        }
    }
}

/// Runs `body` with `engine` as a [`Present`] runner (the body of a
/// `#[test(engines)]` test written against runners).
pub fn on_engine(engine: &Engine, body: impl FnOnce(&Present<'_>)) {
    body(&Present::of(engine))
}

/// Every present engine (CPU always; wgpu and CUDA when they started).
/// Panics if a backend `GAUSSFLOW_REQUIRE_BACKENDS` names is absent. For
/// tests that compare backends with each other; a test of one backend's
/// behaviour is `#[test(engines)]`.
pub fn engines() -> Vec<Arc<Engine>> {
    let backends = harness::backends();
    let required = harness::required().unwrap_or_else(|e| panic!("{e}"));
    let mut present = Vec::new();
    for (name, e) in &backends.engines {
        match e {
            Ok(e) => present.push(e.clone()),
            Err(why) => assert!(
                !required.iter().any(|r| r == name),
                "{} requires {name}, which did not start: {why}",
                harness::REQUIRE_ENV
            ),
        }
    }
    present
}

/// The CPU engine of the run.
pub fn cpu() -> Arc<Engine> {
    engines().swap_remove(0)
}

/// `assert_err!(expr, Pattern)`: `expr` is `Err` and its error matches
/// `Pattern` (a variant of [`gaussflow::Error`] with `..`), else the test
/// fails saying what came back. For errors a bare `.is_err()` would let
/// through whatever their kind.
#[macro_export]
macro_rules! assert_err {
    ($e:expr, $p:pat) => {
        match $e.map(|_| ()) {
            Err($p) => {}
            other => panic!(
                "{}: expected Err({}), got {:?}",
                stringify!($e),
                stringify!($p),
                other
            ),
        }
    };
}

/// Step inputs by slot from the first `N` slots (the rest absent), as
/// [`gaussflow::backend::StepOp::inputs`] and [`KernelRunner::step`] take them.
pub fn slots<T, const N: usize>(
    first: [Option<T>; N],
) -> [Option<T>; gaussflow::rows::STEP_INPUTS] {
    let mut it = first.into_iter();
    std::array::from_fn(|_| it.next().flatten())
}

/// Step-row coefficients by slot from the first `N` slots (the rest 0).
pub fn coeffs<const N: usize>(first: [f32; N]) -> [f32; gaussflow::rows::STEP_INPUTS] {
    std::array::from_fn(|k| first.get(k).copied().unwrap_or(0.0))
}

/// f64 step inputs or coefficients by slot from the first `N` slots (the rest 0).
pub fn values<const N: usize>(first: [f64; N]) -> [f64; gaussflow::rows::STEP_INPUTS] {
    std::array::from_fn(|k| first.get(k).copied().unwrap_or(0.0))
}
