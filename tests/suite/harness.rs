//! The suite's harness: every test registered by `#[test]`
//! (`tests/macros`), run by libtest-mimic with the usual flags (`--exact`,
//! `--ignored`, `--test-threads`, filters), engine tests once per backend,
//! and every engine dropped before `main` returns.
//!
//! Backends: the CPU engine is always present; wgpu and CUDA are present
//! when they start. `GAUSSFLOW_REQUIRE_BACKENDS` (a comma list, e.g. `wgpu`
//! or `cpu,wgpu`) names backends that must start: there, an absent backend's
//! tests fail. Otherwise they are reported *ignored*, with the reason the
//! backend did not start — never as passes.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use gaussflow::Engine;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// Environment variable naming the backends that must be present.
pub const REQUIRE_ENV: &str = "GAUSSFLOW_REQUIRE_BACKENDS";

/// Every backend the suite knows, in the order tests run on them.
pub const BACKENDS: [&str; 3] = ["cpu", "wgpu", "cuda"];

/// What a test function is.
pub enum Body {
    /// Runs once.
    Plain(fn() -> Outcome),
    /// Runs once per backend.
    Engines(fn(&Engine) -> Outcome),
    /// Runs on the wgpu engine.
    Wgpu(fn(&Engine) -> Outcome),
}

/// One registered test.
pub struct Case {
    /// `module_path!()` of its file (`suite::backend_copy`).
    pub module: &'static str,
    /// The function's name.
    pub name: &'static str,
    /// Marked `#[ignore]`.
    pub ignored: bool,
    /// The function.
    pub body: Body,
}

#[linkme::distributed_slice]
pub static TESTS: [Case];

/// A test's result: `Err` carries the failure message.
pub type Outcome = Result<(), String>;

/// What a test function may return.
pub trait IntoOutcome {
    /// As an [`Outcome`].
    fn into_outcome(self) -> Outcome;
}

impl IntoOutcome for () {
    fn into_outcome(self) -> Outcome {
        Ok(())
    }
}

impl<E: std::fmt::Debug> IntoOutcome for Result<(), E> {
    fn into_outcome(self) -> Outcome {
        self.map_err(|e| format!("{e:?}"))
    }
}

/// The panic payload of [`skip`].
struct Skip(String);

/// Ends the running test as *ignored* with `reason` (e.g. a large test
/// whose variable is unset): shown as ignored in the summary, not as ok.
pub fn skip(reason: impl Into<String>) -> ! {
    std::panic::panic_any(Skip(reason.into()))
}

/// Names listed in `GAUSSFLOW_REQUIRE_BACKENDS`; a name no backend has is an
/// error (a typo must not turn a requirement into a no-op).
pub fn required() -> Result<Vec<String>, String> {
    let list = std::env::var(REQUIRE_ENV).unwrap_or_default();
    let names: Vec<String> = list
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for n in &names {
        if !BACKENDS.contains(&n.as_str()) {
            return Err(format!(
                "{REQUIRE_ENV} names {n:?}, which is not one of {BACKENDS:?}"
            ));
        }
    }
    Ok(names)
}

/// Runs the ignored test `name` (`module::function`) alone in a child
/// process of this binary and fails unless it passed. For tests that change
/// the process environment, which no other test thread may read meanwhile.
pub fn run_in_child(name: &str) {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            name,
            "--test-threads=1",
            "--nocapture",
        ])
        .output()
        .expect("re-run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in a child process:\n{stdout}\n{stderr}"
    );
}

/// The engines of one run, started once, shared by every test, dropped by
/// [`teardown`].
pub struct Backends {
    /// By name, as in [`BACKENDS`]: the engine or why it did not start.
    pub engines: Vec<(&'static str, Result<Arc<Engine>, String>)>,
}

impl Backends {
    fn start() -> Backends {
        let engines = BACKENDS
            .iter()
            .map(|&name| {
                let started = match name {
                    "cpu" => Ok(Engine::cpu()),
                    "wgpu" => Engine::wgpu(),
                    _ => Engine::cuda(0),
                };
                (name, started.map(Arc::new).map_err(|e| e.to_string()))
            })
            .collect();
        Backends { engines }
    }

    /// The named backend's engine, or why it is absent.
    pub fn get(&self, name: &str) -> Result<&Arc<Engine>, &str> {
        match self.engines.iter().find(|(n, _)| *n == name) {
            Some((_, Ok(e))) => Ok(e),
            Some((_, Err(why))) => Err(why),
            None => Err("unknown backend"),
        }
    }
}

static BACKENDS_STARTED: Mutex<Option<Arc<Backends>>> = Mutex::new(None);

/// The run's backends, started at the first call.
pub fn backends() -> Arc<Backends> {
    let mut slot = BACKENDS_STARTED.lock().unwrap_or_else(|p| p.into_inner());
    slot.get_or_insert_with(|| Arc::new(Backends::start()))
        .clone()
}

/// Waits for every engine's work and drops the engines (the last reference:
/// tests have finished), so no driver thread outlives `main`.
pub fn teardown() {
    let taken = BACKENDS_STARTED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(b) = taken {
        for (_, e) in &b.engines {
            if let Ok(e) = e {
                let _ = e.synchronize();
            }
        }
        drop(b);
    }
}

/// The engine of `backend` for a test: present → the engine; absent and
/// required → a failure; absent → ignored with the reason.
pub fn engine_for(backend: &str) -> Result<Arc<Engine>, Result<Completion, Failed>> {
    let backends = backends();
    match backends.get(backend) {
        Ok(e) => Ok(e.clone()),
        Err(why) => {
            let required = match required() {
                Ok(r) => r,
                Err(e) => return Err(Err(e.into())),
            };
            if required.iter().any(|r| r == backend) {
                Err(Err(format!(
                    "{REQUIRE_ENV} requires {backend}, which did not start: {why}"
                )
                .into()))
            } else {
                Err(Ok(Completion::ignored_with(format!(
                    "{backend} absent: {why}"
                ))))
            }
        }
    }
}

/// Runs `f`, turning a [`skip`] into an ignored completion and any other
/// panic into a failure with its message.
fn guarded(f: impl FnOnce() -> Outcome) -> Result<Completion, Failed> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => Ok(Completion::Completed),
        Ok(Err(msg)) => Err(msg.into()),
        Err(payload) => {
            if let Some(Skip(reason)) = payload.downcast_ref::<Skip>() {
                return Ok(Completion::ignored_with(reason.clone()));
            }
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into());
            Err(msg.into())
        }
    }
}

fn on(backend: &'static str, f: fn(&Engine) -> Outcome) -> Result<Completion, Failed> {
    match engine_for(backend) {
        Ok(engine) => guarded(|| f(&engine)),
        Err(done) => done,
    }
}

/// The trials of every registered case, sorted by name.
pub fn trials() -> Vec<Trial> {
    let mut trials = Vec::new();
    for case in TESTS {
        // `suite::backend_copy` → `backend_copy::name`
        let module = case.module.split_once("::").map_or(case.module, |(_, m)| m);
        let base = format!("{module}::{}", case.name);
        match case.body {
            Body::Plain(f) => {
                trials.push(Trial::ignorable_test(base, move || guarded(f)));
            }
            Body::Engines(f) => {
                for backend in BACKENDS {
                    trials.push(
                        Trial::ignorable_test(format!("{base} [{backend}]"), move || {
                            on(backend, f)
                        })
                        .with_ignored_flag(case.ignored),
                    );
                }
                continue;
            }
            Body::Wgpu(f) => {
                trials.push(Trial::ignorable_test(base, move || on("wgpu", f)));
            }
        }
        if case.ignored {
            let last = trials.pop().expect("just pushed");
            trials.push(last.with_ignored_flag(true));
        }
    }
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    trials
}

/// The suite's `main`: quiet panics for [`skip`], run, tear down, exit.
pub fn main() -> std::process::ExitCode {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<Skip>().is_none() {
            default_hook(info);
        }
    }));
    let args = Arguments::from_args();
    let conclusion = libtest_mimic::run(&args, trials());
    teardown();
    conclusion.exit_code()
}
