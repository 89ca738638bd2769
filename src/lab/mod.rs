//! The project's lab (feature `lab`): what the repository uses to check and
//! measure itself, kept out of the core so a user of the kernels compiles
//! none of it.
//!
//! * [`models`]: the exact Gaussian-mixture model (closed-form `x̂`, `ε̂`,
//!   velocity, score, log-density under any schedule), to test samplers
//!   against a known distribution;
//! * [`likelihood`]: probability-flow ODE log-densities (exact or Hutchinson
//!   divergence);
//! * [`claims`]: the seed post's nine claims as measurements with criteria;
//! * [`bench`](mod@bench): the benchmark workloads, their unfused (PyTorch-eager)
//!   baselines and the copy ceiling, shared by `gaussflow bench` and the
//!   criterion benches.
//!
//! The lab uses the library only through its public API, like any user; the
//! core never imports it (CI builds the core with the lab off and checks the
//! imports: `scripts/check_layers.sh`).

pub mod bench;
pub mod claims;
pub mod likelihood;
pub mod models;
