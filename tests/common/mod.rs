//! The kernel runners present on this machine, for test bodies written once
//! and run on every one of them.
//!
//! The CPU engine is always present; the wgpu and CUDA engines are present
//! when they start. `GAUSSFLOW_REQUIRE_BACKENDS` (a comma list, e.g. `wgpu`
//! or `cpu,wgpu`) names runners that must start: a required runner that does
//! not is a test failure, never a silent skip. A runner that is neither
//! present nor required is skipped with a line on stderr saying why.

#![allow(dead_code)] // each test binary uses part of this module

use std::sync::OnceLock;

use gaussflow::Engine;
use gaussflow::verify::KernelRunner;

/// Environment variable naming the runners that must be present.
pub const REQUIRE_ENV: &str = "GAUSSFLOW_REQUIRE_BACKENDS";

/// A runner shared by the tests of one binary.
pub type SharedRunner = Box<dyn KernelRunner + Send + Sync>;

/// A runner that may be present: its name (as in `GAUSSFLOW_REQUIRE_BACKENDS`)
/// and how to start it.
pub struct Candidate {
    /// Name.
    pub name: &'static str,
    /// Starts it, or says why it cannot.
    pub start: fn() -> Result<SharedRunner, String>,
}

fn start_cpu() -> Result<SharedRunner, String> {
    Ok(Box::new(Engine::cpu()))
}

fn start_wgpu() -> Result<SharedRunner, String> {
    Engine::wgpu()
        .map(|e| Box::new(e) as SharedRunner)
        .map_err(|e| e.to_string())
}

fn start_cuda() -> Result<SharedRunner, String> {
    Engine::cuda(0)
        .map(|e| Box::new(e) as SharedRunner)
        .map_err(|e| e.to_string())
}

/// Every runner the tests know of. Another runner (a host-compiled kernel
/// harness, say) is added here and every test runs on it.
pub const CANDIDATES: &[Candidate] = &[
    Candidate {
        name: "cpu",
        start: start_cpu,
    },
    Candidate {
        name: "wgpu",
        start: start_wgpu,
    },
    Candidate {
        name: "cuda",
        start: start_cuda,
    },
];

/// A present runner.
pub struct Present {
    /// Its name in [`CANDIDATES`].
    pub name: &'static str,
    /// The runner.
    pub runner: SharedRunner,
}

/// Names listed in `GAUSSFLOW_REQUIRE_BACKENDS`. Panics on a name no
/// candidate has (a typo must not turn a requirement into a no-op).
pub fn required() -> Vec<String> {
    let list = std::env::var(REQUIRE_ENV).unwrap_or_default();
    let names: Vec<String> = list
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for n in &names {
        assert!(
            CANDIDATES.iter().any(|c| c.name == n),
            "{REQUIRE_ENV} names {n:?}, which is not one of {:?}",
            CANDIDATES.iter().map(|c| c.name).collect::<Vec<_>>()
        );
    }
    names
}

/// Starts every candidate once per test binary. Panics if a required one
/// does not start.
pub fn runners() -> &'static [Present] {
    static RUNNERS: OnceLock<Vec<Present>> = OnceLock::new();
    let present = RUNNERS.get_or_init(|| {
        let required = required();
        let mut present = Vec::new();
        let mut missing = Vec::new();
        for c in CANDIDATES {
            match (c.start)() {
                Ok(runner) => {
                    eprintln!("runner {}: {}", c.name, runner.label());
                    present.push(Present {
                        name: c.name,
                        runner,
                    });
                }
                Err(why) if required.iter().any(|r| r == c.name) => {
                    missing.push(format!("{}: {why}", c.name))
                }
                Err(why) => eprintln!("runner {} skipped: {why}", c.name),
            }
        }
        assert!(
            missing.is_empty(),
            "{REQUIRE_ENV} requires runners that did not start: {}",
            missing.join("; ")
        );
        present
    });
    exit_without_driver_teardown_at_exit();
    present
}

static ENGINES: OnceLock<Vec<Engine>> = OnceLock::new();

/// Ends the process without the drivers' exit-time teardown.
///
/// The engines live in statics and are never dropped. When a test binary
/// returns from `main`, glibc runs the C++ static destructors of LLVM
/// (lavapipe's shader compiler) while lavapipe's own threads may still be
/// compiling on it: the binary then dies with SIGSEGV or SIGABRT after its
/// last test passed (about one run in five of `engine_errors`, seen in CI).
/// Registered after the driver is loaded, and again at every use so it is
/// the last registered, this handler runs first: it waits for the engines'
/// work, then leaves with the same status through `_exit`, skipping the
/// teardown that races. Rust has flushed stdout by then.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exit_without_driver_teardown_at_exit() {
    unsafe extern "C" {
        fn on_exit(
            f: extern "C" fn(libc::c_int, *mut libc::c_void),
            arg: *mut libc::c_void,
        ) -> libc::c_int;
    }
    extern "C" fn handler(status: libc::c_int, _: *mut libc::c_void) {
        if let Some(engines) = ENGINES.get() {
            for e in engines {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.synchronize()));
            }
        }
        // SAFETY: `_exit` ends the process; nothing runs after it.
        unsafe { libc::_exit(status) }
    }
    // SAFETY: `handler` is an `extern "C"` function that does not unwind.
    unsafe { on_exit(handler, std::ptr::null_mut()) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exit_without_driver_teardown_at_exit() {}

/// The engines among the present runners (CPU always; wgpu and CUDA when
/// they start, failing if required and absent), for tests of the engine API
/// itself (views, device row tables, argument checks).
pub fn engines() -> &'static [Engine] {
    let engines = ENGINES.get_or_init(|| {
        let required = required();
        let mut engines = vec![Engine::cpu()];
        for (name, start) in [
            ("wgpu", Engine::wgpu as fn() -> gaussflow::Result<Engine>),
            ("cuda", || Engine::cuda(0)),
        ] {
            match start() {
                Ok(e) => engines.push(e),
                Err(e) => assert!(
                    !required.iter().any(|r| r == name),
                    "{REQUIRE_ENV} requires {name}, which did not start: {e}"
                ),
            }
        }
        engines
    });
    exit_without_driver_teardown_at_exit();
    engines
}

/// Runs `body` on every present runner, naming the runner if it panics.
pub fn for_each_runner(body: impl Fn(&Present)) {
    for p in runners() {
        eprintln!("-- on {}", p.name);
        body(p);
    }
}
