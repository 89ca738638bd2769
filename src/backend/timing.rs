//! How a benchmark times a launch: [`Engine::time_launches`](super::Engine::time_launches)
//! returns [`Timings`], measured by the device's clock where a backend has
//! one and by the wall clock otherwise.

use std::time::{Duration, Instant};

use crate::error::Result;

/// The clock behind a [`Timings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Clock {
    /// Host wall clock around the launches and a full synchronisation (the
    /// CPU backend; launch overhead included).
    Wall,
    /// Timestamps written by the device itself (CUDA events, wgpu timestamp
    /// queries): the kernels' execution only.
    Device,
}

/// The time of each repetition of a timed launch.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Timings {
    /// One duration per repetition, in order.
    pub samples: Vec<Duration>,
    /// Which clock measured them.
    pub clock: Clock,
}

impl Timings {
    /// The median repetition (the mean of the middle two for an even
    /// count); zero when there are none.
    pub fn median(&self) -> Duration {
        let mut v = self.samples.clone();
        v.sort_unstable();
        match v.len() {
            0 => Duration::ZERO,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2,
        }
    }

    /// The fastest repetition; zero when there are none.
    pub fn min(&self) -> Duration {
        self.samples.iter().copied().min().unwrap_or(Duration::ZERO)
    }

    /// Sum of all repetitions.
    pub fn total(&self) -> Duration {
        self.samples.iter().sum()
    }
}

/// The default hook: synchronise, then per repetition the wall clock around
/// `launch` and `sync`.
pub(crate) fn wall_clock(
    reps: usize,
    launch: &mut dyn FnMut() -> Result<()>,
    sync: impl Fn() -> Result<()>,
) -> Result<Timings> {
    sync()?;
    let mut samples =
        crate::tensor::host_vec_with_capacity(reps, "the timings of the repetitions")?;
    for _ in 0..reps {
        let t0 = Instant::now();
        launch()?;
        sync()?;
        samples.push(t0.elapsed());
    }
    Ok(Timings {
        samples,
        clock: Clock::Wall,
    })
}
