//! Sampler objects and plans: the stage structure each sampler promises
//! (model times, history, noise domains and streams), the first-order rules
//! of DPM-Solver++ as diffusers and k-diffusion apply them, the composition
//! of a plan's rows, and the DDPM = DDIM + renoising identity.

use gaussflow::rows::{HISTORY, MODEL, MODEL_UNCOND, STATE};
use gaussflow::sampler::{
    CorrectorStep, Ddim, DdimOptions, DpmSolverPP2M, DpmppOptions, EulerMaruyama, FlowEuler,
    Guided, Heun, PfOdeEuler, Plan, PredictorCorrector, Sampler, Steps, ddim_row, renoise_row,
};
use gaussflow::schedule::{Flow, Ve, VpCosine, VpLinear};
use gaussflow::{Domain, Prediction, Schedule};

fn grid(t0: f64, t1: f64, n: usize) -> Steps {
    Steps::from_grid(
        &(0..=n)
            .map(|k| {
                if k == n {
                    t1
                } else {
                    t0 + (t1 - t0) * k as f64 / n as f64
                }
            })
            .collect::<Vec<_>>(),
    )
    .unwrap()
}

#[test]
fn single_stage_samplers() {
    let steps = grid(0.9, 0.0, 5);
    let samplers: Vec<(Box<dyn Sampler>, Option<Domain>)> = vec![
        (
            Box::new(
                Ddim::new(
                    VpCosine,
                    Prediction::Eps,
                    steps.clone(),
                    DdimOptions::ddim(),
                )
                .unwrap(),
            ),
            None,
        ),
        (
            Box::new(
                Ddim::new(
                    VpCosine,
                    Prediction::Eps,
                    steps.clone(),
                    DdimOptions::ddpm(),
                )
                .unwrap(),
            ),
            Some(Domain::SAMPLER_STEP),
        ),
        (
            Box::new(FlowEuler::new(Flow, Prediction::Velocity, steps.clone())),
            None,
        ),
        (
            Box::new(PfOdeEuler::new(
                VpCosine,
                Prediction::Eps,
                grid(0.9, 0.1, 5),
            )),
            None,
        ),
        (
            Box::new(
                EulerMaruyama::new(VpCosine, Prediction::Eps, grid(0.9, 0.1, 5), 1.0).unwrap(),
            ),
            Some(Domain::SAMPLER_STEP),
        ),
    ];
    for (s, noise) in samplers {
        let plan = Plan::new(&*s).unwrap();
        assert_eq!(plan.evaluations(), 5, "{}", s.name());
        assert!(!plan.uses_history() && !plan.guided());
        for (i, st) in plan.stages().iter().enumerate() {
            assert_eq!((st.step, st.stage, st.stream), (i, 0, i as u32));
            assert_eq!(st.t, vec![s.steps().pairs()[i].0], "model at the step's t");
            assert_eq!(st.noise, noise, "{}", s.name());
            assert!(!st.reads()[HISTORY] && !st.reads()[MODEL_UNCOND]);
        }
        assert_eq!(plan.rows().unwrap().len(), 5);
    }
}

#[test]
fn heun_stages() {
    let steps = grid(0.9, 0.0, 4);
    let h = Heun::new(VpCosine, Prediction::V, steps.clone());
    let plan = h.plan().unwrap();
    // Three two-stage steps and a single-stage step to σ = 0.
    assert_eq!(plan.evaluations(), 7);
    let st = plan.stages();
    for step in 0..3 {
        let (a, b) = (&st[2 * step], &st[2 * step + 1]);
        let (t, s) = steps.pairs()[step];
        assert_eq!((a.t[0], b.t[0]), (t, s), "predictor at t, corrector at s");
        assert!(a.writes_history && !a.reads()[HISTORY]);
        assert!(!b.writes_history && b.reads()[HISTORY]);
        assert_eq!(b.stream, (2 * step + 1) as u32);
    }
    let last = &st[6];
    assert!(!last.writes_history && !last.reads()[HISTORY]);
    // z_s = α_s x̂_t at σ_s = 0: the row is the x̂ combination itself.
    let c = last.rows[0];
    assert_eq!(c.out[STATE], c.x_hat[STATE]);
    assert_eq!(c.out[MODEL], c.x_hat[MODEL]);
    // VE never reaches σ = 0: every step has two stages.
    let ve = Heun::new(Ve::default(), Prediction::Eps, grid(1.0, 0.0, 4));
    assert_eq!(ve.plan().unwrap().evaluations(), 8);
}

/// diffusers (`solver_order = 2`): first order on the first step, and on the
/// last if `euler_at_final`, or `lower_order_final` with fewer than 15
/// steps, or the last σ is 0. k-diffusion: first step and steps to σ = 0.
#[test]
fn dpmpp_order_rules() {
    let reads_history = |s: &DpmSolverPP2M<VpLinear>| -> Vec<bool> {
        s.plan()
            .unwrap()
            .stages()
            .iter()
            .map(|st| st.reads()[HISTORY])
            .collect()
    };
    let sch = VpLinear::default();
    let p = Prediction::Eps;
    // 10 steps ending at σ_min (not 0).
    let short = grid(0.98, 0.02, 10);
    let d = DpmSolverPP2M::new(sch, p, short.clone(), DpmppOptions::default());
    let mut want = vec![true; 10];
    want[0] = false;
    want[9] = false; // lower_order_final and n < 15
    assert_eq!(reads_history(&d), want);
    let k = DpmSolverPP2M::new(sch, p, short.clone(), DpmppOptions::k_diffusion());
    want[9] = true;
    assert_eq!(reads_history(&k), want);
    // 20 steps: lower_order_final no longer applies; euler_at_final does.
    let long = grid(0.98, 0.02, 20);
    let d = DpmSolverPP2M::new(sch, p, long.clone(), DpmppOptions::default());
    assert!(reads_history(&d)[19]);
    let e = DpmSolverPP2M::new(
        sch,
        p,
        long,
        DpmppOptions {
            lower_order_final: true,
            euler_at_final: true,
        },
    );
    assert!(!reads_history(&e)[19]);
    // Ending at σ = 0: first order there whatever the options.
    let to_zero = grid(0.98, 0.0, 20);
    let k = DpmSolverPP2M::new(sch, p, to_zero, DpmppOptions::k_diffusion());
    let r = reads_history(&k);
    assert!(!r[0] && r[1..19].iter().all(|&x| x) && !r[19]);
    // Every step but the last writes its x̂.
    let plan = k.plan().unwrap();
    assert!(plan.stages()[..19].iter().all(|s| s.writes_history));
    assert!(!plan.stages()[19].writes_history);
}

#[test]
fn predictor_corrector_and_guidance_stages() {
    let inner = Ddim::new(
        VpCosine,
        Prediction::Score,
        grid(0.9, 0.1, 3),
        DdimOptions::ddpm(),
    )
    .unwrap();
    let pc = PredictorCorrector::new(inner, CorrectorStep::Snr(0.16), 2).unwrap();
    let g = Guided::new(pc, 4.0).unwrap();
    let plan = g.plan().unwrap();
    assert!(plan.guided());
    assert_eq!(plan.evaluations(), 9);
    for (i, st) in plan.stages().iter().enumerate() {
        let want = if i % 3 < 2 {
            Domain::LANGEVIN
        } else {
            Domain::SAMPLER_STEP
        };
        assert_eq!(st.noise, Some(want));
        assert_eq!(st.stream, i as u32);
        assert!(st.reads()[MODEL_UNCOND]);
        // Langevin at the step's t with δ = 2 (r σ_t)².
        if i % 3 < 2 {
            let t = st.t[0];
            let delta = 2.0 * (0.16 * VpCosine.sigma(t)).powi(2);
            assert!((st.rows[0].noise - (2.0 * delta).sqrt()).abs() < 1e-15);
        }
    }
}

#[test]
fn per_sample_plan_layout() {
    let a = Ddim::new(
        VpCosine,
        Prediction::Eps,
        grid(0.9, 0.0, 3),
        DdimOptions::ddim(),
    )
    .unwrap();
    let b = Ddim::new(
        VpCosine,
        Prediction::Eps,
        grid(0.7, 0.0, 3),
        DdimOptions::ddim(),
    )
    .unwrap();
    let plan = Plan::per_sample(&[&a, &b, &a]).unwrap();
    assert_eq!(plan.width(), 3);
    let rows = plan.rows().unwrap();
    assert_eq!(rows.len(), 9);
    let pa = a.plan().unwrap().rows().unwrap();
    let pb = b.plan().unwrap().rows().unwrap();
    for i in 0..3 {
        assert_eq!(rows[3 * i], pa[i]);
        assert_eq!(rows[3 * i + 1], pb[i]);
        assert_eq!(rows[3 * i + 2], pa[i]);
        assert_eq!(
            plan.stages()[i].t,
            vec![a.grid()[i], b.grid()[i], a.grid()[i]]
        );
    }
}

/// The composition of a plan's rows reproduces the final state of running
/// the rows one after another, for plans with churn, history (DPM++, Heun)
/// and corrector stages.
#[test]
fn composition_reproduces_sequential_rows() {
    let mut seed = 7u64;
    let mut rnd = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let samplers: Vec<Box<dyn Sampler>> = vec![
        Box::new(
            Ddim::new(
                VpLinear::default(),
                Prediction::V,
                grid(0.95, 0.0, 8),
                DdimOptions::with_eta(0.6),
            )
            .unwrap(),
        ),
        Box::new(DpmSolverPP2M::new(
            VpCosine,
            Prediction::Eps,
            grid(0.95, 0.0, 8),
            DpmppOptions::k_diffusion(),
        )),
        Box::new(Heun::new(VpCosine, Prediction::X, grid(0.95, 0.0, 5))),
        Box::new(
            PredictorCorrector::new(
                EulerMaruyama::new(Ve::default(), Prediction::Score, grid(1.0, 0.1, 4), 0.5)
                    .unwrap(),
                CorrectorStep::Constant(0.01),
                1,
            )
            .unwrap(),
        ),
    ];
    for s in samplers {
        let plan = Plan::new(&*s).unwrap();
        let comp = plan.composition().unwrap();
        let z0 = rnd();
        let (mut z, mut hist) = (z0, 0.0);
        let mut xh = vec![];
        let mut xi = vec![];
        for st in plan.stages() {
            let (p, n) = (rnd(), rnd());
            let (out, x) = st.rows[0].apply(crate::common::values([z, p, 0.0, hist]), n);
            if st.writes_history {
                hist = x;
            }
            xh.push(x);
            xi.push(n);
            z = out;
        }
        let composed = comp.initial * z0
            + comp.x_hat.iter().zip(&xh).map(|(w, x)| w * x).sum::<f64>()
            + comp.noise.iter().zip(&xi).map(|(w, n)| w * n).sum::<f64>();
        assert!(
            (composed - z).abs() < 1e-10 * (1.0 + z.abs()),
            "{}: {composed} vs {z}",
            s.name()
        );
    }
    // DDIM to σ = 0 from a state on the path of point data x₀ = 1: the x̂
    // weights and the start weight reproduce x₀ when every x̂ is x₀ and
    // z_start = α x₀ (ε = 0), i.e. the weights of x̂ sum to 1 − α_start·initial.
    let d = Ddim::new(
        VpCosine,
        Prediction::V,
        grid(1.0, 0.0, 20),
        DdimOptions::ddim(),
    )
    .unwrap();
    let c = d.plan().unwrap().composition().unwrap();
    let total: f64 = c.x_hat.iter().sum::<f64>() + c.initial * VpCosine.alpha(1.0);
    assert!((total - 1.0).abs() < 1e-12, "{total}");
}

/// The seed post's identity: one DDPM step from `λ` to `λ + Δλ` equals a
/// DDIM step to `λ + 2Δλ` followed by forward renoising to `λ + Δλ`.
#[test]
fn ddpm_is_ddim_then_renoise() {
    let schedules: Vec<Box<dyn Schedule>> = vec![
        Box::new(VpCosine),
        Box::new(VpLinear::default()),
        Box::new(Flow),
        Box::new(Ve::default()),
    ];
    for sch in schedules {
        for &(t, dl) in &[(0.8, 0.5), (0.5, 1.0), (0.3, 0.05), (0.9, 3.0)] {
            let l = sch.log_snr(t);
            let (Ok(s), Ok(s2)) = (sch.t_from_log_snr(l + dl), sch.t_from_log_snr(l + 2.0 * dl))
            else {
                continue; // outside the schedule's range (VE)
            };
            for p in [Prediction::Eps, Prediction::V, Prediction::X] {
                let ddpm = ddim_row(&*sch, p, t, s, &DdimOptions::ddpm()).unwrap();
                let ddim = ddim_row(&*sch, p, t, s2, &DdimOptions::ddim()).unwrap();
                let re = renoise_row(&*sch, s2, s).unwrap();
                let a = re.out[STATE];
                let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * (1.0 + y.abs());
                assert!(
                    close(a * ddim.out[STATE], ddpm.out[STATE]),
                    "{} {p} t={t}: z weight",
                    sch.name()
                );
                assert!(
                    close(a * ddim.out[MODEL], ddpm.out[MODEL]),
                    "{} {p} t={t}: p weight",
                    sch.name()
                );
                assert!(
                    close(re.noise, ddpm.noise),
                    "{} {p} t={t}: noise {} vs {}",
                    sch.name(),
                    re.noise,
                    ddpm.noise
                );
            }
        }
    }
}

/// A sampler chosen at run time plans like a concrete one: `Box<dyn
/// Sampler>`, `&dyn Sampler` and `Arc<dyn Sampler>` are samplers.
#[test]
fn boxed_and_borrowed_samplers_plan() {
    use gaussflow::sampler::{Ddim, DdimOptions, Heun, Plan, Sampler, Steps};
    use gaussflow::schedule::VpCosine;
    let steps = Steps::from_grid(&[0.9, 0.6, 0.3, 0.0]).unwrap();
    let concrete = Heun::new(VpCosine, gaussflow::Prediction::V, steps.clone());
    let want = concrete.plan().unwrap();
    let boxed: Box<dyn Sampler> = Box::new(concrete.clone());
    assert_eq!(boxed.plan().unwrap(), want);
    let borrowed: &dyn Sampler = &concrete;
    assert_eq!(borrowed.plan().unwrap(), want);
    let shared: std::sync::Arc<dyn Sampler> = std::sync::Arc::new(concrete);
    assert_eq!(shared.plan().unwrap(), want);
    assert_eq!(Plan::new(&boxed).unwrap(), want);
    let chosen: Vec<Box<dyn Sampler>> = vec![
        Box::new(
            Ddim::new(
                VpCosine,
                gaussflow::Prediction::V,
                steps.clone(),
                DdimOptions::ddim(),
            )
            .unwrap(),
        ),
        boxed,
    ];
    assert_eq!(chosen[0].plan().unwrap().stages().len(), 3);
    assert_eq!(chosen[1].plan().unwrap().stages().len(), 5);
}
