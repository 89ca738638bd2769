//! One test per kind of bad input to the samplers, asserting the error
//! variant (and, where it matters, that the message names the culprit).

use gaussflow::sampler::{
    ClipSample, CorrectorStep, Ddim, DdimOptions, DpmSolverPP2M, DpmppOptions, EulerMaruyama,
    Guided, Heun, Plan, PredictorCorrector, Sampler, Steps, ddim_row, dpmpp_2m_row,
    euler_maruyama_row, flow_euler_row, guided, heun_corrector_row, langevin_row, pf_ode_euler_row,
};
use gaussflow::schedule::{Flow, Ve, VpCosine, VpLinear};
use gaussflow::{Error, Prediction};

fn ddim(t: f64, s: f64) -> gaussflow::Result<gaussflow::StepCoeffs> {
    ddim_row(&VpCosine, Prediction::Eps, t, s, &DdimOptions::ddim())
}

#[test]
fn time_out_of_range() {
    for (t, s) in [
        (1.5, 0.5),
        (0.5, -0.1),
        (f64::NAN, 0.1),
        (0.5, f64::NAN),
        (f64::INFINITY, 0.0),
    ] {
        assert!(
            matches!(ddim(t, s), Err(Error::TimeOutOfRange { .. })),
            "DDIM t={t} s={s}: {:?}",
            ddim(t, s)
        );
        assert!(matches!(
            flow_euler_row(&Flow, Prediction::Velocity, t, s),
            Err(Error::TimeOutOfRange { .. })
        ));
        assert!(matches!(
            dpmpp_2m_row(&VpCosine, Prediction::V, t, s, None),
            Err(Error::TimeOutOfRange { .. })
        ));
    }
    assert!(matches!(
        langevin_row(&VpCosine, Prediction::Score, 1.01, 0.1),
        Err(Error::TimeOutOfRange { .. })
    ));
    // The history time of DPM++ is checked too.
    match dpmpp_2m_row(&VpCosine, Prediction::V, 0.5, 0.25, Some(1.5)) {
        Err(e @ Error::TimeOutOfRange { .. }) => {
            assert!(e.to_string().contains("prev"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Steps::from_grid(&[1.2, 0.5, 0.0]),
        Err(Error::TimeOutOfRange { .. })
    ));
}

#[test]
fn step_direction() {
    for (t, s) in [(0.5, 0.5), (0.25, 0.5), (0.0, 0.0)] {
        assert_eq!(ddim(t, s), Err(Error::StepDirection { t, s }));
        assert!(matches!(
            heun_corrector_row(&Ve::default(), Prediction::Eps, t, s),
            Err(Error::StepDirection { .. })
        ));
        assert!(matches!(
            pf_ode_euler_row(&VpCosine, Prediction::Eps, t, s),
            Err(Error::StepDirection { .. })
        ));
        assert!(matches!(
            euler_maruyama_row(&VpCosine, Prediction::Eps, t, s, 1.0),
            Err(Error::StepDirection { .. })
        ));
    }
    // History must come from an earlier (larger) time; the error names
    // `prev`, not the step's `t` (it used to be a StepDirection with t = prev).
    match dpmpp_2m_row(&VpCosine, Prediction::Eps, 0.5, 0.25, Some(0.4)) {
        Err(Error::InvalidArgument { what, reason }) => {
            assert!(what.contains("prev"), "{what}");
            assert!(
                reason.contains("prev = 0.4") && reason.contains("t = 0.5"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Steps::from_grid(&[1.0, 0.2, 0.5]),
        Err(Error::StepDirection { .. })
    ));
}

#[test]
fn not_invertible_eps_at_alpha_zero() {
    // VP cosine: α(1) = 0 exactly; ε carries nothing about x there.
    match ddim(1.0, 0.5) {
        Err(Error::NotInvertible { prediction, t, .. }) => {
            assert_eq!(prediction, Prediction::Eps);
            assert_eq!(t, 1.0);
        }
        other => panic!("{other:?}"),
    }
    // Flow: α(1) = 0 too. v and x are fine there (zero terminal SNR).
    assert!(matches!(
        flow_euler_row(&Flow, Prediction::Eps, 1.0, 0.9),
        Err(Error::NotInvertible { .. })
    ));
    assert!(ddim_row(&VpCosine, Prediction::V, 1.0, 0.5, &DdimOptions::ddim()).is_ok());
    assert!(ddim_row(&VpCosine, Prediction::X, 1.0, 0.5, &DdimOptions::ddpm()).is_ok());
    // The sampler object reports it when planning.
    let s = Ddim::new(
        VpCosine,
        Prediction::Eps,
        Steps::from_grid(&[1.0, 0.5, 0.0]).unwrap(),
        DdimOptions::ddim(),
    )
    .unwrap();
    assert!(matches!(s.plan(), Err(Error::NotInvertible { .. })));
}

#[test]
fn not_invertible_score_at_sigma_zero() {
    // σ(0) = 0: the score −ε/σ is infinite; Langevin at t = 0 needs it.
    assert!(matches!(
        langevin_row(&VpCosine, Prediction::Score, 0.0, 0.1),
        Err(Error::NotInvertible {
            prediction: Prediction::Score,
            ..
        })
    ));
    // Any prediction: the score itself is undefined at σ = 0.
    assert!(matches!(
        langevin_row(&VpCosine, Prediction::Eps, 0.0, 0.1),
        Err(Error::NotInvertible { .. })
    ));
    // x-prediction at σ = 0 does not determine ε̂ either.
    assert!(matches!(
        gaussflow::Prediction::X.inverse(&VpCosine.at_checked(0.0)),
        Err(Error::NotInvertible { .. })
    ));
}

/// `ScheduleAt` at a valid time (helper for the test above).
trait AtChecked {
    fn at_checked(&self, t: f64) -> gaussflow::ScheduleAt;
}
impl<S: gaussflow::Schedule> AtChecked for S {
    fn at_checked(&self, t: f64) -> gaussflow::ScheduleAt {
        self.at(t).unwrap()
    }
}

#[test]
fn non_finite_options() {
    for bad in [f64::NAN, f64::INFINITY] {
        assert!(matches!(
            ddim_row(
                &VpCosine,
                Prediction::Eps,
                0.5,
                0.25,
                &DdimOptions::with_eta(bad)
            ),
            Err(Error::NonFinite { .. })
        ));
        assert!(matches!(
            euler_maruyama_row(&VpCosine, Prediction::Eps, 0.5, 0.25, bad),
            Err(Error::NonFinite { .. })
        ));
        assert!(matches!(
            langevin_row(&VpCosine, Prediction::Eps, 0.5, bad),
            Err(Error::NonFinite { .. })
        ));
        let row = ddim(0.5, 0.25).unwrap();
        assert!(matches!(guided(&row, bad), Err(Error::NonFinite { .. })));
        assert!(matches!(
            ddim_row(
                &VpCosine,
                Prediction::Eps,
                0.5,
                0.25,
                &DdimOptions::ddim().clipped(ClipSample::new(bad))
            ),
            Err(Error::NonFinite { .. })
        ));
    }
}

#[test]
fn non_finite_coefficients() {
    // PF-ODE at t = 1 on VP cosine with v-prediction: invertible, but
    // f = α′/α = −∞ there.
    assert!(matches!(
        pf_ode_euler_row(&VpCosine, Prediction::V, 1.0, 0.5),
        Err(Error::NonFinite { .. })
    ));
    // Heun's trapezoid weight α_s σ_t/α_t is infinite at α_t = 0.
    assert!(matches!(
        heun_corrector_row(&VpCosine, Prediction::V, 1.0, 0.5),
        Err(Error::NonFinite { .. })
    ));
    // Coefficients that overflow f32 are caught when narrowing the plan.
    // (ε-prediction at α(1) = e^{−100}: x̂ = (z − σ p)/α has weight e^{100}.)
    let s = Ddim::new(
        VpLinear::new(0.1, 400.0).unwrap(),
        Prediction::Eps,
        Steps::from_grid(&[1.0, 0.5]).unwrap(),
        DdimOptions::ddim(),
    )
    .unwrap();
    let plan = s.plan().unwrap();
    assert!(matches!(plan.rows(), Err(Error::NonFinite { .. })));
}

#[test]
fn negative_eta_and_delta() {
    assert!(matches!(
        ddim_row(
            &VpCosine,
            Prediction::Eps,
            0.5,
            0.25,
            &DdimOptions::with_eta(-0.1)
        ),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        euler_maruyama_row(&VpCosine, Prediction::Eps, 0.5, 0.25, -1.0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        langevin_row(&VpCosine, Prediction::Eps, 0.5, -1e-3),
        Err(Error::InvalidArgument { .. })
    ));
    let steps = Steps::from_grid(&[0.9, 0.5]).unwrap();
    assert!(matches!(
        Ddim::new(
            VpCosine,
            Prediction::Eps,
            steps.clone(),
            DdimOptions::with_eta(-1.0)
        ),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        EulerMaruyama::new(VpCosine, Prediction::Eps, steps.clone(), -1.0),
        Err(Error::InvalidArgument { .. })
    ));
    let heun = Heun::new(VpCosine, Prediction::Eps, steps);
    assert!(matches!(
        PredictorCorrector::new(heun, CorrectorStep::Constant(-0.1), 1),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn other_invalid_arguments() {
    // clip bound must be positive.
    assert!(matches!(
        ddim_row(
            &VpCosine,
            Prediction::Eps,
            0.5,
            0.25,
            &DdimOptions::ddim().clipped(ClipSample::new(0.0))
        ),
        Err(Error::InvalidArgument { .. })
    ));
    // Heun has no second stage on a step to σ = 0.
    assert!(matches!(
        heun_corrector_row(&VpCosine, Prediction::Eps, 0.5, 0.0),
        Err(Error::InvalidArgument { .. })
    ));
    // Guidance twice.
    let g = guided(&ddim(0.5, 0.25).unwrap(), 2.0).unwrap();
    assert!(matches!(
        guided(&g, 2.0),
        Err(Error::InvalidArgument { .. })
    ));
    let steps = Steps::from_grid(&[0.9, 0.5]).unwrap();
    let gs = Guided::new(Heun::new(VpCosine, Prediction::Eps, steps.clone()), 2.0).unwrap();
    assert!(matches!(
        Guided::new(gs, 2.0),
        Err(Error::InvalidArgument { .. })
    ));
    // A step index past the end.
    let d = DpmSolverPP2M::new(
        VpCosine,
        Prediction::Eps,
        steps.clone(),
        DpmppOptions::default(),
    );
    assert!(matches!(d.stages(1), Err(Error::InvalidArgument { .. })));
    // Per-sample plans must share their structure.
    let heun = Heun::new(VpCosine, Prediction::Eps, steps.clone());
    let ddim = Ddim::new(VpCosine, Prediction::Eps, steps, DdimOptions::ddim()).unwrap();
    assert!(matches!(
        Plan::per_sample(&[&heun, &ddim]),
        Err(Error::InvalidArgument { .. })
    ));
}
