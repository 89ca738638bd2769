//! Bit-exact emulation of the few NumPy / PyTorch array routines that
//! diffusers and k-diffusion build their schedules and grids with.
//!
//! A user who switches from those libraries must be able to reproduce their
//! integer timesteps and float32 schedule values exactly (docs/DESIGN.md §4a), and
//! those depend on the precise operation sequence of each routine, not only on
//! the formula. Each function here documents the sequence it copies; the
//! golden vectors in `tests/data/` check them.

/// `torch.linspace(start, end, steps, dtype=torch.float32)` on the CPU.
///
/// PyTorch converts both ends to the tensor type, computes
/// `step = (end − start)/(steps − 1)` in it, and fills the first half from the
/// start and the second half from the end, each element with one fused
/// multiply-add: `x_i = fma(step, i, start)` for `i < steps/2`, else
/// `x_i = fma(−step, steps − 1 − i, end)`.
/// (Checked against torch 2.15 for many sizes and ranges.)
pub fn torch_linspace_f32(start: f64, end: f64, steps: usize) -> Vec<f32> {
    let (s, e) = (start as f32, end as f32);
    if steps == 1 {
        return vec![s];
    }
    let step = (e - s) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                step.mul_add(i as f32, s)
            } else {
                (-step).mul_add((steps - 1 - i) as f32, e)
            }
        })
        .collect()
}

/// `torch.linspace(start, end, steps, dtype=torch.float64)`: the same
/// sequence as [`torch_linspace_f32`] in f64.
pub fn torch_linspace_f64(start: f64, end: f64, steps: usize) -> Vec<f64> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f64;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                step.mul_add(i as f64, start)
            } else {
                (-step).mul_add((steps - 1 - i) as f64, end)
            }
        })
        .collect()
}

/// `numpy.linspace(start, stop, num)` in f64 (endpoint included):
/// `step = (stop − start)/(num − 1)`, `x_i = i·step + start` (two roundings,
/// no fused multiply-add), and the last element set to `stop` exactly.
pub fn numpy_linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    match num {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let div = (num - 1) as f64;
            let delta = stop - start;
            let step = delta / div;
            let mut y: Vec<f64> = if step == 0.0 {
                (0..num).map(|i| (i as f64 / div) * delta + start).collect()
            } else {
                (0..num).map(|i| i as f64 * step + start).collect()
            };
            y[num - 1] = stop;
            y
        }
    }
}

/// `numpy.arange(start, stop, step)` for float arguments.
///
/// The length is `ceil((stop − start)/step)`; NumPy stores `start` and
/// `start + step`, then fills `x_i = start + i·d` with `d = (start + step) − start`
/// (which may differ from `step` in the last bits). Returns an empty vector
/// for an empty range, `None` for a zero or non-finite step.
pub fn numpy_arange(start: f64, stop: f64, step: f64) -> Option<Vec<f64>> {
    if step == 0.0 || !step.is_finite() || !start.is_finite() || !stop.is_finite() {
        return None;
    }
    let len = ((stop - start) / step).ceil();
    if len <= 0.0 {
        return Some(Vec::new());
    }
    let len = len as usize;
    let second = start + step;
    let d = second - start;
    Some(
        (0..len)
            .map(|i| match i {
                0 => start,
                1 => second,
                _ => start + i as f64 * d,
            })
            .collect(),
    )
}

/// `numpy.round` (and `ndarray.round()`) to an integer: round half to even.
pub fn numpy_round(x: f64) -> f64 {
    x.round_ties_even()
}

/// `numpy.interp(x, xp, fp)` for increasing `xp`, one point.
///
/// Outside `[xp_0, xp_last]` it returns the end values; at an exact knot the
/// knot's value; otherwise `slope·(x − xp_j) + fp_j` with
/// `slope = (fp_{j+1} − fp_j)/(xp_{j+1} − xp_j)` (NumPy's operation order,
/// including its fallback from the right end when that gives NaN).
pub fn numpy_interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let n = xp.len();
    debug_assert_eq!(n, fp.len());
    if n == 0 {
        return f64::NAN;
    }
    if x.is_nan() {
        return x;
    }
    if x >= xp[n - 1] {
        return fp[n - 1];
    }
    if x < xp[0] {
        return fp[0];
    }
    // Largest j with xp[j] <= x.
    let j = xp.partition_point(|&v| v <= x) - 1;
    if xp[j] == x {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    let mut r = slope * (x - xp[j]) + fp[j];
    if r.is_nan() {
        r = slope * (x - xp[j + 1]) + fp[j + 1];
        if r.is_nan() && fp[j] == fp[j + 1] {
            r = fp[j];
        }
    }
    r
}

/// `torch.cumprod` of a float32 tensor on the CPU: PyTorch accumulates in
/// f64 (its CPU accumulate type for float) and rounds each partial product
/// to f32.
pub fn torch_cumprod_f32(x: &[f32]) -> Vec<f32> {
    let mut acc = 1.0f64;
    x.iter()
        .map(|&v| {
            acc *= v as f64;
            acc as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_ends_are_exact() {
        let v = torch_linspace_f32(0.0001, 0.02, 1000);
        assert_eq!(v[0], 0.0001f32);
        assert_eq!(v[999], 0.02f32);
        let v = numpy_linspace(0.0, 999.0, 7);
        assert_eq!(v[6], 999.0);
        assert_eq!(v[3], 499.5);
    }

    #[test]
    fn arange_length_and_fill() {
        assert_eq!(
            numpy_arange(1000.0, 0.0, -250.0).unwrap(),
            [1000.0, 750.0, 500.0, 250.0]
        );
        assert_eq!(numpy_arange(0.0, 1.0, -1.0).unwrap(), Vec::<f64>::new());
        assert!(numpy_arange(0.0, 1.0, 0.0).is_none());
    }

    #[test]
    fn round_half_even() {
        assert_eq!(numpy_round(0.5), 0.0);
        assert_eq!(numpy_round(1.5), 2.0);
        assert_eq!(numpy_round(2.5), 2.0);
        assert_eq!(numpy_round(-0.5), -0.0);
    }

    #[test]
    fn interp_clamps_and_hits_knots() {
        let xp = [0.0, 1.0, 2.0];
        let fp = [1.0, 3.0, 7.0];
        assert_eq!(numpy_interp(-1.0, &xp, &fp), 1.0);
        assert_eq!(numpy_interp(5.0, &xp, &fp), 7.0);
        assert_eq!(numpy_interp(1.0, &xp, &fp), 3.0);
        assert_eq!(numpy_interp(1.5, &xp, &fp), 5.0);
    }
}
