//! The `(t, s)` pairs a sampler walks.

use crate::error::{Error, Result, check_time};

/// The steps of a sampling run: pairs `(t, s)` with `1 ≥ t > s ≥ 0`, in order.
///
/// Usually consecutive points of a descending grid ([`Steps::from_grid`]),
/// but any pairs are allowed ([`Steps::from_pairs`]): diffusers' DDIM steps
/// from timestep `k` to `k − N/n` whatever the next grid point is (docs/DESIGN.md
/// §4a), so its state lands at `s` and the next model call is at the next
/// step's `t`.
#[derive(Debug, Clone, PartialEq)]
pub struct Steps {
    pairs: Vec<(f64, f64)>,
}

impl Steps {
    /// Consecutive pairs of a strictly descending grid `t₀ > t₁ > … > t_n`
    /// (at least two points, all in `[0, 1]`).
    pub fn from_grid(times: &[f64]) -> Result<Self> {
        if times.len() < 2 {
            return Err(Error::invalid(
                "sampling grid",
                format!("needs at least two times (one step), got {}", times.len()),
            ));
        }
        Self::from_pairs(times.windows(2).map(|w| (w[0], w[1])).collect())
    }

    /// Explicit `(t, s)` pairs (at least one), each with `t, s ∈ [0, 1]` and
    /// `s < t`.
    pub fn from_pairs(pairs: Vec<(f64, f64)>) -> Result<Self> {
        if pairs.is_empty() {
            return Err(Error::invalid("sampling steps", "no steps given"));
        }
        for (i, &(t, s)) in pairs.iter().enumerate() {
            check_time(|| format!("step {i} start t"), t)?;
            check_time(|| format!("step {i} end s"), s)?;
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            if !(s < t) {
                return Err(Error::StepDirection { t, s });
            }
        }
        Ok(Steps { pairs })
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Never true for a constructed value (kept for the `len` convention).
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The pairs.
    pub fn pairs(&self) -> &[(f64, f64)] {
        &self.pairs
    }

    /// Step `i` as `(t, s)`, or [`Error::InvalidArgument`] past the end.
    pub fn get(&self, i: usize) -> Result<(f64, f64)> {
        self.pairs.get(i).copied().ok_or_else(|| {
            Error::invalid(
                "step index",
                format!("{i} is past the last of {} steps", self.pairs.len()),
            )
        })
    }

    /// The times the state visits: every step's `t`, then the last `s`.
    pub fn grid(&self) -> Vec<f64> {
        let mut g: Vec<f64> = self.pairs.iter().map(|p| p.0).collect();
        g.push(self.pairs[self.pairs.len() - 1].1);
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_round_trips() {
        let s = Steps::from_grid(&[1.0, 0.5, 0.0]).unwrap();
        assert_eq!(s.pairs(), &[(1.0, 0.5), (0.5, 0.0)]);
        assert_eq!(s.grid(), vec![1.0, 0.5, 0.0]);
    }

    #[test]
    fn bad_grids_are_rejected() {
        assert!(matches!(
            Steps::from_grid(&[1.0]),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            Steps::from_grid(&[0.5, 0.5]),
            Err(Error::StepDirection { .. })
        ));
        assert!(matches!(
            Steps::from_grid(&[1.5, 0.5]),
            Err(Error::TimeOutOfRange { .. })
        ));
        assert!(matches!(
            Steps::from_pairs(vec![(0.5, f64::NAN)]),
            Err(Error::TimeOutOfRange { .. })
        ));
        assert!(Steps::from_pairs(vec![]).is_err());
    }
}
