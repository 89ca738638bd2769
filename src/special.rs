//! Special functions the algebra needs, in f64, so the core depends on no
//! math library: the complementary error function behind the normal CDF of
//! the time distributions (`weighting`).

use std::f64::consts::PI;

/// `erfc(x) = 1 − erf(x) = (2/√π) ∫ₓ^∞ e^{−u²} du`, to about 1e-15 relative.
///
/// Through the incomplete gamma function, `erfc(x) = Γ(½, x²)/√π` for
/// `x ≥ 0`, evaluated the way each form converges fast:
///
/// * `x² < 1.5`: the series of the lower function,
///   `erf(x) = (x e^{−x²}/Γ(½)) Σₙ x^{2n} / ((½)(3/2)…(½ + n))`, whose terms
///   are all positive (no cancellation), then `erfc = 1 − erf`
///   (`erfc ≥ 0.08` there, so the subtraction loses at most one digit);
/// * `x² ≥ 1.5`: the continued fraction of the upper function,
///   `Γ(½, x²) = e^{−x²} x · 1/(x² + ½ − (1·½)/(x² + 5/2 − (2·3/2)/(x² + 9/2 − …)))`,
///   evaluated by the modified Lentz method;
///
/// and `erfc(−x) = 2 − erfc(x)`.
pub(crate) fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    let x2 = x * x;
    if x2 < 1.5 {
        1.0 - erf_series(x, x2)
    } else {
        erfc_continued_fraction(x, x2)
    }
}

/// `erf(x)` for `x² < 1.5` by the positive series of `γ(½, x²)`.
fn erf_series(x: f64, x2: f64) -> f64 {
    let mut a = 0.5;
    let mut term = 1.0 / a;
    let mut sum = term;
    for _ in 0..200 {
        a += 1.0;
        term *= x2 / a;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum * x * exp_minus_square(x) / PI.sqrt()
}

/// `erfc(x)` for `x² ≥ 1.5` by the continued fraction of `Γ(½, x²)`.
fn erfc_continued_fraction(x: f64, x2: f64) -> f64 {
    if x2 > 750.0 {
        return 0.0; // e^{−x²} underflows: erfc(27.4) ≈ 1e-328
    }
    const TINY: f64 = 1e-300;
    let a = 0.5;
    let mut b = x2 + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..500 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    exp_minus_square(x) * x * h / PI.sqrt()
}

/// `e^{−x²}` without the rounding of `x²` (which is worth `x²·2⁻⁵³`
/// relative, 6e-14 at `x = 26`): `x = hi + lo` with `hi` on 26 bits, so
/// `hi²` is exact and `x² = hi² + (x − hi)(x + hi)`.
fn exp_minus_square(x: f64) -> f64 {
    let hi = f64::from_bits(x.to_bits() & 0xffff_ffff_f800_0000);
    (-hi * hi).exp() * (-(x - hi) * (x + hi)).exp()
}
