//! Brownian-tree noise (docs/DESIGN.md §6.1) on every backend present:
//! the kernels draw the canonical walk, increments over a refined grid add
//! up to the coarse increment, increments are standard normal with the
//! right correlations, and a sampler run with 20 steps and one with 40 see
//! the same Brownian path (so their samples converge path by path, which
//! independent per-step noise cannot do).

use crate::common;

use gaussflow::rng::BrownianTree;
use gaussflow::rows::{NO_CLIP, STEP_INPUTS, StepRow};
use gaussflow::sampler::{DpmSolverPP2MSde, Sampler, SolverType, Steps};
use gaussflow::sampling::{Driver, RunNoise};
use gaussflow::schedule::{Schedule, VpCosine};
use gaussflow::verify::{HostIds, HostNoise, KernelRunner};
use gaussflow::{DType, Engine, HostTensor, Prediction, SampleIds, Shape};

const SEED: u64 = 0xb40f_7a11_2026_1204;
const FIRST_ID: u32 = 3_000_000_000;

/// `out = ξ`: a row that reads nothing and adds the noise once.
fn xi_row() -> StepRow {
    StepRow {
        x_hat: [0.0; STEP_INPUTS],
        out: [0.0; STEP_INPUTS],
        out_x_hat: 0.0,
        noise: 1.0,
        clip: NO_CLIP,
        pad: 0.0,
    }
}

/// `ξ` of the interval `from → to` for `shape`, drawn by `runner` into an
/// output poisoned with NaN.
fn draw(
    runner: &dyn KernelRunner,
    tree: &BrownianTree,
    from: f64,
    to: f64,
    shape: Shape,
) -> Vec<f32> {
    let noise = HostNoise::Brownian {
        interval: tree.interval(from, to).unwrap(),
        ids: HostIds::Offset(FIRST_ID),
    };
    let mut out = HostTensor::nan(shape, DType::F32).unwrap();
    runner
        .step(
            [None; STEP_INPUTS],
            &[xi_row()],
            Some(&noise),
            &mut out,
            None,
        )
        .unwrap();
    out.to_f32_vec()
}

/// One per size: a single element, a prime under a CPU chunk, and a prime
/// past one (16384), so samples cross chunk and Philox-block boundaries.
const SHAPES: [(usize, usize); 3] = [(1, 1), (3, 1021), (2, 16411)];

#[test(engines)]
fn kernels_draw_the_canonical_walk(engine: &Engine) {
    common::on_engine(engine, |p| {
        let tree = BrownianTree::new(SEED, 20).unwrap();
        for (b, d) in SHAPES {
            let shape = Shape::new(b, d);
            for &(from, to) in &[(0.97, 0.61), (0.25, 0.5), (1.0, 0.0), (0.3, 0.3 + 1e-5)] {
                let got = draw(p.runner, &tree, from, to, shape);
                let iv = tree.interval(from, to).unwrap();
                for (i, &g) in got.iter().enumerate() {
                    let (slot, e) = (i / d, (i % d) as u64);
                    let want = iv.xi(FIRST_ID + slot as u32, e).unwrap();
                    // The CPU is the canonical walk bit for bit; another
                    // backend's normals may be 4 ulp off (docs/DESIGN.md §6)
                    // and each of the 2·20 + 3 roundings on a normal's way
                    // may differ once more: 51 ulp of |ξ| + 1 at most here.
                    let tol = if p.name == "cpu" {
                        0.0
                    } else {
                        51.0 * f32::EPSILON * (1.0 + want.abs())
                    };
                    assert!(
                        (g - want).abs() <= tol,
                        "{} [{from}, {to}] {shape:?} element {i}: got {g}, canonical {want}",
                        p.name
                    );
                }
            }
        }
    });
}

#[test(engines)]
fn increments_over_a_refined_grid_add_up_to_the_coarse_one(engine: &Engine) {
    common::on_engine(engine, |p| {
        let tree = BrownianTree::with_default_depth(SEED ^ 1);
        let shape = Shape::new(3, 1021);
        // A 5-step grid, as a sampler walks it (decreasing), and its 10-
        // and 40-step refinements: W(to) − W(from) = Σ √|Δ_k| ξ_k.
        let coarse = [0.999, 0.8, 0.55, 0.3, 0.1, 0.001];
        let mut worst = 0.0f64;
        for w in coarse.windows(2) {
            let whole = draw(p.runner, &tree, w[0], w[1], shape);
            let sqrt_whole = (w[0] - w[1]).abs().sqrt();
            for parts in [2usize, 8] {
                let mut sum = vec![0.0f64; shape.batch * shape.dim];
                let mut mag = vec![0.0f64; sum.len()];
                for k in 0..parts {
                    let a = w[0] + (w[1] - w[0]) * k as f64 / parts as f64;
                    let b = w[0] + (w[1] - w[0]) * (k + 1) as f64 / parts as f64;
                    let xi = draw(p.runner, &tree, a, b, shape);
                    let r = (a - b).abs().sqrt();
                    for (i, &x) in xi.iter().enumerate() {
                        sum[i] += r * x as f64;
                        mag[i] += (r * x as f64).abs();
                    }
                }
                for i in 0..sum.len() {
                    let coarse_incr = sqrt_whole * whole[i] as f64;
                    // Each f32 ξ is within (2·20 + 3 + 8)·u of its terms'
                    // magnitude (verify's tolerance); the terms of a sum of
                    // increments are at most a few times |increment| each.
                    let tol = 8.0
                        * 51.0
                        * (f32::EPSILON as f64 / 2.0)
                        * (mag[i] + coarse_incr.abs() + sqrt_whole);
                    let err = (sum[i] - coarse_incr).abs();
                    worst = worst.max(err / tol);
                    assert!(
                        err <= tol,
                        "{} [{}, {}] in {parts}: Σ parts {} vs whole {coarse_incr} (element {i})",
                        p.name,
                        w[0],
                        w[1],
                        sum[i]
                    );
                }
            }
        }
        println!("{}: worst refinement error {worst:.3} of its bound", p.name);
    });
}

/// Mean, variance and the share beyond ±2 of `v`; correlation of two.
fn moments(v: &[f32]) -> (f64, f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let tail = v.iter().filter(|x| x.abs() > 2.0).count() as f64 / n;
    (mean, var, tail)
}

fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (
        a.iter().map(|&x| x as f64).sum::<f64>() / n,
        b.iter().map(|&x| x as f64).sum::<f64>() / n,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa * sbb).sqrt()
}

/// N = 4 · 65536 increments per interval. Each check allows 5 standard
/// errors (a false alarm has probability 6e-7 per check; the seeds are
/// fixed, so the outcome is too): mean ±0.0098, variance ±0.0138 (a bridge
/// scale off by 1.4% — √w/2 written as √w/2.03 — already moves the variance
/// of a non-dyadic interval by more), share beyond ±2 within ±0.0020 of
/// 0.0455, correlation of disjoint intervals ±0.0098, and of an interval
/// with its first half √½ ± 0.0049 (5·(1 − ρ²)/√N).
#[test(engines)]
fn increments_are_standard_normal_with_the_brownian_correlations(engine: &Engine) {
    common::on_engine(engine, |p| {
        let tree = BrownianTree::with_default_depth(SEED ^ 2);
        let shape = Shape::new(4, 65536);
        let n = (shape.batch * shape.dim) as f64;
        let se = 1.0 / n.sqrt();
        let whole = draw_n(p.runner, &tree, 0.9, 0.6);
        let later = draw_n(p.runner, &tree, 0.6, 0.35);
        let first_half = draw_n(p.runner, &tree, 0.9, 0.75);
        for (name, v) in [
            ("[0.9, 0.6]", &whole),
            ("[0.6, 0.35]", &later),
            ("[0.9, 0.75]", &first_half),
        ] {
            let (mean, var, tail) = moments(v);
            assert!(mean.abs() <= 5.0 * se, "{} {name}: mean {mean}", p.name);
            assert!(
                (var - 1.0).abs() <= 5.0 * (2.0 / n).sqrt(),
                "{} {name}: variance {var}",
                p.name
            );
            let p2 = 0.045_500_263_896_358_41;
            assert!(
                (tail - p2).abs() <= 5.0 * (p2 * (1.0 - p2) / n).sqrt(),
                "{} {name}: share beyond ±2 {tail}",
                p.name
            );
        }
        let disjoint = correlation(&whole, &later);
        assert!(
            disjoint.abs() <= 5.0 * se,
            "{}: disjoint intervals correlate {disjoint}",
            p.name
        );
        let nested = correlation(&whole, &first_half);
        let rho = 0.5f64.sqrt();
        assert!(
            (nested - rho).abs() <= 5.0 * (1.0 - rho * rho) * se,
            "{}: an interval and its first half correlate {nested}, want {rho}",
            p.name
        );
    });

    fn draw_n(runner: &dyn KernelRunner, tree: &BrownianTree, from: f64, to: f64) -> Vec<f32> {
        draw(runner, tree, from, to, Shape::new(4, 65536))
    }
}

/// Data `N(0, c²)` per element: the exact `x̂(z, t) = α c² z / (α² c² + σ²)`.
const C: f64 = 0.5;

/// The final samples of DPM-Solver++(2M) SDE (η = 1) with `steps` steps
/// from `z` under `noise`.
fn sample(engine: &Engine, z: &HostTensor, steps: usize, noise: RunNoise<'_>) -> Vec<f32> {
    let grid: Vec<f64> = (0..=steps)
        .map(|k| 0.98 - 0.97 * k as f64 / steps as f64)
        .collect();
    let sampler = DpmSolverPP2MSde::new(
        VpCosine,
        Prediction::X,
        Steps::from_grid(&grid).unwrap(),
        1.0,
        SolverType::Midpoint,
    )
    .unwrap();
    let driver = Driver::new(engine, sampler.plan().unwrap()).unwrap();
    let z1 = engine.upload(z).unwrap();
    let out = driver
        .run_with(&z1, noise, |call| {
            let at = VpCosine.at(call.t[0])?;
            let gain =
                (at.alpha * C * C / (at.alpha * at.alpha * C * C + at.sigma * at.sigma)) as f32;
            let state = engine.download(&call.state.view())?;
            let x: Vec<f32> = state.to_f32_vec().iter().map(|&v| gain * v).collect();
            *call.output = engine.upload(&HostTensor::from_f32(state.shape(), &x, DType::F32)?)?;
            Ok(())
        })
        .unwrap();
    engine.download(&out.view()).unwrap().to_f32_vec()
}

fn rms_gap(a: &[f32], b: &[f32]) -> f64 {
    let s: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    (s / a.len() as f64).sqrt()
}

/// Strong convergence needs one path: under the tree, the gap between the
/// 20- and 40-step samples is discretisation error and shrinks when both
/// step counts double; with independent Philox noise per stage the two runs
/// draw unrelated noise and the gap stays of the order of the samples' own
/// spread (`c`), whatever the step count.
#[test(engines)]
fn runs_of_20_and_40_steps_see_the_same_brownian_path(engine: &Engine) {
    let shape = Shape::new(16, 257);
    let z: Vec<f32> = (0..shape.batch * shape.dim)
        .map(|i| {
            gaussflow::NoiseKey::new(SEED, gaussflow::Domain::PROBE)
                .normal(0, i as u64)
                .unwrap()
        })
        .collect();
    let z = HostTensor::from_f32(shape, &z, DType::F32).unwrap();
    let tree = BrownianTree::with_default_depth(SEED ^ 3);
    let ids = SampleIds::Offset(FIRST_ID);
    let brownian = |n| sample(engine, &z, n, RunNoise::Brownian { tree, ids });
    let philox = |n| sample(engine, &z, n, RunNoise::Philox { seed: SEED, ids });
    let (b20, b40, b80) = (brownian(20), brownian(40), brownian(80));
    let (p20, p40) = (philox(20), philox(40));
    let (gap_20_40, gap_40_80) = (rms_gap(&b20, &b40), rms_gap(&b40, &b80));
    let gap_philox = rms_gap(&p20, &p40);
    println!(
        "{}: rms gap 20↔40 {gap_20_40:.4}, 40↔80 {gap_40_80:.4} (tree); 20↔40 {gap_philox:.4} (Philox per stage)",
        engine.kind().name()
    );
    assert!(
        gap_philox > 0.5 * C,
        "independent noise should give unrelated samples: {gap_philox}"
    );
    assert!(
        gap_20_40 < 0.25 * gap_philox,
        "tree: 20↔40 gap {gap_20_40} vs Philox {gap_philox}"
    );
    assert!(
        gap_40_80 < 0.8 * gap_20_40,
        "tree: the gap does not shrink ({gap_20_40} → {gap_40_80})"
    );
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let engine = common::cpu();
    let tree = BrownianTree::new(SEED, 12).unwrap();
    // Shorter than a leaf, outside [0, 1], not finite.
    assert!(tree.interval(0.5, 0.5 + 1e-5).is_err());
    assert!(tree.interval(0.5, 1.01).is_err());
    assert!(tree.interval(f64::INFINITY, 0.5).is_err());
    // Forward noising and the loss take no Brownian source.
    let shape = Shape::new(2, 5);
    let x = HostTensor::from_f32(shape, &[0.5; 10], DType::F32).unwrap();
    let mut z = HostTensor::nan(shape, DType::F32).unwrap();
    let noise = HostNoise::Brownian {
        interval: tree.interval(0.9, 0.1).unwrap(),
        ids: HostIds::Offset(0),
    };
    let row = gaussflow::rows::NoiseRow {
        a: 1.0,
        b: 1.0,
        c: 0.0,
        d: 0.0,
    };
    let err = KernelRunner::noise(engine.as_ref(), &x, &[row], &noise, &mut z, None).unwrap_err();
    assert!(err.to_string().contains("sampler-step"), "{err}");
    // A per-sample plan whose samples step over different intervals has no
    // one interval per stage.
    let grid = |t0: f64| Steps::from_grid(&[t0, 0.5, 0.01]).unwrap();
    let a = DpmSolverPP2MSde::new(
        VpCosine,
        Prediction::X,
        grid(0.9),
        1.0,
        SolverType::Midpoint,
    )
    .unwrap();
    let b = DpmSolverPP2MSde::new(
        VpCosine,
        Prediction::X,
        grid(0.8),
        1.0,
        SolverType::Midpoint,
    )
    .unwrap();
    let plan = gaussflow::sampler::Plan::per_sample(&[&a, &b]).unwrap();
    let driver = Driver::new(&engine, plan).unwrap();
    let z1 = engine.upload(&x).unwrap();
    let err = driver
        .run_with(
            &z1,
            RunNoise::Brownian {
                tree,
                ids: SampleIds::Offset(0),
            },
            |call| {
                *call.output = engine.upload(&engine.download(&call.state.view())?)?;
                Ok(())
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("noise interval"), "{err}");
}

/// DPM-Solver++ SDE draws twice per step, over `[t, mid]` and then the
/// whole step `[t, s]` (k-diffusion's `noise_sampler(σ, σ_mid)`,
/// `noise_sampler(σ, σ_next)`), so its two increments share a path.
#[test]
fn dpmpp_sde_draws_over_k_diffusions_intervals() {
    let steps = Steps::from_grid(&[0.9, 0.5, 0.2]).unwrap();
    let s = gaussflow::sampler::DpmSolverPPSde::new(VpCosine, Prediction::Eps, steps, 1.0).unwrap();
    let plan = s.plan().unwrap();
    let st = plan.stages();
    assert_eq!(st[0].noise_interval, Some((0.9, st[1].t[0])));
    assert_eq!(st[1].noise_interval, Some((0.9, 0.5)));
    assert!(st[1].t[0] < 0.9 && st[1].t[0] > 0.5);
}
