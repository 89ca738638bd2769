//! Weighting identities (docs/DESIGN.md §7, with its errata), each checked against an
//! independent derivation or a library's own formula.

use gaussflow::reference;
use gaussflow::schedule::{Flow, Ve, VpCosine, VpLinear};
use gaussflow::weighting::{
    Objective, TimeDistribution, Weighting, k_pred, noise_coeffs, normal_cdf, normal_quantile,
};
use gaussflow::{Error, Prediction, Schedule};

struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }
}

fn schedules() -> Vec<Box<dyn Schedule>> {
    vec![
        Box::new(Flow),
        Box::new(VpCosine),
        Box::new(VpLinear::default()),
        Box::new(Ve::default()),
    ]
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
}

/// `‖p̂ − p‖² = k_p ‖x̂ − x‖²`, measured: random `x`, `ε`, a random wrong
/// `x̂` at the same state (so `ε̂ = (z − α x̂)/σ`), the predictions from the
/// reference; and `k_p` against the closed forms of docs/DESIGN.md §7:
/// `k_v = σ²(e^λ+1)²` (not the seed post's `σ²(e^{−λ}+1)²`),
/// `k_ε = e^λ`, `k_u = (σ′e^{λ/2} − α′)²`.
#[test]
fn prediction_error_factors() {
    let mut rng = Rng(11);
    let d = 64;
    for sch in schedules() {
        for &t in &[0.05, 0.2, 0.5, 0.8, 0.95] {
            let at = sch.at(t).unwrap();
            let lam = sch.log_snr(t);
            let x: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
            let eps: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
            let xh: Vec<f64> = x.iter().map(|v| v + 0.3 * rng.normal()).collect();
            let z: Vec<f64> = (0..d)
                .map(|i| at.alpha * x[i] + at.sigma * eps[i])
                .collect();
            let eh: Vec<f64> = (0..d)
                .map(|i| (z[i] - at.alpha * xh[i]) / at.sigma)
                .collect();
            let dx2: f64 = x.iter().zip(&xh).map(|(a, b)| (a - b).powi(2)).sum();
            for p in Prediction::ALL {
                let truth = reference::prediction_of(&*sch, p, t, &x, &eps).unwrap();
                let est = reference::prediction_of(&*sch, p, t, &xh, &eh).unwrap();
                let dp2: f64 = truth.iter().zip(&est).map(|(a, b)| (a - b).powi(2)).sum();
                let k = k_pred(p, &at);
                assert!(
                    rel(dp2 / dx2, k) < 1e-9,
                    "{} t={t} {p}: measured {} vs k {k}",
                    sch.name(),
                    dp2 / dx2
                );
                let closed = match p {
                    Prediction::X => 1.0,
                    Prediction::Eps => lam.exp(),
                    Prediction::V => at.sigma.powi(2) * (lam.exp() + 1.0).powi(2),
                    Prediction::Velocity | Prediction::FlowVelocity => {
                        (at.d_sigma * (0.5 * lam).exp() - at.d_alpha).powi(2)
                    }
                    Prediction::Score => lam.exp() / at.sigma.powi(2),
                    // dF/dx̂ = √(α² + σ²)/σ at fixed z.
                    Prediction::EdmF => lam.exp() + 1.0,
                };
                assert!(
                    rel(k, closed) < 1e-12,
                    "{} t={t} {p}: {k} vs {closed}",
                    sch.name()
                );
                if p == Prediction::V {
                    // The seed post's version is wrong except at λ = 0.
                    let wrong = at.sigma.powi(2) * ((-lam).exp() + 1.0).powi(2);
                    assert!(lam.abs() < 1e-3 || rel(k, wrong) > 1e-3);
                }
            }
            if sch.name() == "flow" {
                let ku = k_pred(Prediction::FlowVelocity, &at);
                assert!(rel(ku, (1.0 + (0.5 * lam).exp()).powi(2)) < 1e-12);
            }
        }
    }
}

/// Flow matching (flow schedule, flow-velocity MSE, uniform t) is v-MSE
/// under the cosine schedule (uniform t) up to a constant: the effective
/// `w(λ)` ratio is constant over `λ ∈ [−10, 10]`. By hand: `e^{−λ/2}/2` and
/// `e^{−λ/2}/π`, ratio `π/2`.
#[test]
fn flow_matching_is_cosine_v_mse_up_to_a_constant() {
    let fm = Objective::new(
        Prediction::FlowVelocity,
        Weighting::Simple(Prediction::FlowVelocity),
        TimeDistribution::Uniform,
    )
    .unwrap();
    let vc = Objective::new(
        Prediction::V,
        Weighting::Simple(Prediction::V),
        TimeDistribution::Uniform,
    )
    .unwrap();
    let c = std::f64::consts::FRAC_PI_2;
    for i in 0..=200 {
        let lam = -10.0 + 0.1 * i as f64;
        let a = fm.effective_weight_at_log_snr(&Flow, lam).unwrap();
        let b = vc.effective_weight_at_log_snr(&VpCosine, lam).unwrap();
        assert!(rel(a / b, c) < 1e-9, "λ = {lam}: ratio {} vs π/2", a / b);
        assert!(
            rel(a, (-0.5 * lam).exp() / 2.0) < 1e-9,
            "λ = {lam}: flow w {a}"
        );
    }
    // And a pairing that is *not* equivalent: ε-MSE under the cosine schedule.
    let ec = Objective::new(
        Prediction::Eps,
        Weighting::Simple(Prediction::Eps),
        TimeDistribution::Uniform,
    )
    .unwrap();
    let r0 = fm.effective_weight_at_log_snr(&Flow, -5.0).unwrap()
        / ec.effective_weight_at_log_snr(&VpCosine, -5.0).unwrap();
    let r1 = fm.effective_weight_at_log_snr(&Flow, 5.0).unwrap()
        / ec.effective_weight_at_log_snr(&VpCosine, 5.0).unwrap();
    assert!(rel(r0, r1) > 0.5);
}

/// Min-SNR-γ against diffusers' training scripts on VP schedules:
/// `min(snr, γ)/snr` on the ε-MSE, `min(snr, γ)/(snr + 1)` on the v-MSE,
/// `min(snr, γ)` on the x-MSE, with `snr = α²/σ²`.
#[test]
fn min_snr_matches_diffusers() {
    let gamma = 5.0;
    let vp: [Box<dyn Schedule>; 2] = [Box::new(VpCosine), Box::new(VpLinear::default())];
    for sch in vp {
        for i in 1..100 {
            let t = i as f64 / 100.0;
            let (a, s) = (sch.alpha(t), sch.sigma(t));
            let snr = a * a / (s * s);
            for (p, want) in [
                (Prediction::Eps, snr.min(gamma) / snr),
                (Prediction::V, snr.min(gamma) / (snr + 1.0)),
                (Prediction::X, snr.min(gamma)),
            ] {
                let o = Objective::new(p, Weighting::MinSnr { gamma }, TimeDistribution::Uniform)
                    .unwrap();
                let got = o.loss_weight(&*sch, t).unwrap();
                assert!(
                    rel(got, want) < 1e-12,
                    "{} t={t} {p}: {got} vs {want}",
                    sch.name()
                );
            }
        }
    }
}

/// SD3's `compute_loss_weighting_for_sd3` on the flow schedule, applied to
/// the MSE of its target `ε − x` (our velocity): `sigma_sqrt` is `σ⁻²`,
/// `cosmap` is `2/(π(1 − 2σ + 2σ²))`.
#[test]
fn sd3_weightings_match_diffusers() {
    for i in 1..100 {
        let t = i as f64 / 100.0;
        let sigma = t;
        let ss = Objective::new(
            Prediction::Velocity,
            Weighting::SigmaSqrt,
            TimeDistribution::Uniform,
        )
        .unwrap();
        let cm = Objective::new(
            Prediction::Velocity,
            Weighting::Cosmap,
            TimeDistribution::Uniform,
        )
        .unwrap();
        let want_ss = sigma.powf(-2.0);
        let want_cm = 2.0 / (std::f64::consts::PI * (1.0 - 2.0 * sigma + 2.0 * sigma * sigma));
        assert!(
            rel(ss.loss_weight(&Flow, t).unwrap(), want_ss) < 1e-12,
            "t={t}"
        );
        assert!(
            rel(cm.loss_weight(&Flow, t).unwrap(), want_cm) < 1e-12,
            "t={t}"
        );
    }
}

/// EDM's loss weight `λ(σ) = (σ² + σ_d²)/(σ σ_d)²` on the denoiser's x-MSE
/// (VE, `α = 1`, so EDM's σ is ours).
#[test]
fn edm_weight_matches_karras() {
    let sd = 0.5;
    let o = Objective::new(
        Prediction::X,
        Weighting::Edm { sigma_data: sd },
        TimeDistribution::edm_default(),
    )
    .unwrap();
    let ve = Ve::default();
    for i in 0..=20 {
        let t = i as f64 / 20.0;
        let s = ve.sigma(t);
        let want = (s * s + sd * sd) / (s * sd).powi(2);
        assert!(rel(o.loss_weight(&ve, t).unwrap(), want) < 1e-12);
    }
}

/// Weightings defined in Kingma & Gao's form come back out of the effective
/// weight unchanged, whatever the time distribution importance-weights them
/// with: ELBO `w = 1`, sigmoid `w = sigmoid(b − λ)`.
#[test]
fn kingma_gao_weightings_round_trip() {
    let dists = [
        TimeDistribution::Uniform,
        TimeDistribution::logit_normal(0.3, 1.1).unwrap(),
        TimeDistribution::edm_default(),
    ];
    for sch in schedules() {
        for d in dists {
            for (w, f) in [
                (
                    Weighting::Elbo,
                    Box::new(|_l: f64| 1.0) as Box<dyn Fn(f64) -> f64>,
                ),
                (
                    Weighting::Sigmoid { bias: 2.0 },
                    Box::new(|l: f64| 1.0 / (1.0 + (l - 2.0).exp())),
                ),
            ] {
                for p in [Prediction::Eps, Prediction::V, Prediction::X] {
                    let o = Objective::new(p, w, d).unwrap();
                    for &t in &[0.1, 0.3, 0.5, 0.7, 0.9] {
                        let lam = sch.log_snr(t);
                        let got = o.effective_weight(&*sch, t).unwrap();
                        assert!(
                            rel(got, f(lam)) < 1e-11,
                            "{} {d:?} {w:?} {p} t={t}: {got} vs {}",
                            sch.name(),
                            f(lam)
                        );
                    }
                }
            }
        }
    }
    // ELBO under uniform t in ε form: weight −dλ/dt on the ε-MSE.
    let o = Objective::new(Prediction::Eps, Weighting::Elbo, TimeDistribution::Uniform).unwrap();
    assert!(
        rel(
            o.loss_weight(&VpCosine, 0.4).unwrap(),
            -VpCosine.d_log_snr(0.4)
        ) < 1e-12
    );
}

/// The expected loss is the same in both forms:
/// `E_{t~p}[w_b ‖p̂ − p‖²] = ∫ w(λ_t)(−dλ/dt) ‖ε̂ − ε‖² dt`, for an error
/// model `‖x̂ − x‖² = h(t)` (quadrature on both sides).
#[test]
fn expected_loss_is_the_same_in_both_forms() {
    let h = |t: f64| 0.2 + t * t;
    let sch = VpLinear::default();
    for (p, w, d) in [
        (
            Prediction::Eps,
            Weighting::MinSnr { gamma: 5.0 },
            TimeDistribution::logit_normal(0.0, 1.0).unwrap(),
        ),
        (
            Prediction::V,
            Weighting::Simple(Prediction::Eps),
            TimeDistribution::Uniform,
        ),
        (
            Prediction::X,
            Weighting::Edm { sigma_data: 0.5 },
            TimeDistribution::edm_default(),
        ),
    ] {
        let o = Objective::new(p, w, d).unwrap();
        let n = 20000;
        let (mut lhs, mut rhs) = (0.0, 0.0);
        // Midpoint rule on (0.01, 0.99), where every integrand is smooth.
        for i in 0..n {
            let t = 0.01 + 0.98 * (i as f64 + 0.5) / n as f64;
            let at = sch.at(t).unwrap();
            let dt = 0.98 / n as f64;
            lhs += d.pdf(&sch, t).unwrap()
                * o.loss_weight(&sch, t).unwrap()
                * k_pred(p, &at)
                * h(t)
                * dt;
            rhs += o.effective_weight(&sch, t).unwrap()
                * (-sch.d_log_snr(t))
                * sch.log_snr(t).exp()
                * h(t)
                * dt;
        }
        assert!(rel(lhs, rhs) < 1e-10, "{p} {w:?}: {lhs} vs {rhs}");
    }
}

/// Time distributions: inverse-CDF sampling inverts the CDF, the density is
/// its derivative and integrates to 1; SD3's logit-normal convention flips
/// the mean; EDM's is log-normal in `ρ = σ/α`.
#[test]
fn time_distributions() {
    let dists = [
        TimeDistribution::Uniform,
        TimeDistribution::logit_normal(0.0, 1.0).unwrap(),
        TimeDistribution::logit_normal(-0.7, 0.6).unwrap(),
        TimeDistribution::edm_default(),
    ];
    for sch in schedules() {
        for d in dists {
            for i in 1..20 {
                let u = i as f64 / 20.0;
                let t = d.sample(&*sch, u).unwrap();
                let back = d.cdf(&*sch, t).unwrap();
                assert!(
                    (back - u).abs() < 1e-9,
                    "{} {d:?}: u {u} → t {t} → {back}",
                    sch.name()
                );
                // pdf = dF/dt (central difference).
                let hh = 1e-6 * t.min(1.0 - t).max(1e-3);
                if t > 2.0 * hh && t < 1.0 - 2.0 * hh {
                    let fd = (d.cdf(&*sch, t + hh).unwrap() - d.cdf(&*sch, t - hh).unwrap())
                        / (2.0 * hh);
                    let pdf = d.pdf(&*sch, t).unwrap();
                    assert!(
                        rel(pdf, fd) < 1e-5,
                        "{} {d:?} t={t}: pdf {pdf} vs {fd}",
                        sch.name()
                    );
                }
            }
        }
    }
    // SD3 draws t = 1 − sigmoid(N(m, s²)): P(T ≤ t) = 1 − Φ((logit(1 − t) − m)/s).
    let (m, s) = (0.5, 0.8);
    let d = TimeDistribution::sd3_logit_normal(m, s).unwrap();
    for i in 1..20 {
        let t = i as f64 / 20.0;
        let want = 1.0 - normal_cdf((((1.0 - t) / t).ln() - m) / s);
        assert!((d.cdf(&Flow, t).unwrap() - want).abs() < 1e-14);
    }
    // EDM on a schedule reaching ρ = 0 and ∞ (no truncation): ln ρ = P_mean + P_std Φ⁻¹(u).
    let e = TimeDistribution::edm_default();
    for &u in &[0.01, 0.3, 0.5, 0.9] {
        let t = e.sample(&VpCosine, u).unwrap();
        let ln_rho = (VpCosine.sigma(t) / VpCosine.alpha(t)).ln();
        assert!(
            (ln_rho - (-1.2 + 1.2 * normal_quantile(u))).abs() < 1e-12,
            "u = {u}"
        );
    }
    // The density integrates to 1 (VE: truncated to [σ_min, σ_max]).
    for sch in schedules() {
        for d in dists {
            let n = 200_000;
            let total: f64 = (0..n)
                .map(|i| d.pdf(&*sch, (i as f64 + 0.5) / n as f64).unwrap() / n as f64)
                .sum();
            assert!(
                (total - 1.0).abs() < 1e-6,
                "{} {d:?}: ∫p = {total}",
                sch.name()
            );
        }
    }
}

/// The kernel rows: the noising row writes `z = α x + σ ξ` and the
/// prediction's target; the loss row carries `w_b` and the same target.
#[test]
fn kernel_rows() {
    let o = Objective::new(
        Prediction::V,
        Weighting::MinSnr { gamma: 5.0 },
        TimeDistribution::Uniform,
    )
    .unwrap();
    let ts = [0.1, 0.5, 0.9];
    let nr = o.noise_coeffs_batch(&VpCosine, &ts).unwrap();
    let lr = o.loss_coeffs_batch(&VpCosine, &ts).unwrap();
    for (i, &t) in ts.iter().enumerate() {
        let (x, xi) = (0.7, -1.2);
        let (z, target) = nr[i].apply(x, xi);
        let (zr, tr) = reference::forward(&VpCosine, Prediction::V, t, &[x], &[xi]).unwrap();
        assert!((z - zr[0]).abs() < 1e-15 && (target - tr[0]).abs() < 1e-15);
        assert_eq!((lr[i].c, lr[i].d), (nr[i].c, nr[i].d));
        assert_eq!(lr[i].weight, o.loss_weight(&VpCosine, t).unwrap());
    }
    // Simple loss of the objective's own prediction: weight 1.
    let s = Objective::new(
        Prediction::Eps,
        Weighting::Simple(Prediction::Eps),
        TimeDistribution::Uniform,
    )
    .unwrap();
    assert_eq!(
        s.loss_coeffs(&VpLinear::default(), 0.3).unwrap().weight,
        1.0
    );
    // The score's target is infinite at σ = 0.
    assert!(matches!(
        noise_coeffs(&VpCosine, Prediction::Score, 0.0),
        Err(Error::NonFinite { .. })
    ));
}

#[test]
fn bad_parameters() {
    assert!(matches!(
        TimeDistribution::logit_normal(0.0, 0.0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        TimeDistribution::logit_normal(f64::NAN, 1.0),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        TimeDistribution::edm(0.0, -1.0),
        Err(Error::InvalidArgument { .. })
    ));
    for u in [0.0, 1.0, -0.5] {
        assert!(matches!(
            TimeDistribution::Uniform.sample(&Flow, u),
            Err(Error::InvalidArgument { .. })
        ));
    }
    assert!(matches!(
        TimeDistribution::Uniform.sample(&Flow, f64::NAN),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        Objective::new(
            Prediction::Eps,
            Weighting::MinSnr { gamma: 0.0 },
            TimeDistribution::Uniform
        ),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Objective::new(
            Prediction::Eps,
            Weighting::Edm {
                sigma_data: f64::INFINITY
            },
            TimeDistribution::Uniform
        ),
        Err(Error::NonFinite { .. })
    ));
    let o = Objective::new(Prediction::Eps, Weighting::Elbo, TimeDistribution::Uniform).unwrap();
    assert!(matches!(
        o.loss_weight(&VpCosine, 1.5),
        Err(Error::TimeOutOfRange { .. })
    ));
}

/// The normal CDF against CPython's `math.erfc` (an independent
/// implementation: `0.5 * math.erfc(-x / math.sqrt(2))`, printed with
/// `repr`), across the body and both tails down to f64's subnormal edge.
/// gaussflow has its own `erfc` (no math library in the core).
#[test]
fn normal_cdf_matches_cpython_erfc() {
    const CPYTHON: [(f64, f64); 15] = [
        (-37.5, 4.605353009582584e-308),
        (-20.0, 2.7536241186063314e-89),
        (-8.0, 6.220960574271819e-16),
        (-5.0, 2.866515718791946e-07),
        (-2.5, 0.006209665325776139),
        (-1.7, 0.044565462758543076),
        (-1.0, 0.15865525393145707),
        (-0.5, 0.3085375387259869),
        (-0.1, 0.460172162722971),
        (0.0, 0.5),
        (0.3, 0.6179114221889526),
        (1.0, 0.8413447460685429),
        (1.7, 0.955434537241457),
        (2.5, 0.9937903346742238),
        (5.0, 0.9999997133484281),
    ];
    for (x, want) in CPYTHON {
        let got = normal_cdf(x);
        let rel = ((got - want) / want).abs();
        assert!(
            rel <= 4e-15,
            "Φ({x}) = {got:e}, CPython {want:e}, rel {rel:e}"
        );
    }
    assert!(normal_cdf(f64::NAN).is_nan());
    assert_eq!(normal_cdf(f64::NEG_INFINITY), 0.0);
    assert_eq!(normal_cdf(f64::INFINITY), 1.0);
}
