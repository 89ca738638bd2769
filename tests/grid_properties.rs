//! Generic grids, DDIM's step pairs, the flow-match grid's shift, and the
//! errors every grid gives for bad input.

use gaussflow::grid::{
    self, DdimFinal, FlowMatch, FlowShift, Grid, Spacing, ddim_steps, flux_mu, kdiffusion,
};
use gaussflow::schedule::{Flow, Precision, Shifted, Ve, VpCosine, VpLinear, shift_time};
use gaussflow::{Error, Schedule};

#[test]
fn uniform_t_grid() {
    let g = grid::uniform_t(4, 1.0, 0.0).unwrap();
    assert_eq!(g.t, vec![1.0, 0.75, 0.5, 0.25, 0.0]);
    assert_eq!(g.steps(), 4);
    assert_eq!(g.pairs().next(), Some((1.0, 0.75)));
    assert!(g.model_timesteps.is_none());
    let g = grid::uniform_t(3, 0.9, 0.3).unwrap();
    assert_eq!((g.t[0], g.t[3]), (0.9, 0.3));
    assert!((g.t[1] - 0.7).abs() < 1e-15);
}

#[test]
fn uniform_log_snr_grid_is_evenly_spaced_in_lambda() {
    for s in [
        &VpCosine as &dyn Schedule,
        &VpLinear::default(),
        &Flow,
        &Ve::default(),
    ] {
        let g = grid::uniform_log_snr(s, 10, 0.95, 0.02).unwrap();
        assert_eq!((g.t[0], g.t[10]), (0.95, 0.02));
        let l: Vec<f64> = g.t.iter().map(|&t| s.log_snr(t)).collect();
        let d = (l[10] - l[0]) / 10.0;
        for i in 0..10 {
            assert!(
                ((l[i + 1] - l[i]) - d).abs() < 1e-9 * d.abs(),
                "{}: λ step {i}",
                s.name()
            );
        }
        // λ is infinite at t = 0: a clear error, and with_final_zero as the way out.
        let at_zero = grid::uniform_log_snr(s, 10, 0.95, 0.0);
        if s.log_snr(0.0).is_finite() {
            assert!(at_zero.is_ok(), "{}", s.name());
        } else {
            assert!(
                matches!(at_zero, Err(Error::NonFinite { .. })),
                "{}",
                s.name()
            );
        }
        let z = g.with_final_zero().unwrap();
        assert_eq!(z.t.len(), 12);
        assert_eq!(*z.t.last().unwrap(), 0.0);
    }
}

#[test]
fn karras_grid_and_lists() {
    let g = grid::karras(&VpCosine, 8, 0.02, 80.0, grid::KARRAS_RHO).unwrap();
    assert_eq!(g.t.len(), 8);
    let rhos = g.rhos(&VpCosine);
    assert!((rhos[0] - 80.0).abs() < 1e-12 * 80.0 && (rhos[7] - 0.02).abs() < 1e-12);
    // ρ^{1/7} is evenly spaced.
    let r: Vec<f64> = rhos.iter().map(|x| x.powf(1.0 / 7.0)).collect();
    for i in 1..7 {
        assert!(((r[i + 1] - r[i]) - (r[1] - r[0])).abs() < 1e-12);
    }
    // k-diffusion's lists end in 0 and are strictly decreasing.
    for v in [
        kdiffusion::sigmas_karras(5, 0.1, 10.0, 7.0).unwrap(),
        kdiffusion::sigmas_exponential(5, 0.1, 10.0).unwrap(),
        kdiffusion::sigmas_polyexponential(5, 0.1, 10.0, 2.0).unwrap(),
        kdiffusion::sigmas_vp(5, 19.9, 0.1, 1e-3).unwrap(),
    ] {
        assert_eq!(v.len(), 6);
        assert_eq!(v[5], 0.0);
        assert!(v.windows(2).all(|w| w[0] > w[1]));
        // And through a schedule they are a grid.
        assert!(grid::from_rhos(&VpCosine, &v).is_ok());
    }
    // Exponential: log-spaced, ends exact to rounding.
    let e = kdiffusion::sigmas_exponential(3, 0.1, 10.0).unwrap();
    assert!((e[1] - 1.0).abs() < 1e-15 && (e[0] - 10.0).abs() < 1e-14);
}

#[test]
fn ddim_steps_skip_by_integer_ratio_for_every_spacing() {
    // linspace: 999, 979, 958, …; DDIM steps 979 → 959, not to the grid's 958.
    let s = ddim_steps(1000, 50, Spacing::Linspace, 0, DdimFinal::AlphaOne).unwrap();
    assert_eq!((s[1].timestep, s[1].prev_timestep), (979, 959));
    assert_eq!(s[2].timestep, 958);
    for w in &s {
        assert_eq!(w.prev_timestep, w.timestep - 20);
    }
    // Last step: to ᾱ = 1 (t = 0) or to ᾱ_0 (t = 1/N).
    let last = s.last().unwrap();
    assert_eq!((last.timestep, last.prev_timestep, last.s), (0, -20, 0.0));
    let s = ddim_steps(1000, 50, Spacing::Leading, 1, DdimFinal::FirstStep).unwrap();
    let last = s.last().unwrap();
    assert_eq!((last.timestep, last.t, last.s), (1, 0.002, 0.001));
    assert_eq!((s[0].timestep, s[0].t, s[0].s), (981, 0.982, 0.962));
    // Trailing starts on the last training step, t = 1.
    let s = ddim_steps(1000, 50, Spacing::Trailing, 0, DdimFinal::AlphaOne).unwrap();
    assert_eq!((s[0].timestep, s[0].t), (999, 1.0));
}

/// The SD3 shift is applied exactly once, wherever it lives: in the
/// flow-match grid (with the plain flow schedule) or in the schedule
/// (`Shifted(Flow, s)` with an unshifted grid), never both.
#[test]
fn a_shift_is_applied_exactly_once() {
    let s = 3.0;
    let n = 28;
    let fm = FlowMatch {
        shift: FlowShift::Static(s),
        precision: Precision::F64,
        ..FlowMatch::default()
    };
    let g = fm.grid(n).unwrap();
    // diffusers: u = linspace(shift(1), shift(1/N), n), σ = shift(u).
    let (u0, u1) = (shift_time(1.0, s).unwrap(), shift_time(0.001, s).unwrap());
    assert_eq!(fm.train_sigma_range(), (u0, u1));
    for i in 0..n {
        let u = u0 + (u1 - u0) * i as f64 / (n - 1) as f64;
        let once = shift_time(u, s).unwrap();
        let twice = shift_time(once, s).unwrap();
        assert!(
            (g.t[i] - once).abs() < 1e-14,
            "grid σ[{i}] = {} vs shift(u) = {once}",
            g.t[i]
        );
        if i > 0 {
            assert!(
                (g.t[i] - twice).abs() > 1e-3,
                "grid σ[{i}] must not be shifted twice"
            );
        }
        // The same σ through the schedule instead: the shift in Shifted,
        // the grid unshifted.
        assert!((Shifted::new(Flow, s).unwrap().sigma(u) - once).abs() < 1e-14);
        assert!((Flow.sigma(g.t[i]) - once).abs() < 1e-14);
    }
    assert_eq!(g.model_timesteps.as_ref().unwrap()[0], 1000.0);
    assert_eq!(*g.t.last().unwrap(), 0.0);
    // Shifting twice by s is shifting once by s².
    for &t in &[0.1, 0.5, 0.9] {
        let twice = shift_time(shift_time(t, s).unwrap(), s).unwrap();
        assert!((twice - shift_time(t, s * s).unwrap()).abs() < 1e-15);
    }
}

#[test]
fn flow_match_dynamic_shift_is_a_shift_by_e_mu() {
    let mu = flux_mu(4096.0, 256.0, 4096.0, 0.5, 1.15);
    assert!((mu - 1.15).abs() < 1e-15);
    assert!((flux_mu(1024.0, 256.0, 4096.0, 0.5, 1.15) - 0.63).abs() < 1e-15);
    let base: Vec<f64> = (0..10).map(|i| 1.0 - i as f64 / 10.0).collect();
    let e = FlowMatch {
        shift: FlowShift::Exponential { mu },
        precision: Precision::F64,
        ..FlowMatch::default()
    }
    .grid_from_sigmas(&base)
    .unwrap();
    let l = FlowMatch {
        shift: FlowShift::Linear { mu: 2.0 },
        precision: Precision::F64,
        ..FlowMatch::default()
    }
    .grid_from_sigmas(&base)
    .unwrap();
    for (i, &b) in base.iter().enumerate() {
        assert!((e.t[i] - shift_time(b, mu.exp()).unwrap()).abs() < 1e-15);
        assert!((l.t[i] - shift_time(b, 2.0).unwrap()).abs() < 1e-15);
    }
    // shift_terminal stretches the end to the given value.
    let st = FlowMatch {
        shift: FlowShift::Static(3.0),
        shift_terminal: Some(0.1),
        precision: Precision::F64,
        ..FlowMatch::default()
    }
    .grid(12)
    .unwrap();
    assert!((st.t[11] - 0.1).abs() < 1e-15);
    assert_eq!(st.t[0], 1.0);
}

#[test]
fn bad_inputs_give_clear_errors() {
    use Error::*;
    assert!(matches!(
        grid::uniform_t(0, 1.0, 0.0),
        Err(InvalidArgument { .. })
    ));
    assert!(matches!(
        grid::uniform_t(4, 1.2, 0.0),
        Err(TimeOutOfRange { .. })
    ));
    assert!(matches!(
        grid::uniform_t(4, 0.5, 0.5),
        Err(InvalidArgument { .. })
    ));
    assert!(matches!(
        grid::uniform_t(4, f64::NAN, 0.0),
        Err(TimeOutOfRange { .. })
    ));
    assert!(matches!(
        grid::uniform_log_snr(&VpCosine, 4, 1.0, 0.1),
        Err(NonFinite { .. })
    ));
    assert!(matches!(
        grid::karras(&VpCosine, 0, 0.1, 1.0, 7.0),
        Err(InvalidArgument { .. })
    ));
    assert!(matches!(
        grid::karras(&VpCosine, 5, 1.0, 0.1, 7.0),
        Err(InvalidArgument { .. })
    ));
    assert!(matches!(
        grid::karras(&VpCosine, 5, 0.1, 1.0, -7.0),
        Err(InvalidArgument { .. })
    ));
    assert!(matches!(
        grid::karras(&Ve::default(), 5, 1e-4, 1.0, 7.0),
        Err(InvalidArgument { .. })
    ));
    assert!(matches!(
        kdiffusion::sigmas_vp(5, -1.0, 0.1, 1e-3),
        Err(InvalidArgument { .. })
    ));
    assert!(matches!(
        kdiffusion::sigmas_exponential(5, 0.0, 1.0),
        Err(InvalidArgument { .. })
    ));
    assert!(matches!(Grid::new(vec![0.5]), Err(InvalidArgument { .. })));
    assert!(matches!(
        Grid::new(vec![0.5, 0.6]),
        Err(InvalidArgument { .. })
    ));
    assert!(matches!(
        Grid::new(vec![1.5, 0.6]),
        Err(TimeOutOfRange { .. })
    ));
    let fm = |shift| FlowMatch {
        shift,
        ..FlowMatch::default()
    };
    assert!(matches!(
        fm(FlowShift::Static(0.0)).grid(10),
        Err(InvalidArgument { .. })
    ));
    assert!(matches!(
        fm(FlowShift::Linear { mu: -1.0 }).grid(10),
        Err(InvalidArgument { .. })
    ));
    assert!(matches!(
        fm(FlowShift::Exponential { mu: f64::NAN }).grid(10),
        Err(InvalidArgument { .. })
    ));
    assert!(matches!(
        FlowMatch::default().grid(0),
        Err(InvalidArgument { .. })
    ));
    assert!(matches!(
        FlowMatch::default().grid_from_sigmas(&[1.0, 0.0]),
        Err(InvalidArgument { .. })
    ));
    let bad_terminal = FlowMatch {
        shift_terminal: Some(1.0),
        ..FlowMatch::default()
    };
    assert!(matches!(bad_terminal.grid(10), Err(InvalidArgument { .. })));
    // A library grid already has its last step.
    assert_err!(
        FlowMatch::default().grid(5).unwrap().with_final_zero(),
        gaussflow::Error::InvalidArgument { .. }
    );
}
