//! The Gaussian mixture model (`gaussflow::lab::models`) against independent
//! facts: its denoiser and density by numerical quadrature over the data,
//! its score, Jacobian and divergence by finite differences and by the
//! SDE form `∇·v = d f − ½ g² Δ log p`, its sampler by moments, its driver
//! adapter against the f64 host run of the same plan on every engine, and
//! its bad inputs.

use crate::common;

use gaussflow::lab::models::{
    GaussianMixture, MixtureModel, initial_state, sliced_wasserstein, slicing_directions,
};
use gaussflow::sampler::{Ddim, DdimOptions, DpmSolverPP2M, DpmppOptions, Guided, Sampler, Steps};
use gaussflow::schedule::{Flow, Ve, VpCosine, VpLinear};
use gaussflow::{DType, Error, Prediction, Schedule, ScheduleAt};

fn mix1d() -> GaussianMixture {
    GaussianMixture::new(
        1,
        &[0.2, 0.5, 0.3],
        &[vec![-1.5], vec![0.3], vec![2.0]],
        &[0.4, 0.25, 0.6],
    )
    .unwrap()
}

fn normal_pdf(x: f64, m: f64, s: f64) -> f64 {
    (-(x - m).powi(2) / (2.0 * s * s)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt())
}

/// `(p_t(z), E[x | z])` by the trapezoid rule over `x` on a fine grid:
/// `p_t(z) = ∫ p(x) N(z; αx, σ²) dx`, no use of the closed forms.
fn quadrature_1d(mix: &GaussianMixture, at: &ScheduleAt, z: f64) -> (f64, f64) {
    let (lo, hi, n) = (-6.0, 7.0, 200_000);
    let h = (hi - lo) / n as f64;
    let (mut p, mut px) = (0.0, 0.0);
    for i in 0..=n {
        let x = lo + h * i as f64;
        let prior: f64 = (0..mix.components())
            .map(|k| mix.weights()[k] * normal_pdf(x, mix.mean(k)[0], mix.stds()[k]))
            .sum();
        let w = if i == 0 || i == n { 0.5 } else { 1.0 } * h;
        let f = prior * normal_pdf(z, at.alpha * x, at.sigma) * w;
        p += f;
        px += f * x;
    }
    (p, px / p)
}

#[test]
fn denoiser_and_density_match_quadrature() {
    let mix = mix1d();
    for sch in [&VpCosine as &dyn Schedule, &Flow, &Ve::default()] {
        for &t in &[0.05, 0.3, 0.6, 0.9] {
            let at = sch.at(t).unwrap();
            for &z in &[-2.0, -0.4, 0.1, 1.7, 3.0] {
                let (p, xq) = quadrature_1d(&mix, &at, z);
                let e = mix.evaluate(&at, &[z]).unwrap();
                assert!(
                    (e.log_density - p.ln()).abs() < 1e-8,
                    "{} t={t} z={z}: log p {} vs quadrature {}",
                    sch.name(),
                    e.log_density,
                    p.ln()
                );
                assert!(
                    (e.x_hat[0] - xq).abs() < 1e-7 * (1.0 + xq.abs()),
                    "{} t={t} z={z}: x̂ {} vs quadrature {xq}",
                    sch.name(),
                    e.x_hat[0]
                );
                // ε̂ from its own closed form satisfies α x̂ + σ ε̂ = z.
                let back = at.alpha * e.x_hat[0] + at.sigma * e.eps_hat[0];
                assert!((back - z).abs() < 1e-12 * (1.0 + z.abs()));
                let r: f64 = e.responsibilities.iter().sum();
                assert!((r - 1.0).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn two_dimensional_density_is_the_product_form() {
    // A 2-D isotropic mixture's density at a point by 2-D quadrature.
    let mix = GaussianMixture::three_modes_2d();
    let at = VpCosine.at(0.4).unwrap();
    let z = [0.3, -0.2];
    let (lo, hi, n) = (-5.0, 5.0, 1000);
    let h = (hi - lo) / n as f64;
    let mut p = 0.0;
    for i in 0..=n {
        for j in 0..=n {
            let (x, y) = (lo + h * i as f64, lo + h * j as f64);
            let prior: f64 = (0..3)
                .map(|k| {
                    let s = mix.stds()[k];
                    mix.weights()[k]
                        * normal_pdf(x, mix.mean(k)[0], s)
                        * normal_pdf(y, mix.mean(k)[1], s)
                })
                .sum();
            let lik =
                normal_pdf(z[0], at.alpha * x, at.sigma) * normal_pdf(z[1], at.alpha * y, at.sigma);
            let w = (if i == 0 || i == n { 0.5 } else { 1.0 })
                * (if j == 0 || j == n { 0.5 } else { 1.0 });
            p += prior * lik * w * h * h;
        }
    }
    let got = mix.log_density(&at, &z).unwrap();
    assert!((got - p.ln()).abs() < 1e-6, "{got} vs {}", p.ln());
}

#[test]
fn predictions_are_the_parameterization_table() {
    let mix = GaussianMixture::three_modes_2d();
    let sch = VpLinear::default();
    let z = [0.7, -1.1];
    for &t in &[0.1, 0.5, 0.95] {
        let at = sch.at(t).unwrap();
        let (x, e) = mix.x_eps(&at, &z).unwrap();
        for p in Prediction::ALL {
            let got = mix.predict(p, &at, &z).unwrap();
            for j in 0..2 {
                let want = p.from_x_eps(&at, x[j], e[j]);
                assert!((got[j] - want).abs() < 1e-12 * (1.0 + want.abs()));
                // and converting back recovers x̂
                let xb = p.to_x_eps(&at, z[j], got[j]).unwrap().0;
                assert!((xb - x[j]).abs() < 1e-9 * (1.0 + x[j].abs()), "{p} t={t}");
            }
        }
        // Batch with per-sample times equals one-by-one evaluation.
        let zs = [0.7, -1.1, 2.0, 0.4, -3.0, 1.0];
        let ts = [t, 0.3, 0.8];
        let b = mix.predict_batch(&sch, Prediction::V, &ts, &zs).unwrap();
        for i in 0..3 {
            let one = mix
                .predict(
                    Prediction::V,
                    &sch.at(ts[i]).unwrap(),
                    &zs[2 * i..2 * i + 2],
                )
                .unwrap();
            assert_eq!(&b[2 * i..2 * i + 2], &one[..]);
        }
    }
}

fn fd_grad(f: impl Fn(&[f64]) -> f64, z: &[f64], h: f64) -> Vec<f64> {
    (0..z.len())
        .map(|j| {
            let mut p = z.to_vec();
            let mut m = z.to_vec();
            p[j] += h;
            m[j] -= h;
            (f(&p) - f(&m)) / (2.0 * h)
        })
        .collect()
}

#[test]
fn score_jacobian_and_divergence_by_finite_differences() {
    let mix = GaussianMixture::three_modes_2d();
    let schedules: [&dyn Schedule; 4] = [&VpCosine, &Flow, &VpLinear::default(), &Ve::default()];
    for sch in schedules {
        for &t in &[0.05, 0.35, 0.7, 0.97] {
            let at = sch.at(t).unwrap();
            for z in [[0.2, 0.1], [-1.7, -0.8], [1.5, 2.0]] {
                let z: Vec<f64> = z.iter().map(|v| v * (at.alpha + at.sigma)).collect();
                let h = 1e-5 * (at.alpha + at.sigma);
                let score = mix.score(&at, &z).unwrap();
                let g = fd_grad(|y| mix.log_density(&at, y).unwrap(), &z, h);
                for j in 0..2 {
                    assert!(
                        (score[j] - g[j]).abs() < 1e-5 * (1.0 + g[j].abs()),
                        "{} t={t}: score {score:?} vs {g:?}",
                        sch.name()
                    );
                }
                let jac = mix.velocity_jacobian(&at, &z).unwrap();
                for i in 0..2 {
                    let gi = fd_grad(|y| mix.velocity(&at, y).unwrap()[i], &z, h);
                    for j in 0..2 {
                        assert!(
                            (jac[2 * i + j] - gi[j]).abs() < 1e-5 * (1.0 + gi[j].abs()),
                            "{} t={t}: J[{i}][{j}] {} vs {}",
                            sch.name(),
                            jac[2 * i + j],
                            gi[j]
                        );
                    }
                }
                let div = mix.velocity_divergence(&at, &z).unwrap();
                assert!((div - (jac[0] + jac[3])).abs() < 1e-10 * (1.0 + div.abs()));
                // The SDE form: ∇·v = d f − ½ g² Δ log p, Laplacian by
                // finite differences of the score (closed form checked above).
                let lap: f64 = (0..2)
                    .map(|j| fd_grad(|y| mix.score(&at, y).unwrap()[j], &z, h)[j])
                    .sum();
                let sde = 2.0 * at.f() - 0.5 * at.g2() * lap;
                assert!(
                    (div - sde).abs() < 1e-5 * (1.0 + div.abs()),
                    "{} t={t}: div {div} vs d f − ½ g² Δlog p = {sde}",
                    sch.name()
                );
                // The velocity is the probability-flow drift f z − ½ g² ∇log p.
                let v = mix.velocity(&at, &z).unwrap();
                for j in 0..2 {
                    let drift = at.f() * z[j] - 0.5 * at.g2() * score[j];
                    assert!((v[j] - drift).abs() < 1e-9 * (1.0 + drift.abs()));
                    assert_eq!(mix.flow_velocity(&at, &z).unwrap()[j], -v[j]);
                }
            }
        }
    }
}

#[test]
fn pure_noise_end_gives_the_data_mean() {
    // VP cosine at t = 1: α = 0, so x̂ is the data mean and ε̂ = z; the
    // divergence is finite although f = α′/α is not.
    let mix = GaussianMixture::three_modes_2d();
    let at = VpCosine.at(1.0).unwrap();
    let z = [0.4, -2.0];
    let (x, e) = mix.x_eps(&at, &z).unwrap();
    let m = mix.data_mean();
    for j in 0..2 {
        assert!((x[j] - m[j]).abs() < 1e-12);
        assert!((e[j] - z[j]).abs() < 1e-12);
    }
    assert!(mix.velocity_divergence(&at, &z).unwrap().is_finite());
    // Score at σ = 0 has no finite coefficient.
    let at0 = VpCosine.at(0.0).unwrap();
    assert!(matches!(
        mix.predict(Prediction::Score, &at0, &z),
        Err(Error::NotInvertible { .. })
    ));
    // but x̂ at σ = 0 is x itself.
    let (x0, _) = mix.x_eps(&at0, &z).unwrap();
    assert!((x0[0] - z[0]).abs() < 1e-12 && (x0[1] - z[1]).abs() < 1e-12);
}

#[test]
fn samples_have_the_mixture_moments() {
    let mix = GaussianMixture::three_modes_2d();
    let n = 100_000;
    let (x, comps) = mix.sample_with_components(42, 0, n).unwrap();
    let nf = n as f64;
    for k in 0..3 {
        let frac = comps.iter().filter(|&&c| c == k).count() as f64 / nf;
        let se = (mix.weights()[k] * (1.0 - mix.weights()[k]) / nf).sqrt();
        assert!(
            (frac - mix.weights()[k]).abs() < 4.0 * se,
            "weight {k}: {frac}"
        );
    }
    let (m, v) = (mix.data_mean(), mix.data_variance());
    for j in 0..2 {
        let mean = x.iter().skip(j).step_by(2).sum::<f64>() / nf;
        let var = x
            .iter()
            .skip(j)
            .step_by(2)
            .map(|a| (a - mean).powi(2))
            .sum::<f64>()
            / (nf - 1.0);
        assert!(
            (mean - m[j]).abs() < 4.0 * (v[j] / nf).sqrt(),
            "mean {j}: {mean} vs {}",
            m[j]
        );
        // Var of the sample variance ≈ (μ₄ − σ⁴)/n; bound μ₄ by a generous 5σ⁴.
        assert!(
            (var - v[j]).abs() < 4.0 * (4.0 * v[j] * v[j] / nf).sqrt(),
            "var {j}: {var} vs {}",
            v[j]
        );
    }
    // Sample ids: the first 10 of 1000 are the 10 drawn alone, and an
    // offset block is the same samples.
    let few = mix.sample(42, 10).unwrap();
    assert_eq!(&x[..20], &few[..]);
    let (mid, _) = mix.sample_with_components(42, 500, 3).unwrap();
    assert_eq!(&x[1000..1006], &mid[..]);
    // Every sample is classified to the component that drew it (modes are
    // ≥ 6.8 stds apart).
    let stats = mix.mode_stats(&x).unwrap();
    for k in 0..3 {
        assert_eq!(stats.counts[k], comps.iter().filter(|&&c| c == k).count());
    }
    assert!(stats.weight_error(&mix) < 0.01 && stats.mean_error(&mix) < 0.05);
}

#[test]
fn sliced_wasserstein_known_values() {
    let mix = GaussianMixture::three_modes_2d();
    let a = mix.sample(1, 4096).unwrap();
    let dirs = slicing_directions(2, 64);
    assert_eq!(sliced_wasserstein(&a, &a, 2, &dirs).unwrap(), 0.0);
    assert_eq!(
        mix.mode_balanced_sliced_wasserstein(&a, &a, &dirs).unwrap(),
        0.0
    );
    // A translation by δ: every 1-D W2 is |θ·δ|, and the mean of cos² over
    // evenly spaced half-circle directions is ½, so SW = |δ|/√2 — for both
    // forms (the translate keeps every mode's count).
    let delta = [0.03, -0.04];
    let b: Vec<f64> = a
        .iter()
        .enumerate()
        .map(|(i, v)| v + delta[i % 2])
        .collect();
    let want = 0.05 / 2f64.sqrt();
    let sw = sliced_wasserstein(&a, &b, 2, &dirs).unwrap();
    assert!((sw - want).abs() < 1e-12, "{sw} vs {want}");
    let bsw = mix.mode_balanced_sliced_wasserstein(&a, &b, &dirs).unwrap();
    assert!((bsw - want).abs() < 1e-9, "{bsw} vs {want}");
    // Directions in other dimensions are unit vectors.
    for d in slicing_directions(5, 8) {
        assert!((d.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-12);
    }
    assert_err!(
        sliced_wasserstein(&a, &a[..10], 2, &dirs),
        gaussflow::Error::Length { .. }
    );
    assert_err!(
        sliced_wasserstein(&a, &a, 2, &[]),
        gaussflow::Error::InvalidArgument { .. }
    );
}

#[test]
fn mode_balancing_removes_the_weight_noise() {
    // Two exact sets with different mode counts: the balanced distance is
    // the within-mode part only, so it is smaller than the plain one, and
    // a set whose smallest mode is shifted by 0.1 s is clearly farther.
    let mix = GaussianMixture::three_modes_2d();
    let dirs = slicing_directions(2, 64);
    let a = mix.sample(7, 16384).unwrap();
    let b = mix.sample(8, 16384).unwrap();
    let plain = sliced_wasserstein(&a, &b, 2, &dirs).unwrap();
    let bal = mix.mode_balanced_sliced_wasserstein(&a, &b, &dirs).unwrap();
    assert!(bal < plain, "balanced {bal} vs plain {plain}");
    let (c, comps) = mix.sample_with_components(8, 0, 16384).unwrap();
    let shifted: Vec<f64> = c
        .chunks(2)
        .zip(&comps)
        .flat_map(|(x, &k)| {
            let s = if k == 2 { 0.1 * mix.stds()[2] } else { 0.0 };
            [x[0] + s, x[1]]
        })
        .collect();
    let far = mix
        .mode_balanced_sliced_wasserstein(&a, &shifted, &dirs)
        .unwrap();
    assert!(far > 1.2 * bal, "shifted {far} vs {bal}");
}

#[test]
fn bad_inputs_are_errors() {
    let m = vec![vec![0.0, 0.0]];
    assert_err!(
        GaussianMixture::new(0, &[1.0], &[vec![]], &[1.0]),
        gaussflow::Error::InvalidArgument { .. }
    );
    assert_err!(
        GaussianMixture::new(2, &[], &[], &[]),
        gaussflow::Error::InvalidArgument { .. }
    );
    assert_err!(
        GaussianMixture::new(2, &[0.0], &m, &[1.0]),
        gaussflow::Error::InvalidArgument { .. }
    );
    assert_err!(
        GaussianMixture::new(2, &[-1.0], &m, &[1.0]),
        gaussflow::Error::InvalidArgument { .. }
    );
    assert_err!(
        GaussianMixture::new(2, &[f64::NAN], &m, &[1.0]),
        gaussflow::Error::NonFinite { .. }
    );
    assert_err!(
        GaussianMixture::new(2, &[1.0], &m, &[0.0]),
        gaussflow::Error::InvalidArgument { .. }
    );
    assert_err!(
        GaussianMixture::new(2, &[1.0], &m, &[f64::INFINITY]),
        gaussflow::Error::NonFinite { .. }
    );
    assert!(matches!(
        GaussianMixture::new(2, &[1.0, 1.0], &m, &[1.0, 1.0]),
        Err(Error::Length { .. })
    ));
    assert!(matches!(
        GaussianMixture::new(3, &[1.0], &m, &[1.0]),
        Err(Error::Length { .. })
    ));
    assert_err!(
        GaussianMixture::new(2, &[1.0], &[vec![0.0, f64::NAN]], &[1.0]),
        gaussflow::Error::NonFinite { .. }
    );
    let mix = GaussianMixture::three_modes_2d();
    let at = VpCosine.at(0.5).unwrap();
    assert!(matches!(mix.x_eps(&at, &[1.0]), Err(Error::Length { .. })));
    assert_err!(
        mix.predict_batch(&VpCosine, Prediction::X, &[0.5], &[1.0, 2.0, 3.0]),
        gaussflow::Error::InvalidArgument { .. }
    );
    assert!(matches!(
        mix.predict_batch(
            &VpCosine,
            Prediction::X,
            &[0.5, 0.5, 0.5],
            &[1.0, 2.0, 3.0, 4.0]
        ),
        Err(Error::Length { .. })
    ));
    assert!(matches!(
        mix.predict_batch(&VpCosine, Prediction::X, &[1.5], &[1.0, 2.0]),
        Err(Error::TimeOutOfRange { .. })
    ));
    assert_err!(
        mix.sample_with_components(1, u32::MAX, 2),
        gaussflow::Error::InvalidArgument { .. }
    );
    assert_err!(
        mix.mode_stats(&[1.0, f64::NAN]),
        gaussflow::Error::NonFinite { .. }
    );
    assert_err!(
        mix.mode_stats(&[]),
        gaussflow::Error::InvalidArgument { .. }
    );
}

/// The driver adapter on every engine: the engine run of a plan equals the
/// f64 host run of the same plan (same Philox noise) to f32 rounding, with
/// guidance (two mixtures) and with history (DPM-Solver++).
#[test]
fn engine_run_matches_the_host_run() {
    let mix = GaussianMixture::three_modes_2d();
    let other = GaussianMixture::gaussian(&[0.5, 0.5], 1.0).unwrap();
    let sch = VpCosine;
    let steps = Steps::from_grid(&gaussflow::grid::uniform_t(30, 0.99, 0.0).unwrap().t).unwrap();
    let samplers: Vec<Box<dyn Sampler>> = vec![
        Box::new(
            Ddim::new(
                sch,
                Prediction::Eps,
                steps.clone(),
                DdimOptions::with_eta(0.7),
            )
            .unwrap(),
        ),
        Box::new(DpmSolverPP2M::new(
            sch,
            Prediction::V,
            steps.clone(),
            DpmppOptions::default(),
        )),
        Box::new(
            Guided::new(
                Ddim::new(sch, Prediction::X, steps.clone(), DdimOptions::ddpm()).unwrap(),
                3.0,
            )
            .unwrap(),
        ),
    ];
    for engine in common::engines().iter() {
        for s in &samplers {
            let plan = gaussflow::sampler::Plan::new(&**s).unwrap();
            let z = initial_state(engine, &mix, &sch, 0.99, 257, 9, DType::F32).unwrap();
            let z0 = engine.download(&z.view()).unwrap().to_f64_vec();
            let model = MixtureModel::new(&mix, &sch, s.prediction()).with_uncond(&other);
            let got = model.run(engine, plan.clone(), &z, 9).unwrap();
            let host = mix
                .run_plan_host(&sch, &plan, &z0, 9, Some(&other))
                .unwrap();
            let want = host.last().unwrap();
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let err = got
                .iter()
                .zip(want)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            eprintln!(
                "{} on {}: max |engine − host| = {err:e} (scale {scale})",
                s.name(),
                engine.describe()
            );
            // 30 stages of f32 rounding (state, output, rows) on a
            // contracting map: a few 2⁻²⁴ per stage, relative to the scale.
            assert!(
                err <= 30.0 * 8.0 * 6e-8 * scale.max(1.0),
                "{}: {err}",
                s.name()
            );
        }
    }
}

#[test]
fn driver_adapter_errors() {
    let engine = &common::cpu();
    let mix = GaussianMixture::three_modes_2d();
    let steps = Steps::from_grid(&[0.9, 0.5, 0.0]).unwrap();
    // Guided run without an unconditional mixture.
    let guided = Guided::new(
        Ddim::new(VpCosine, Prediction::X, steps.clone(), DdimOptions::ddim()).unwrap(),
        2.0,
    )
    .unwrap();
    let z = initial_state(engine, &mix, &VpCosine, 0.9, 4, 1, DType::F32).unwrap();
    let r = MixtureModel::new(&mix, &VpCosine, Prediction::X).run(
        engine,
        gaussflow::sampler::Plan::new(&guided).unwrap(),
        &z,
        1,
    );
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    // A state of the wrong width.
    let one = GaussianMixture::gaussian(&[0.0, 0.0, 0.0], 1.0).unwrap();
    let plain = Ddim::new(VpCosine, Prediction::X, steps, DdimOptions::ddim()).unwrap();
    let r = MixtureModel::new(&one, &VpCosine, Prediction::X).run(
        engine,
        gaussflow::sampler::Plan::new(&plain).unwrap(),
        &z,
        1,
    );
    assert!(matches!(r, Err(Error::Shape { .. })), "{r:?}");
}
