//! Every schedule: `α`, `σ` against closed forms written out here
//! independently of the library; `α′`, `σ′`, `dλ/dt`, `f`, `g²` against
//! finite differences; `t(λ(t)) = t`.

use gaussflow::Schedule;
use gaussflow::schedule::{
    BetaSchedule, CondFlow, Discrete, DiscreteConfig, Flow, FlowSigmaMin, FromFlow, FromSde,
    Scaled, Shifted, Ve, VpCosine, VpLinear,
};
use std::f64::consts::PI;
use std::sync::Arc;

fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    a == b || (a - b).abs() <= abs + rel * a.abs().max(b.abs())
}

/// Fourth-order central difference with step `h`.
fn fd(f: impl Fn(f64) -> f64, t: f64, h: f64) -> f64 {
    (-f(t + 2.0 * h) + 8.0 * f(t + h) - 8.0 * f(t - h) + f(t - 2.0 * h)) / (12.0 * h)
}

/// Interior test times, avoiding the ends where some derivatives blow up.
fn times() -> Vec<f64> {
    (1..40).map(|i| i as f64 / 40.0 - 0.0123).collect()
}

/// Checks the derivatives and the inverse of `s` at `ts`, with FD step `h`.
fn check_calculus<S: Schedule + ?Sized>(s: &S, ts: &[f64], h: f64, tol: f64) {
    let name = s.name();
    for &t in ts {
        // λ ~ −2 ln t near t = 0 (and ln(1 − t) near 1 for some): keep the
        // stencil well inside so the FD truncation stays below `tol`.
        let h = h.min(0.003 * t.min(1.0 - t));
        let (a, sg) = (s.alpha(t), s.sigma(t));
        let da = fd(|x| s.alpha(x), t, h);
        let ds = fd(|x| s.sigma(x), t, h);
        let dl = fd(|x| s.log_snr(x), t, h);
        assert!(
            close(s.d_alpha(t), da, tol, tol * 1e-2),
            "{name} α′({t}) = {} vs FD {da}",
            s.d_alpha(t)
        );
        assert!(
            close(s.d_sigma(t), ds, tol, tol * 1e-2),
            "{name} σ′({t}) = {} vs FD {ds}",
            s.d_sigma(t)
        );
        assert!(
            close(s.d_log_snr(t), dl, tol, tol * 1e-2),
            "{name} λ′({t}) = {} vs FD {dl}",
            s.d_log_snr(t)
        );
        // λ itself and the SDE coefficients from their definitions.
        let lam = (a * a / (sg * sg)).ln();
        assert!(close(s.log_snr(t), lam, 1e-12, 1e-12), "{name} λ({t})");
        let f = da / a;
        let g2 = 2.0 * sg * ds - 2.0 * f * sg * sg;
        assert!(
            close(s.sde_f(t), f, tol, tol * 1e-2),
            "{name} f({t}) = {} vs {f}",
            s.sde_f(t)
        );
        assert!(
            close(s.sde_g2(t), g2, tol, tol * 1e-2),
            "{name} g²({t}) = {} vs {g2}",
            s.sde_g2(t)
        );
        assert!(close(s.rho(t), sg / a, 1e-14, 0.0), "{name} ρ({t})");
        // Inverse.
        let back = s.t_from_log_snr(s.log_snr(t)).unwrap();
        assert!((back - t).abs() <= 1e-11, "{name}: t(λ({t})) = {back}");
        let back = s.t_from_rho(s.rho(t)).unwrap();
        assert!((back - t).abs() <= 1e-11, "{name}: t(ρ({t})) = {back}");
    }
}

#[test]
fn flow() {
    for t in times() {
        assert!(close(Flow.alpha(t), 1.0 - t, 1e-15, 0.0));
        assert!(close(Flow.sigma(t), t, 1e-15, 0.0));
    }
    assert_eq!((Flow.alpha(1.0), Flow.sigma(0.0)), (0.0, 0.0));
    check_calculus(&Flow, &times(), 1e-4, 1e-9);
}

/// Conditional flow matching with σ > 0: `σ = √(t² + σ_c²)` (I-CFM) and
/// `σ = σ_min + (1 − σ_min) t` (Lipman et al.), both `α = 1 − t`; at
/// `σ = 0` each is the flow schedule to the bit; the inverse reaches both
/// ends.
#[test]
fn cond_flow_and_flow_sigma_min() {
    for c in [0.0, 1e-3, 0.1, 0.5, 2.0] {
        let s = CondFlow::new(c).unwrap();
        for t in times() {
            assert!(close(s.alpha(t), 1.0 - t, 1e-15, 0.0));
            assert!(close(s.sigma(t), (t * t + c * c).sqrt(), 1e-15, 0.0));
        }
        check_calculus(&s, &times(), 1e-4, 1e-8);
        assert_eq!(s.t_from_log_snr(s.log_snr(0.0)).unwrap(), 0.0, "σ_c = {c}");
        assert_eq!(
            s.t_from_log_snr(f64::NEG_INFINITY).unwrap(),
            1.0,
            "σ_c = {c}"
        );
    }
    for m in [0.0, 1e-4, 0.1, 0.9] {
        let s = FlowSigmaMin::new(m).unwrap();
        for t in times() {
            assert!(close(s.alpha(t), 1.0 - t, 1e-15, 0.0));
            assert!(close(s.sigma(t), m + (1.0 - m) * t, 1e-15, 0.0));
        }
        check_calculus(&s, &times(), 1e-4, 1e-8);
        assert_eq!(
            s.t_from_log_snr(s.log_snr(0.0)).unwrap(),
            0.0,
            "σ_min = {m}"
        );
        assert_eq!(
            s.t_from_log_snr(f64::NEG_INFINITY).unwrap(),
            1.0,
            "σ_min = {m}"
        );
    }
    let (c0, m0) = (CondFlow::new(0.0).unwrap(), FlowSigmaMin::new(0.0).unwrap());
    for t in times() {
        assert_eq!(c0.sigma(t), Flow.sigma(t));
        assert_eq!(m0.sigma(t), Flow.sigma(t));
    }
}

#[test]
fn vp_cosine() {
    for t in times() {
        assert!(close(VpCosine.alpha(t), (PI * t / 2.0).cos(), 1e-14, 1e-16));
        assert!(close(VpCosine.sigma(t), (PI * t / 2.0).sin(), 1e-14, 1e-16));
    }
    assert_eq!(VpCosine.alpha(1.0), 0.0);
    check_calculus(&VpCosine, &times(), 1e-4, 1e-9);
}

#[test]
fn vp_linear() {
    let s = VpLinear::default();
    for t in times() {
        let a = (-0.25 * t * t * (20.0 - 0.1) - 0.5 * t * 0.1).exp();
        assert!(close(s.alpha(t), a, 1e-14, 0.0));
        assert!(close(s.sigma(t), (1.0 - a * a).sqrt(), 1e-13, 0.0));
    }
    check_calculus(&s, &times(), 1e-4, 1e-8);
}

#[test]
fn ve() {
    let s = Ve::default();
    for t in times() {
        assert_eq!(s.alpha(t), 1.0);
        assert!(close(
            s.sigma(t),
            0.002 * (80.0f64 / 0.002).powf(t),
            1e-13,
            0.0
        ));
    }
    check_calculus(&s, &times(), 1e-4, 1e-8);
}

#[test]
fn scaled_and_shifted_compose_over_dyn_schedules() {
    let c = 1.7;
    let sc = Scaled::new(VpCosine, c).unwrap();
    for t in times() {
        assert!(close(sc.alpha(t), c * (PI * t / 2.0).cos(), 1e-14, 1e-16));
        assert!(close(sc.sigma(t), c * (PI * t / 2.0).sin(), 1e-14, 1e-16));
        assert!(close(sc.log_snr(t), VpCosine.log_snr(t), 1e-14, 1e-14));
    }
    check_calculus(&sc, &times(), 1e-4, 1e-9);

    let s = 3.0;
    let sh = Shifted::new(Flow, s).unwrap();
    for t in times() {
        let tp = s * t / (1.0 + (s - 1.0) * t);
        assert!(close(sh.alpha(t), 1.0 - tp, 1e-14, 1e-16));
        assert!(close(sh.sigma(t), tp, 1e-14, 1e-16));
    }
    assert_eq!(
        (sh.alpha(1.0), sh.sigma(1.0), sh.sigma(0.0)),
        (0.0, 1.0, 0.0)
    );
    check_calculus(&sh, &times(), 1e-5, 1e-8);

    // Any Arc<dyn Schedule> as the inner schedule, nested both ways.
    let inner: Arc<dyn Schedule> = Arc::new(VpLinear::default());
    let nested = Shifted::new(Scaled::new(inner.clone(), 0.5).unwrap(), 0.4).unwrap();
    let boxed: Arc<dyn Schedule> = Arc::new(nested);
    let outer = Scaled::new(Shifted::new(boxed.clone(), 2.0).unwrap(), 2.0).unwrap();
    for t in times() {
        let tp = 0.4 * t / (1.0 + (0.4 - 1.0) * t);
        assert!(close(boxed.alpha(t), 0.5 * inner.alpha(tp), 1e-14, 0.0));
        let tpp = 2.0 * t / (1.0 + t);
        assert!(close(outer.sigma(t), 2.0 * boxed.sigma(tpp), 1e-14, 0.0));
    }
    check_calculus(&*boxed, &times(), 1e-5, 1e-8);
    check_calculus(&outer, &times(), 1e-5, 1e-8);
}

/// Betas, cumulative products and `ρ` written out independently.
fn reference_alphas_cumprod(betas: &[f64]) -> Vec<f64> {
    let mut acc = 1.0;
    betas
        .iter()
        .map(|b| {
            acc *= 1.0 - b;
            acc
        })
        .collect()
}

fn discrete_cases() -> Vec<(Discrete, Vec<f64>)> {
    let n = 1000;
    let lin: Vec<f64> = (0..n)
        .map(|i| 0.0001 + (0.02 - 0.0001) * i as f64 / (n - 1) as f64)
        .collect();
    let (a, b) = (0.00085f64.sqrt(), 0.012f64.sqrt());
    let scaled: Vec<f64> = (0..n)
        .map(|i| (a + (b - a) * i as f64 / (n - 1) as f64).powi(2))
        .collect();
    let abar = |s: f64| ((s + 0.008) / 1.008 * PI / 2.0).cos().powi(2);
    let cos: Vec<f64> = (0..n)
        .map(|i| (1.0 - abar((i + 1) as f64 / n as f64) / abar(i as f64 / n as f64)).min(0.999))
        .collect();
    vec![
        (
            DiscreteConfig::new(BetaSchedule::linear()).build().unwrap(),
            reference_alphas_cumprod(&lin),
        ),
        (
            DiscreteConfig::new(BetaSchedule::scaled_linear())
                .build()
                .unwrap(),
            reference_alphas_cumprod(&scaled),
        ),
        (
            DiscreteConfig::new(BetaSchedule::squaredcos_cap_v2())
                .build()
                .unwrap(),
            reference_alphas_cumprod(&cos),
        ),
    ]
}

#[test]
fn discrete_knots_and_interpolation() {
    for (d, ab) in discrete_cases() {
        let name = d.name();
        let n = ab.len();
        for (k, &want) in ab.iter().enumerate() {
            assert!(
                close(d.alphas_cumprod()[k], want, 1e-12, 0.0),
                "{name} ᾱ[{k}]"
            );
            let t = (k + 1) as f64 / n as f64;
            assert!(
                close(d.alpha(t), want.sqrt(), 1e-12, 0.0),
                "{name} α at step {k}"
            );
            assert!(
                close(d.sigma(t), (1.0 - want).sqrt(), 1e-10, 0.0),
                "{name} σ at step {k}"
            );
        }
        // Between knots ρ = σ/α is linear in the step position u = Nt − 1.
        let rho: Vec<f64> = ab.iter().map(|a| ((1.0 - a) / a).sqrt()).collect();
        for &(k, w) in &[(0usize, 0.3), (10, 0.5), (500, 0.25), (997, 0.9)] {
            let u = k as f64 + w;
            let t = (u + 1.0) / n as f64;
            let r = rho[k] + w * (rho[k + 1] - rho[k]);
            assert!(close(d.rho(t), r, 1e-10, 0.0), "{name} ρ at u = {u}");
            assert!(close(d.alpha(t), 1.0 / (1.0 + r * r).sqrt(), 1e-10, 0.0));
        }
        // Before step 0: from ρ = 0 at t = 0.
        assert_eq!((d.alpha(0.0), d.sigma(0.0)), (1.0, 0.0));
        let t = 0.4 / n as f64;
        assert!(
            close(d.rho(t), 0.4 * rho[0], 1e-10, 0.0),
            "{name} ρ on [0, 1/N]"
        );
        // Calculus strictly inside intervals (the derivatives jump at knots).
        let ts: Vec<f64> = [3usize, 50, 333, 640, 998]
            .iter()
            .flat_map(|&k| [0.3, 0.5, 0.7].map(|w| (k as f64 + w + 1.0) / n as f64))
            .chain([0.5 / n as f64])
            .collect();
        check_calculus(&d, &ts, 2e-5, 1e-7);
        // Inverse also at the knots themselves.
        for k in [0usize, 1, 499, 998, 999] {
            let t = (k + 1) as f64 / n as f64;
            let back = d.t_from_log_snr(d.log_snr(t)).unwrap();
            assert!(
                (back - t).abs() < 1e-12,
                "{name}: t(λ) at knot {k}: {back} vs {t}"
            );
        }
    }
}

#[test]
fn discrete_from_explicit_alphas_cumprod_is_used_exactly() {
    let ab = vec![0.9, 0.5, 0.1, 0.01];
    let d = Discrete::from_alphas_cumprod(ab.clone()).unwrap();
    assert_eq!(d.alphas_cumprod(), &ab[..]);
    assert!(close(d.betas()[2], 1.0 - 0.1 / 0.5, 1e-15, 0.0));
    assert_eq!(d.alpha(0.75), 0.1f64.sqrt());
    assert_eq!(d.t_of_timestep(2.0), 0.75);
    assert_eq!(d.timestep_of_t(0.75), 2.0);
    check_calculus(&d, &[0.1, 0.3, 0.6, 0.9], 1e-4, 1e-8);
    // diffusers' _sigma_to_t: log-σ interpolation, clamped.
    let r = d.rho_table().to_vec();
    assert_eq!(d.sigma_to_timestep(r[1]), 1.0);
    let mid = (0.5 * (r[1].ln() + r[2].ln())).exp();
    assert!(close(d.sigma_to_timestep(mid), 1.5, 1e-12, 0.0));
    assert_eq!(d.sigma_to_timestep(r[0] * 0.5), 0.0);
    assert_eq!(d.sigma_to_timestep(r[3] * 2.0), 3.0);
}

#[test]
fn from_sde_reproduces_vp_linear() {
    // f = −½β(t), g = √β(t), β(t) = 0.1 + 19.9 t: the continuous DDPM.
    let s = FromSde::new(|t| -0.5 * (0.1 + 19.9 * t), |t| (0.1 + 19.9 * t).sqrt()).unwrap();
    for t in [0.0f64, 0.01, 0.2, 0.5, 0.77, 1.0] {
        let a = (-0.25 * t * t * 19.9 - 0.5 * t * 0.1).exp();
        assert!(close(s.alpha(t), a, 1e-12, 0.0), "α({t})");
        assert!(
            close(s.sigma(t), (1.0 - a * a).sqrt(), 1e-11, 1e-300),
            "σ({t}) = {}",
            s.sigma(t)
        );
    }
    check_calculus(&s, &[0.05, 0.3, 0.6, 0.95], 1e-4, 1e-7);
}

#[test]
fn from_flow_numerical_derivatives() {
    let s = FromFlow::new(|t| (PI * t / 2.0).cos(), |t| (PI * t / 2.0).sin()).unwrap();
    for t in [0.0, 0.001, 0.2, 0.5, 0.999, 1.0] {
        assert!(
            close(s.d_alpha(t), VpCosine.d_alpha(t), 1e-8, 1e-9),
            "α′({t})"
        );
        assert!(
            close(s.d_sigma(t), VpCosine.d_sigma(t), 1e-8, 1e-9),
            "σ′({t})"
        );
    }
    let exact = FromFlow::new(|t| 1.0 - t, |t| t)
        .unwrap()
        .with_derivatives(|_| -1.0, |_| 1.0);
    assert_eq!((exact.d_alpha(0.3), exact.d_sigma(0.3)), (-1.0, 1.0));
    check_calculus(&s, &times(), 1e-4, 1e-7);
}

/// `at()` is the checked entry point for every schedule kind.
#[test]
fn at_checks_time_and_values() {
    let schedules: Vec<Arc<dyn Schedule>> = vec![
        Arc::new(Flow),
        Arc::new(VpCosine),
        Arc::new(VpLinear::default()),
        Arc::new(Ve::default()),
        Arc::new(DiscreteConfig::default().build().unwrap()),
        Arc::new(Shifted::new(Flow, 3.0).unwrap()),
        Arc::new(Scaled::new(VpCosine, 2.0).unwrap()),
    ];
    for s in schedules {
        for t in [-0.1, 1.5, f64::NAN] {
            assert!(
                matches!(s.at(t), Err(gaussflow::Error::TimeOutOfRange { .. })),
                "{}",
                s.name()
            );
        }
        let at = s.at(0.5).unwrap();
        assert_eq!((at.alpha, at.sigma), (s.alpha(0.5), s.sigma(0.5)));
    }
}

/// Step `k` at `t = (k + 1)/N` gives `√ᾱ_k` exactly for any `N`, even where
/// `N·t − 1` misses `k` by an ulp in f64 (N = 4000, 999).
#[test]
fn discrete_knots_are_exact_for_any_n() {
    for n in [999usize, 1000, 4000] {
        let d = DiscreteConfig::default()
            .num_train_timesteps(n)
            .build()
            .unwrap();
        for k in 0..n {
            let t = (k + 1) as f64 / n as f64;
            assert_eq!(d.alpha(t), d.alphas_cumprod()[k].sqrt(), "N = {n}, k = {k}");
            assert_eq!(
                d.sigma(t),
                (1.0 - d.alphas_cumprod()[k]).sqrt(),
                "N = {n}, k = {k}"
            );
        }
    }
}
