//! Special functions the algebra needs, in f64, so the core depends on no
//! math library: the complementary error function behind the normal CDF of
//! the time distributions (`weighting`), and the regularized incomplete beta
//! function with its inverse (the beta quantile, `scipy.stats.beta.ppf`)
//! behind the `beta` grids of ComfyUI and diffusers (`grid`).

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

/// `ln Γ(x)` for `x > 0`, by the Lanczos approximation (`g = 7`, 9 terms;
/// about 1e-15 relative), with the reflection
/// `ln Γ(x) = ln(π / sin(πx)) − ln Γ(1 − x)` below `x = ½`.
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularized incomplete beta function
/// `I_x(a, b) = (1/B(a, b)) ∫₀ˣ u^{a−1} (1 − u)^{b−1} du`
/// (`scipy.special.betainc(a, b, x)`), `a, b > 0`, `x ∈ [0, 1]`; NaN outside.
///
/// With `f = x^a (1 − x)^b / B(a, b)`: for `x < (a + 1)/(a + b + 2)`,
/// `I_x(a, b) = f/a · cf(a, b, x)`, otherwise `1 − f/b · cf(b, a, 1 − x)`,
/// where `cf` is the continued fraction
/// `1/(1 + d₁/(1 + d₂/(1 + …)))`, `d_{2m+1} = −(a + m)(a + b + m) x/((a + 2m)(a + 2m + 1))`,
/// `d_{2m} = m(b − m) x/((a + 2m − 1)(a + 2m))`, evaluated by the modified
/// Lentz method (it converges fast on that side of the mean).
pub fn betainc(a: f64, b: f64, x: f64) -> f64 {
    if !(a > 0.0 && b > 0.0 && (0.0..=1.0).contains(&x)) {
        return f64::NAN;
    }
    if x == 0.0 || x == 1.0 {
        return x;
    }
    let ln_f = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (-x).ln_1p();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_f.exp() * beta_cf(a, b, x) / a
    } else {
        1.0 - ln_f.exp() * beta_cf(b, a, 1.0 - x) / b
    }
}

/// The continued fraction of [`betainc`] (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..1000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
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
    h
}

/// The beta quantile `x = I⁻¹_q(a, b)` (`scipy.stats.beta.ppf(q, a, b)`):
/// the `x ∈ [0, 1]` with [`betainc`]`(a, b, x) = q`, `a, b > 0`,
/// `q ∈ [0, 1]`; NaN outside. `I_x` increases strictly in `x`, so bisection
/// on `[0, 1]` (to adjacent doubles, every step keeping `I(lo) ≤ q ≤ I(hi)`)
/// finds it to the accuracy of `I` itself; `q = 0` and `q = 1` give the ends.
pub fn beta_ppf(q: f64, a: f64, b: f64) -> f64 {
    if !(a > 0.0 && b > 0.0 && (0.0..=1.0).contains(&q)) {
        return f64::NAN;
    }
    if q == 0.0 || q == 1.0 {
        return q;
    }
    // Beta(a, a) is symmetric about ½, so its median is ½ exactly; the
    // bisection below would land an ulp either side (I_½ rounds), and
    // ComfyUI's `beta` scheduler rounds ppf(½)·999 = 499.5 to even.
    if a == b && q == 0.5 {
        return 0.5;
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..2100 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if betainc(a, b, mid) < q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // The two doubles bracket the root: take the one whose I is nearer q.
    if (betainc(a, b, lo) - q).abs() <= (betainc(a, b, hi) - q).abs() {
        lo
    } else {
        hi
    }
}
