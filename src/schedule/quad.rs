//! Adaptive Gauss–Kronrod quadrature (7-point Gauss, 15-point Kronrod), the
//! integrator behind [`FromSde`](super::FromSde).
//!
//! Global adaptive bisection in the manner of QUADPACK's `QAG`: the interval
//! with the largest error estimate is split until the summed estimate is at
//! most `max(abs_tol, rel_tol·|I|)`. The per-interval estimate is QUADPACK's
//! `resasc · min(1, (200 |K15 − G7|/resasc)^{3/2})`, floored at
//! `50 ε ∫|f|`.

use crate::error::{Error, Result};

/// Kronrod abscissae on `[−1, 1]` (the non-negative half; odd indices are
/// the 7-point Gauss nodes, index 7 the centre).
const XGK: [f64; 8] = [
    0.991_455_371_120_812_6,
    0.949_107_912_342_758_5,
    0.864_864_423_359_769_1,
    0.741_531_185_599_394_4,
    0.586_087_235_467_691_1,
    0.405_845_151_377_397_2,
    0.207_784_955_007_898_47,
    0.0,
];
/// Kronrod weights for [`XGK`].
const WGK: [f64; 8] = [
    0.022_935_322_010_529_224,
    0.063_092_092_629_978_55,
    0.104_790_010_322_250_18,
    0.140_653_259_715_525_92,
    0.169_004_726_639_267_9,
    0.190_350_578_064_785_4,
    0.204_432_940_075_298_9,
    0.209_482_141_084_727_83,
];
/// Gauss weights for `XGK[1], XGK[3], XGK[5], XGK[7]`.
const WG: [f64; 4] = [
    0.129_484_966_168_869_7,
    0.279_705_391_489_276_7,
    0.381_830_050_505_118_9,
    0.417_959_183_673_469_4,
];

/// Tolerances of [`integrate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Relative target on the whole integral.
    pub rel: f64,
    /// Absolute target on the whole integral.
    pub abs: f64,
    /// Most subintervals before giving up with an error.
    pub max_intervals: usize,
}

impl Default for Tolerance {
    /// `1e-12` relative, `1e-300` absolute, 4000 subintervals.
    fn default() -> Self {
        Tolerance {
            rel: 1e-12,
            abs: 1e-300,
            max_intervals: 4000,
        }
    }
}

struct Piece {
    a: f64,
    b: f64,
    value: f64,
    err: f64,
}

fn gk15(f: &mut dyn FnMut(f64) -> f64, a: f64, b: f64, what: &str) -> Result<Piece> {
    let centre = 0.5 * (a + b);
    let half = 0.5 * (b - a);
    let mut eval = |x: f64| -> Result<f64> {
        let v = f(x);
        if v.is_finite() {
            Ok(v)
        } else {
            Err(Error::NonFinite {
                what: format!("{what} at {x}"),
                value: v,
            })
        }
    };
    let fc = eval(centre)?;
    let mut resk = fc * WGK[7];
    let mut resg = fc * WG[3];
    let mut resabs = resk.abs();
    let mut fv1 = [0.0; 7];
    let mut fv2 = [0.0; 7];
    for j in 0..7 {
        let dx = half * XGK[j];
        let (f1, f2) = (eval(centre - dx)?, eval(centre + dx)?);
        fv1[j] = f1;
        fv2[j] = f2;
        resk += WGK[j] * (f1 + f2);
        resabs += WGK[j] * (f1.abs() + f2.abs());
        if j % 2 == 1 {
            resg += WG[j / 2] * (f1 + f2);
        }
    }
    let mean = resk * 0.5;
    let mut resasc = WGK[7] * (fc - mean).abs();
    for j in 0..7 {
        resasc += WGK[j] * ((fv1[j] - mean).abs() + (fv2[j] - mean).abs());
    }
    let value = resk * half;
    let resabs = resabs * half.abs();
    let resasc = resasc * half.abs();
    let mut err = ((resk - resg) * half).abs();
    if resasc != 0.0 && err != 0.0 {
        err = resasc * (200.0 * err / resasc).powf(1.5).min(1.0);
    }
    err = err.max(50.0 * f64::EPSILON * resabs);
    Ok(Piece { a, b, value, err })
}

/// `∫_a^b f` to the given tolerance.
///
/// Errors: non-finite bounds, a non-finite integrand value (named by `what`
/// and the abscissa), or no convergence within `tol.max_intervals`.
pub fn integrate(
    mut f: impl FnMut(f64) -> f64,
    a: f64,
    b: f64,
    tol: Tolerance,
    what: &str,
) -> Result<f64> {
    if !(a.is_finite() && b.is_finite()) {
        return Err(Error::invalid(
            "integration bounds",
            format!("{what}: bounds must be finite, got [{a}, {b}]"),
        ));
    }
    if a == b {
        return Ok(0.0);
    }
    let mut pieces = vec![gk15(&mut f, a, b, what)?];
    loop {
        let total: f64 = pieces.iter().map(|p| p.value).sum();
        let err: f64 = pieces.iter().map(|p| p.err).sum();
        if err <= tol.abs.max(tol.rel * total.abs()) {
            return Ok(total);
        }
        if pieces.len() >= tol.max_intervals {
            return Err(Error::invalid(
                "quadrature",
                format!(
                    "{what} on [{a}, {b}] did not reach the tolerance in {} subintervals (estimate {total}, error {err})",
                    tol.max_intervals
                ),
            ));
        }
        let worst = pieces
            .iter()
            .enumerate()
            .max_by(|x, y| x.1.err.total_cmp(&y.1.err))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let p = pieces.swap_remove(worst);
        let m = 0.5 * (p.a + p.b);
        if m <= p.a.min(p.b) || m >= p.a.max(p.b) {
            // Cannot split further in f64: accept what we have.
            pieces.push(p);
            return Ok(pieces.iter().map(|p| p.value).sum());
        }
        pieces.push(gk15(&mut f, p.a, m, what)?);
        pieces.push(gk15(&mut f, m, p.b, what)?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_integrals() {
        let t = Tolerance::default();
        let v = integrate(f64::exp, 0.0, 1.0, t, "exp").unwrap();
        assert!((v - (1f64.exp() - 1.0)).abs() < 1e-14);
        let v = integrate(|x| 1.0 / (1.0 + x * x), 0.0, 10.0, t, "atan").unwrap();
        assert!((v - 10f64.atan()).abs() < 1e-13);
        let v = integrate(f64::sqrt, 0.0, 1.0, t, "sqrt").unwrap();
        assert!((v - 2.0 / 3.0).abs() < 1e-12);
        let v = integrate(|x| x.sin(), 1.0, 0.0, t, "sin").unwrap();
        assert!((v + (1.0 - 1f64.cos())).abs() < 1e-14);
    }

    #[test]
    fn non_finite_integrand_is_an_error() {
        let e = integrate(|x| 1.0 / (x - 0.5), 0.0, 1.0, Tolerance::default(), "pole");
        assert!(e.is_err());
        let e = integrate(|_| f64::NAN, 0.0, 1.0, Tolerance::default(), "nan");
        assert!(matches!(e, Err(Error::NonFinite { .. })));
    }
}
