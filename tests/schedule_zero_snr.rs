//! Zero terminal SNR: `α = 0` exactly at `t = 1`, everything else finite
//! there; v- and x-prediction invert at `t = 1`, ε-prediction is an error;
//! diffusers Euler's `ᾱ = 2⁻²⁴` alternative; validation of discrete inputs.

use gaussflow::schedule::{
    BetaSchedule, Discrete, DiscreteConfig, EULER_TERMINAL_ALPHA_CUMPROD, Precision,
    ZeroSnrTerminal,
};
use gaussflow::{Error, Prediction, Schedule};

fn zsnr(beta: BetaSchedule, precision: Precision) -> Discrete {
    DiscreteConfig::new(beta)
        .zero_snr(true)
        .precision(precision)
        .build()
        .unwrap()
}

fn all_zsnr() -> Vec<Discrete> {
    let mut v = Vec::new();
    for b in [
        BetaSchedule::linear(),
        BetaSchedule::scaled_linear(),
        BetaSchedule::squaredcos_cap_v2(),
    ] {
        for p in [Precision::F64, Precision::Diffusers] {
            v.push(zsnr(b.clone(), p));
        }
    }
    v
}

#[test]
fn alpha_is_exactly_zero_at_t_one() {
    for d in all_zsnr() {
        let name = d.name();
        assert!(d.is_zero_terminal_snr(), "{name}");
        assert_eq!(d.alphas_cumprod()[999], 0.0, "{name}");
        assert_eq!(d.alpha(1.0), 0.0, "{name}");
        assert_eq!(d.sigma(1.0), 1.0, "{name}");
        assert_eq!(d.log_snr(1.0), f64::NEG_INFINITY, "{name}");
        assert_eq!(d.t_from_log_snr(f64::NEG_INFINITY).unwrap(), 1.0, "{name}");
        // Derivatives stay finite at t = 1 (the last interval interpolates
        // q = α/σ linearly to 0): α′ = −N q_{N−2}, σ′ = 0.
        let q0 = 1.0 / d.rho_table()[998];
        assert!(
            (d.d_alpha(1.0) + 1000.0 * q0).abs() < 1e-12 * 1000.0 * q0,
            "{name} α′(1)"
        );
        assert_eq!(d.d_sigma(1.0), 0.0, "{name} σ′(1)");
        let at = d.at(1.0).unwrap();
        assert!(at.d_alpha.is_finite() && at.d_sigma.is_finite());
        // Continuous across the last knot, and strictly inside the last interval
        // α/σ is linear in t.
        let t_knot = 999.0 / 1000.0;
        let eps = 1e-9;
        assert!((d.alpha(t_knot - eps) - d.alpha(t_knot)).abs() < 1e-8);
        assert!((d.alpha(t_knot + eps) - d.alpha(t_knot)).abs() < 1e-8);
        let tm = 0.9995;
        let q = d.alpha(tm) / d.sigma(tm);
        assert!(
            (q - 0.5 * q0).abs() < 1e-13,
            "{name}: q at the middle of the last interval"
        );
        // t(λ(t)) = t on the last interval too.
        for t in [0.99901, 0.9995, 0.99999] {
            let back = d.t_from_log_snr(d.log_snr(t)).unwrap();
            assert!((back - t).abs() < 1e-12, "{name}: t(λ({t})) = {back}");
        }
    }
}

#[test]
fn v_and_x_invert_at_t_one_but_eps_does_not() {
    for d in all_zsnr() {
        let at = d.at(1.0).unwrap();
        // z = α x + σ ε = ε at t = 1.
        let (x, eps) = (0.3, -1.2);
        let z = at.alpha * x + at.sigma * eps;
        for p in [Prediction::V, Prediction::X] {
            let pred = p.from_x_eps(&at, x, eps);
            let (xh, eh) = p.to_x_eps(&at, z, pred).unwrap();
            assert!(
                (xh - x).abs() < 1e-12 && (eh - eps).abs() < 1e-12,
                "{p} at t = 1"
            );
            assert!(xh.is_finite() && eh.is_finite());
        }
        let err = Prediction::Eps.inverse(&at).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotInvertible {
                    prediction: Prediction::Eps,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn euler_terminal_alternative() {
    let d = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .zero_snr(true)
        .terminal(ZeroSnrTerminal::EulerClamp)
        .build()
        .unwrap();
    assert!(!d.is_zero_terminal_snr());
    assert_eq!(d.alphas_cumprod()[999], EULER_TERMINAL_ALPHA_CUMPROD);
    assert_eq!(d.alpha(1.0), 2f64.powi(-12));
    assert!((d.rho(1.0) - (2f64.powi(24) - 1.0).sqrt()).abs() < 1e-9);
    // Now ε-prediction inverts at t = 1 as well.
    assert!(Prediction::Eps.inverse(&d.at(1.0).unwrap()).is_ok());
    // Without zero SNR the option changes nothing.
    let plain = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .terminal(ZeroSnrTerminal::EulerClamp)
        .build()
        .unwrap();
    let default = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .build()
        .unwrap();
    assert_eq!(plain.alphas_cumprod(), default.alphas_cumprod());
}

#[test]
fn squaredcos_betas_are_not_all_zero() {
    // A Rust port once computed i / N with integer division, giving
    // β = 0 for every step but the last. Check both precisions.
    for p in [Precision::F64, Precision::Diffusers] {
        let d = DiscreteConfig::new(BetaSchedule::squaredcos_cap_v2())
            .precision(p)
            .build()
            .unwrap();
        let b = d.betas();
        assert!(b[..999].iter().all(|&x| x > 0.0), "all betas positive");
        // (f32 rounding in the diffusers precision)
        assert!(
            (b[0] / 4.128422482196914e-05 - 1.0).abs() < 1e-7,
            "β_0 = {}",
            b[0]
        );
        assert!(b.windows(2).all(|w| w[1] >= w[0]), "betas increase");
        assert_eq!(b[999] as f32, 0.999f32, "the last beta is capped at 0.999");
        assert!(d.alphas_cumprod()[500] > 0.4 && d.alphas_cumprod()[500] < 0.6);
    }
}

#[test]
fn bad_discrete_inputs() {
    let bad = |c: DiscreteConfig| c.build().unwrap_err();
    assert!(matches!(
        bad(DiscreteConfig::default().num_train_timesteps(1)),
        Error::InvalidArgument { .. }
    ));
    assert!(matches!(
        bad(DiscreteConfig::new(BetaSchedule::Linear {
            beta_start: 0.0,
            beta_end: 0.02
        })),
        Error::InvalidArgument { .. }
    ));
    assert!(matches!(
        bad(DiscreteConfig::new(BetaSchedule::Linear {
            beta_start: f64::NAN,
            beta_end: 0.02
        })),
        Error::NonFinite { .. }
    ));
    assert!(matches!(
        bad(DiscreteConfig::new(BetaSchedule::ScaledLinear {
            beta_start: 0.1,
            beta_end: 1.5
        })),
        Error::InvalidArgument { .. }
    ));
    assert!(matches!(
        bad(DiscreteConfig::new(BetaSchedule::SquaredCosCapV2 {
            max_beta: 0.0
        })),
        Error::InvalidArgument { .. }
    ));
    assert!(matches!(
        Discrete::from_betas(vec![0.1, f64::INFINITY]).unwrap_err(),
        Error::NonFinite { .. }
    ));
    assert!(matches!(
        Discrete::from_betas(vec![0.1, -0.1]).unwrap_err(),
        Error::InvalidArgument { .. }
    ));
    // β = 0 makes ᾱ flat: not a valid schedule (λ must decrease).
    assert!(matches!(
        Discrete::from_betas(vec![0.1, 0.0, 0.2]).unwrap_err(),
        Error::InvalidArgument { .. }
    ));
    assert!(matches!(
        Discrete::from_alphas_cumprod(vec![0.9, 0.95]).unwrap_err(),
        Error::InvalidArgument { .. }
    ));
    assert!(matches!(
        Discrete::from_alphas_cumprod(vec![1.0, 0.5]).unwrap_err(),
        Error::InvalidArgument { .. }
    ));
    assert!(matches!(
        Discrete::from_alphas_cumprod(vec![0.9, 0.0, 0.0]).unwrap_err(),
        Error::InvalidArgument { .. }
    ));
    assert!(matches!(
        Discrete::from_alphas_cumprod(vec![0.9, f64::NAN]).unwrap_err(),
        Error::NonFinite { .. }
    ));
    // Zero SNR from explicit values is accepted.
    let d = Discrete::from_alphas_cumprod(vec![0.9, 0.5, 0.0]).unwrap();
    assert!(d.is_zero_terminal_snr());
    assert_eq!(d.alpha(1.0), 0.0);
    assert_err!(d.t_of_step(3), gaussflow::Error::InvalidArgument { .. });
    assert_err!(d.t_of_step(-1), gaussflow::Error::InvalidArgument { .. });
    assert_eq!(d.t_of_step(2).unwrap(), 1.0);
    // λ outside the range.
    let d = DiscreteConfig::default().build().unwrap();
    assert_err!(
        d.t_from_log_snr(d.log_snr(1.0) - 1.0),
        gaussflow::Error::InvalidArgument { .. }
    );
    assert!(matches!(
        d.t_from_log_snr(f64::NAN),
        Err(Error::NonFinite { .. })
    ));
    assert_eq!(d.t_from_log_snr(f64::INFINITY).unwrap(), 0.0);
}
