//! The f64 reference checked against facts derived independently of it:
//! exactness of the deterministic samplers on point-mass data, marginal
//! preservation of DDIM churn, the stationary Gaussian of the reverse SDE,
//! first-order convergence of the ODE Euler steps, finite differences of the
//! loss, and the forward process.

use gaussflow::reference::{self, Clip};
use gaussflow::rng::{Domain, NoiseKey};
use gaussflow::schedule::{Flow, Ve, VpCosine, VpLinear};
use gaussflow::{Prediction, Schedule};

fn schedules() -> Vec<Box<dyn Schedule>> {
    vec![
        Box::new(Flow),
        Box::new(VpCosine),
        Box::new(VpLinear::default()),
        Box::new(Ve::default()),
    ]
}

/// For data that is a single point `x₀`, the exact model gives `x̂ = x₀` and
/// `ε̂ = (z − α x₀)/σ`, the path of each sample is `z_t = α_t x₀ + σ_t ε` with
/// a fixed `ε`, and DDIM (η = 0), Heun and DPM-Solver++ (both orders) step
/// along it exactly: `z_s = α_s x₀ + σ_s ε`. Flow Euler too, on the flow
/// schedule (straight paths).
#[test]
fn deterministic_samplers_are_exact_on_point_data() {
    let x0 = [0.8, -1.7, 0.05];
    let eps = [1.2, 0.3, -0.9];
    for sch in schedules() {
        for p in Prediction::ALL {
            let mut model = |t: f64, z: &[f64]| {
                let at = sch.at(t)?;
                let e: Vec<f64> = (0..3)
                    .map(|i| (z[i] - at.alpha * x0[i]) / at.sigma)
                    .collect();
                reference::prediction_of(&*sch, p, t, &x0, &e)
            };
            let on_path = |t: f64| -> Vec<f64> {
                (0..3)
                    .map(|i| sch.alpha(t) * x0[i] + sch.sigma(t) * eps[i])
                    .collect()
            };
            let close = |a: &[f64], b: &[f64], what: &str| {
                for i in 0..3 {
                    assert!(
                        (a[i] - b[i]).abs() < 1e-10 * (1.0 + b[i].abs()),
                        "{} {p} {what}: {a:?} vs {b:?}",
                        sch.name()
                    );
                }
            };
            let (t, s) = (0.7, 0.3);
            let z = on_path(t);
            let pt = model(t, &z).unwrap();
            let d = reference::ddim_step(&*sch, p, t, s, 0.0, None, &z, &pt, None).unwrap();
            close(&d, &on_path(s), "DDIM");
            let hp = reference::heun_predictor(&*sch, p, t, s, &z, &pt).unwrap();
            let p2 = model(s, &hp.z).unwrap();
            let h = reference::heun_corrector(&*sch, p, t, s, &hp, &p2).unwrap();
            close(&h, &on_path(s), "Heun");
            let (d1, xh) = reference::dpmpp_2m_step(&*sch, p, t, s, None, &z, &pt).unwrap();
            close(&d1, &on_path(s), "DPM++ first order");
            close(&xh, &x0, "DPM++ x̂");
            let (d2, _) =
                reference::dpmpp_2m_step(&*sch, p, t, s, Some((0.9, &x0[..])), &z, &pt).unwrap();
            close(&d2, &on_path(s), "DPM++ second order");
            // Whole loops, ending at σ = 0 (DPM++ and Heun take their
            // single-stage last step there) where the state is x₀ itself.
            let steps: Vec<(f64, f64)> = [0.95, 0.7, 0.4, 0.2, 0.05, 0.0]
                .windows(2)
                .map(|w| (w[0], w[1]))
                .collect();
            if sch.sigma(0.0) == 0.0 {
                let z0 = on_path(0.95);
                let end = on_path(0.0);
                let r = reference::heun_loop(&*sch, p, &steps, &z0, &mut model).unwrap();
                close(&r, &end, "Heun loop");
                let r = reference::dpmpp_2m_loop(&*sch, p, &steps, true, false, &z0, &mut model)
                    .unwrap();
                close(&r, &end, "DPM++ loop");
                let mut no_noise = |_k: u32| -> Vec<f64> { unreachable!("η = 0 draws no noise") };
                let r = reference::ddim_loop(
                    &*sch,
                    p,
                    &steps,
                    0.0,
                    None,
                    &z0,
                    &mut model,
                    &mut no_noise,
                )
                .unwrap();
                close(&r, &end, "DDIM loop");
            }
            if sch.name() == "flow" {
                let f = reference::flow_euler_step(&*sch, p, t, s, &z, &pt).unwrap();
                close(&f, &on_path(s), "flow Euler");
            }
        }
    }
}

/// DDIM with any churn keeps the marginal of point data: the part of
/// `z_s − α_s x₀` along the old noise and the fresh noise have squared
/// weights summing to `σ_s²` (the `σ̃ ≤ σ_s` clamp included), and the fresh
/// part is DDPM's posterior standard deviation for `η = 1`.
#[test]
fn ddim_churn_keeps_point_marginals() {
    let x0 = [0.4];
    for sch in schedules() {
        for &eta in &[0.0, 0.5, 1.0, 3.0] {
            for &(t, s) in &[(0.9, 0.5), (0.5, 0.45), (0.3, 0.01)] {
                let (at, as_) = (sch.at(t).unwrap(), sch.at(s).unwrap());
                let model = |z: f64| {
                    let e = (z - at.alpha * x0[0]) / at.sigma;
                    reference::prediction_of(&*sch, Prediction::Eps, t, &x0, &[e]).unwrap()
                };
                // Old noise ε = 1, no fresh noise; then ε = 0, fresh noise 1.
                let z1 = [at.alpha * x0[0] + at.sigma];
                let a = reference::ddim_step(
                    &*sch,
                    Prediction::Eps,
                    t,
                    s,
                    eta,
                    None,
                    &z1,
                    &model(z1[0]),
                    Some(&[0.0]),
                )
                .unwrap()[0]
                    - as_.alpha * x0[0];
                let z2 = [at.alpha * x0[0]];
                let b = reference::ddim_step(
                    &*sch,
                    Prediction::Eps,
                    t,
                    s,
                    eta,
                    None,
                    &z2,
                    &model(z2[0]),
                    Some(&[1.0]),
                )
                .unwrap()[0]
                    - as_.alpha * x0[0];
                let s2 = as_.sigma * as_.sigma;
                assert!(
                    (a * a + b * b - s2).abs() < 1e-12 * (1.0 + s2),
                    "{} η={eta} t={t} s={s}: {a}² + {b}² vs σ_s² = {s2}",
                    sch.name()
                );
                if eta == 1.0 {
                    // DDPM (Ho et al.) in α, σ: σ̃² = σ_s²/σ_t² · (1 − α_t²σ_s²/(α_s²σ_t²))·… written
                    // as the posterior variance of q(z_s | z_t, x): σ_{t|s}² σ_s²/σ_t² with
                    // σ_{t|s}² = σ_t² − (α_t/α_s)² σ_s².
                    let v = (at.sigma.powi(2) - (at.alpha / as_.alpha).powi(2) * s2) * s2
                        / at.sigma.powi(2);
                    assert!(
                        (b * b - v).abs() < 1e-12 * (1.0 + v),
                        "{} DDPM variance {} vs {v}",
                        sch.name(),
                        b * b
                    );
                }
            }
        }
    }
}

/// Gaussian data `N(0, s²)`: `p_t = N(0, v_t)`, `v_t = α_t² s² + σ_t²`, the
/// score is `−z/v_t`, and an ε-model outputs `ε̂ = σ_t z/v_t`. Every reverse
/// step is then affine in `(z, ξ)`; iterating the variance of the state
/// through the reference's steps must reach `s²` at `t → 0` as the steps
/// shrink (at least first order), for the probability-flow ODE and the reverse SDE
/// with any churn η. A wrong drift (e.g. the seed post's missing ½) would
/// converge to something else.
#[test]
fn reverse_processes_keep_gaussian_marginals() {
    let s_data: f64 = 0.6;
    let (t0, t1) = (0.98, 0.02);
    for sch in [
        Box::new(VpCosine) as Box<dyn Schedule>,
        Box::new(VpLinear::default()),
        Box::new(Ve::default()),
    ] {
        let v = |t: f64| sch.alpha(t).powi(2) * s_data * s_data + sch.sigma(t).powi(2);
        for &eta in &[0.0, 0.5, 1.0, 2.0] {
            let mut vars = vec![];
            for &n in &[250usize, 500, 1000] {
                let mut var = v(t0);
                for k in 0..n {
                    let t = t0 + (t1 - t0) * k as f64 / n as f64;
                    let s = t0 + (t1 - t0) * (k + 1) as f64 / n as f64;
                    let step = |z: f64, xi: f64| {
                        let e = sch.sigma(t) * z / v(t);
                        if eta == 0.0 {
                            reference::pf_ode_euler_step(&*sch, Prediction::Eps, t, s, &[z], &[e])
                                .unwrap()[0]
                        } else {
                            reference::euler_maruyama_step(
                                &*sch,
                                Prediction::Eps,
                                t,
                                s,
                                eta,
                                &[z],
                                &[e],
                                Some(&[xi]),
                            )
                            .unwrap()[0]
                        }
                    };
                    let a = step(1.0, 0.0);
                    let b = step(0.0, 1.0);
                    var = a * a * var + b * b;
                }
                vars.push(var);
            }
            let errs: Vec<f64> = vars.iter().map(|x| (x - v(t1)) / v(t1)).collect();
            // Convergent, at least first order: halving the step at least
            // halves the error (VE at η = 1 happens to be second order) …
            let r = errs[1] / errs[2];
            assert!(
                (1.8..4.5).contains(&r),
                "{} η={eta}: error ratio {r} ({errs:?})",
                sch.name()
            );
            // … and Richardson extrapolation with the observed rate lands on
            // the true variance, an order of magnitude closer.
            let limit = vars[2] + (vars[2] - vars[1]) / (r - 1.0);
            let extrapolated = (limit - v(t1)) / v(t1);
            assert!(
                extrapolated.abs() < errs[2].abs() / 10.0,
                "{} η={eta}: extrapolated error {extrapolated} ({errs:?})",
                sch.name()
            );
        }
    }
}

/// Langevin on the exact score of `N(0, v)`: `z ← z − δ z/v + sqrt(2δ) ξ`.
#[test]
fn langevin_on_gaussian() {
    let sch = VpCosine;
    let (t, delta, s_data) = (0.4, 0.05, 1.7);
    let v = sch.alpha(t).powi(2) * s_data * s_data + sch.sigma(t).powi(2);
    for p in [Prediction::Eps, Prediction::Score, Prediction::V] {
        let z = [0.9, -2.0];
        let at = sch.at(t).unwrap();
        let e: Vec<f64> = z.iter().map(|&z| at.sigma * z / v).collect();
        let x: Vec<f64> = z
            .iter()
            .zip(&e)
            .map(|(&z, &e)| (z - at.sigma * e) / at.alpha)
            .collect();
        let pred = reference::prediction_of(&sch, p, t, &x, &e).unwrap();
        let xi = [0.3, -0.1];
        let out = reference::langevin_step(&sch, p, t, delta, &z, &pred, &xi).unwrap();
        for i in 0..2 {
            let want = z[i] - delta * z[i] / v + (2.0 * delta).sqrt() * xi[i];
            assert!((out[i] - want).abs() < 1e-13, "{p}: {} vs {want}", out[i]);
        }
    }
}

/// Clipping clamps x̂ before the update and, if asked, re-derives ε̂.
#[test]
fn ddim_clip() {
    let sch = VpCosine;
    let (t, s) = (0.5, 0.2);
    let (at, as_) = (sch.at(t).unwrap(), sch.at(s).unwrap());
    // x-prediction of 3.0, clamped to 1.
    let z = [0.5];
    let p = [3.0];
    let eps_unclamped = (z[0] - at.alpha * 3.0) / at.sigma;
    let eps_clamped = (z[0] - at.alpha * 1.0) / at.sigma;
    let a = reference::ddim_step(
        &sch,
        Prediction::X,
        t,
        s,
        0.0,
        Some(Clip {
            range: 1.0,
            eps_from_clipped: false,
        }),
        &z,
        &p,
        None,
    )
    .unwrap();
    let b = reference::ddim_step(
        &sch,
        Prediction::X,
        t,
        s,
        0.0,
        Some(Clip {
            range: 1.0,
            eps_from_clipped: true,
        }),
        &z,
        &p,
        None,
    )
    .unwrap();
    assert!((a[0] - (as_.alpha + as_.sigma * eps_unclamped)).abs() < 1e-15);
    assert!((b[0] - (as_.alpha + as_.sigma * eps_clamped)).abs() < 1e-15);
}

/// Forward process, targets, guidance and the loss.
#[test]
fn forward_guidance_and_loss() {
    let sch = VpLinear::default();
    let t = 0.37;
    let (a, s) = (sch.alpha(t), sch.sigma(t));
    let x = [0.5, -1.0, 2.0];
    let xi = [0.1, 0.7, -0.4];
    for p in Prediction::ALL {
        let (z, target) = reference::forward(&sch, p, t, &x, &xi).unwrap();
        for i in 0..3 {
            assert!((z[i] - (a * x[i] + s * xi[i])).abs() < 1e-15);
            let want = match p {
                Prediction::X => x[i],
                Prediction::Eps => xi[i],
                Prediction::V => a * xi[i] - s * x[i],
                Prediction::Velocity => sch.d_alpha(t) * x[i] + sch.d_sigma(t) * xi[i],
                Prediction::FlowVelocity => -(sch.d_alpha(t) * x[i] + sch.d_sigma(t) * xi[i]),
                Prediction::Score => -xi[i] / s,
                Prediction::EdmF => (s * x[i] - a * xi[i]) / (a * a + s * s).sqrt(),
            };
            assert!((target[i] - want).abs() < 1e-14, "{p}");
        }
        // The target is what (x̂, ε̂) of the noised state recovers.
        let (xh, eh) = reference::x_eps(&sch, p, t, &z, &target).unwrap();
        for i in 0..3 {
            assert!(
                (xh[i] - x[i]).abs() < 1e-12 && (eh[i] - xi[i]).abs() < 1e-12,
                "{p}"
            );
        }
    }
    let (c, u) = ([1.0, 2.0], [0.5, -1.0]);
    assert_eq!(reference::guidance(1.0, &c, &u).unwrap(), c.to_vec());
    assert_eq!(reference::guidance(0.0, &c, &u).unwrap(), u.to_vec());
    assert_eq!(
        reference::guidance(3.0, &c, &u).unwrap(),
        vec![0.5 + 3.0 * 0.5, -1.0 + 3.0 * 3.0]
    );
    // Loss gradient against central differences.
    let pred = [0.3, -0.2, 1.5, 0.0];
    let target = [0.1, 0.4, 1.0, -0.3];
    let w = 2.5;
    let (l, g) = reference::weighted_loss(w, &pred, &target).unwrap();
    let direct = w * pred
        .iter()
        .zip(&target)
        .map(|(p, t)| (p - t).powi(2))
        .sum::<f64>()
        / 4.0;
    assert!((l - direct).abs() < 1e-15);
    for i in 0..4 {
        let h = 1e-6;
        let mut pp = pred;
        pp[i] += h;
        let mut pm = pred;
        pm[i] -= h;
        let fd = (reference::weighted_loss(w, &pp, &target).unwrap().0
            - reference::weighted_loss(w, &pm, &target).unwrap().0)
            / (2.0 * h);
        assert!((g[i] - fd).abs() < 1e-8, "grad[{i}] {} vs {fd}", g[i]);
    }
}

/// The reference's Philox noise is the kernel's: same key, same numbers.
#[test]
fn philox_noise_is_the_keyed_stream() {
    let key = NoiseKey::new(42, Domain::SAMPLER_STEP).with_stream(3);
    let n = reference::philox_noise(key, 9, 10);
    let mut f = [0f32; 10];
    key.fill(9, 0, &mut f).unwrap();
    assert_eq!(n, f.iter().map(|&v| v as f64).collect::<Vec<_>>());
}
