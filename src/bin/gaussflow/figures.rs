//! `gaussflow figures --out DIR`: the seed post's figures as SVG (plotters,
//! SVG backend, no font backend: text is written as SVG `<text>` and
//! rendered by whatever views the file).
//!
//! * `trajectories_scaled.svg` — DDIM vs probability-flow ODE Euler under
//!   time-dependent scalings of the flow schedule (the post's interactive
//!   figure as small multiples): DDIM's end points do not move, PF-ODE
//!   Euler's do.
//! * `vp_vs_flow_paths.svg` — exact ODE paths of Gaussian data `N(0, s²)`
//!   under VP cosine and flow, narrow to wide `s`.
//! * `churn_weights.svg` — weight of each v-prediction in the final sample,
//!   100 steps, cosine schedule, churn η ∈ {0, 0.5, 1} (claim 7).
//! * `weighting_functions.svg` — common weightings as Kingma & Gao's
//!   `w(λ)` on one plot (the figure the post left as TODO).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use gaussflow::lab::claims::{churn_weights, exact_mixture_path, path_curvature, scaling_label};
use gaussflow::lab::models::GaussianMixture;
use gaussflow::sampler::{Ddim, DdimOptions, PfOdeEuler, Sampler, Steps};
use gaussflow::schedule::{Flow, VpCosine};
use gaussflow::schedule::{Scaling, TimeScaled};
use gaussflow::weighting::{Objective, TimeDistribution, Weighting};
use gaussflow::{Prediction, Schedule};
use plotters::prelude::*;

use crate::out::outln;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Draws one figure into a file.
type Draw = fn(&Path) -> Res<()>;

/// The axes of a panel plotting the state z_t against diffusion time t
/// (the trajectory and path figures share them).
fn time_state_mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
) -> Res<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_mesh()
        .x_desc("diffusion time t")
        .y_desc("state z_t")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .light_line_style(WHITE)
        .draw()?;
    Ok(())
}

/// Options of `figures`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Directory to write the SVG files into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn run(args: &Args) -> Res<ExitCode> {
    // io::Error names no path: say which directory or file failed.
    std::fs::create_dir_all(&args.out).map_err(|e| {
        format!(
            "cannot create the --out directory {}: {e}",
            args.out.display()
        )
    })?;
    let figs: [(&str, Draw); 4] = [
        ("trajectories_scaled.svg", trajectories_scaled),
        ("vp_vs_flow_paths.svg", vp_vs_flow_paths),
        ("churn_weights.svg", churn_weights_fig),
        ("weighting_functions.svg", weighting_functions),
    ];
    for (name, draw) in figs {
        let path = args.out.join(name);
        draw(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        outln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

const FONT: &str = "sans-serif";
const COLORS: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
];
const GREY: RGBColor = RGBColor(170, 170, 170);

/// The 1-D two-mode data of the trajectory figures.
fn two_modes() -> Res<GaussianMixture> {
    Ok(GaussianMixture::new(
        1,
        &[0.5, 0.5],
        &[vec![-1.0], vec![1.0]],
        &[0.25, 0.25],
    )?)
}

/// Starting points at `t0`: evenly spaced quantiles of the marginal.
fn starts(schedule: &dyn Schedule, t0: f64, count: usize) -> Vec<f64> {
    let m = (schedule.alpha(t0).powi(2) * 1.0625 + schedule.sigma(t0).powi(2)).sqrt();
    (0..count)
        .map(|i| m * gaussflow::weighting::normal_quantile((i as f64 + 0.5) / count as f64))
        .collect()
}

fn trajectories_scaled(path: &Path) -> Res<()> {
    let mix = two_modes()?;
    let scalings = [
        Scaling::Constant(1.0),
        Scaling::Power(2.0),
        Scaling::Power(0.5),
        Scaling::ToVp,
    ];
    let (t0, steps) = (0.98, 6);
    let grid = Steps::from_grid(&gaussflow::grid::uniform_t(steps, t0, 0.0)?.t)?;
    let base = starts(&Flow, t0, 8);
    let root = SVGBackend::new(path, (1400, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "Scalings c_t of the flow schedule, 6 steps: DDIM (top) ends where the unscaled run ends \
         (black ×) under every c_t, PF-ODE Euler (bottom) does not; grey: exact ODE",
        (FONT, 19),
    )?;
    let panels = root.split_evenly((2, scalings.len()));
    // End points of the unscaled run (identical for both samplers: on the
    // flow schedule DDIM = flow Euler = PF-ODE Euler). Every scaling here
    // has c_0 = 1, so end points compare directly.
    let unscaled = {
        let ddim = Ddim::new(Flow, Prediction::V, grid.clone(), DdimOptions::ddim())?;
        let plan = gaussflow::sampler::Plan::new(&ddim)?;
        mix.run_plan_host(&Flow, &plan, &base, 0, None)?
            .pop()
            .ok_or("empty run")?
    };
    for (col, &sc) in scalings.iter().enumerate() {
        let sch = TimeScaled::new(Flow, sc)?;
        let c0 = sch.factor(t0).0;
        let z0: Vec<f64> = base.iter().map(|v| c0 * v).collect();
        let exact: Vec<Vec<(f64, f64)>> = z0
            .iter()
            .map(|&z| {
                exact_mixture_path(&mix, &sch, &[z], t0, 400)
                    .map(|p| p.into_iter().map(|(t, z)| (t, z[0])).collect())
            })
            .collect::<Result<_, _>>()?;
        let lo = exact
            .iter()
            .flatten()
            .map(|p| p.1)
            .fold(f64::INFINITY, f64::min);
        let hi = exact
            .iter()
            .flatten()
            .map(|p| p.1)
            .fold(f64::NEG_INFINITY, f64::max);
        let pad = 0.08 * (hi - lo);
        for (row, name) in ["DDIM", "PF-ODE Euler"].iter().enumerate() {
            let sampler: Box<dyn Sampler> = if row == 0 {
                Box::new(Ddim::new(
                    sch,
                    Prediction::V,
                    grid.clone(),
                    DdimOptions::ddim(),
                )?)
            } else {
                Box::new(PfOdeEuler::new(sch, Prediction::V, grid.clone()))
            };
            let plan = gaussflow::sampler::Plan::new(&*sampler)?;
            let states = mix.run_plan_host(&sch, &plan, &z0, 0, None)?;
            let times = sampler.grid();
            let title = if sc == Scaling::Constant(1.0) {
                format!("{name}, flow (c = 1)")
            } else {
                format!("{name}, {}", scaling_label(sc))
            };
            let mut chart = ChartBuilder::on(&panels[row * scalings.len() + col])
                .caption(title, (FONT, 17))
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(46)
                .build_cartesian_2d(-0.04f64..1.01f64, (lo - pad)..(hi + pad))?;
            time_state_mesh(&mut chart)?;
            for p in &exact {
                chart.draw_series(LineSeries::new(p.iter().copied(), GREY.stroke_width(1)))?;
            }
            let color = COLORS[row];
            for i in 0..z0.len() {
                let pts: Vec<(f64, f64)> =
                    times.iter().zip(&states).map(|(&t, s)| (t, s[i])).collect();
                chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            }
            chart.draw_series(
                unscaled
                    .iter()
                    .map(|&z| Cross::new((0.0, z), 6, BLACK.stroke_width(2))),
            )?;
        }
    }
    root.present()?;
    Ok(())
}

fn vp_vs_flow_paths(path: &Path) -> Res<()> {
    let spreads = [0.01, 0.1, 1.0, 10.0];
    let root = SVGBackend::new(path, (1600, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "Exact probability-flow paths of Gaussian data N(0, s²): VP cosine is straight for s = 1, \
         flow for s → 0 (claim 8)",
        (FONT, 24),
    )?;
    let panels = root.split_evenly((2, spreads.len()));
    let schedules: [(&str, &dyn Schedule); 2] = [("VP cosine", &VpCosine), ("flow", &Flow)];
    for (row, (name, sch)) in schedules.iter().enumerate() {
        for (col, &s) in spreads.iter().enumerate() {
            let g = GaussianMixture::gaussian(&[0.0], s)?;
            let z1 = starts_gauss(*sch, s, 11);
            let paths: Vec<Vec<(f64, f64)>> = z1
                .iter()
                .map(|&z| {
                    exact_mixture_path(&g, *sch, &[z], 1.0, 400)
                        .map(|p| p.into_iter().map(|(t, z)| (t, z[0])).collect())
                })
                .collect::<Result<_, _>>()?;
            let hi = paths
                .iter()
                .flatten()
                .map(|p| p.1.abs())
                .fold(0.0, f64::max)
                * 1.08;
            let (curv, _) = path_curvature(*sch, s, 1.3, 2000)?;
            let mut chart = ChartBuilder::on(&panels[row * spreads.len() + col])
                .caption(
                    format!("{name}, s = {s} (off chord by {curv:.3})"),
                    (FONT, 16),
                )
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(46)
                .build_cartesian_2d(0f64..1f64, -hi..hi)?;
            time_state_mesh(&mut chart)?;
            for p in &paths {
                chart.draw_series(LineSeries::new(
                    p.iter().copied(),
                    COLORS[row].stroke_width(2),
                ))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

/// Quantiles of the prior at `t = 1` (`N(0, α₁² s² + σ₁²)`).
fn starts_gauss(sch: &dyn Schedule, s: f64, count: usize) -> Vec<f64> {
    let m = (sch.alpha(1.0).powi(2) * s * s + sch.sigma(1.0).powi(2)).sqrt();
    (0..count)
        .map(|i| m * gaussflow::weighting::normal_quantile((i as f64 + 0.5) / count as f64))
        .collect()
}

fn churn_weights_fig(path: &Path) -> Res<()> {
    let etas = [
        (0.0, "DDIM (η = 0)"),
        (0.5, "η = 0.5"),
        (1.0, "DDPM (η = 1)"),
    ];
    let mut series = Vec::new();
    let mut top = 0.0f64;
    for &(eta, label) in &etas {
        let w = churn_weights(eta)?;
        let pts: Vec<(f64, f64)> =
            w.t.iter()
                .zip(&w.prediction)
                .map(|(&t, &v)| (t, v.abs()))
                .collect();
        top = top.max(pts.iter().map(|p| p.1).fold(0.0, f64::max));
        series.push((label, pts));
    }
    let root = SVGBackend::new(path, (1000, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Weight of each v-prediction in the final sample (cosine schedule, 100 steps)",
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..1f64, 0f64..top * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("diffusion time t of the prediction (sampling runs from t = 1 to t = 0)")
        .y_desc("|weight| of the v-prediction")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .light_line_style(WHITE)
        .draw()?;
    for (i, (label, pts)) in series.into_iter().enumerate() {
        let c = COLORS[i];
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(3)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 16))
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    root.present()?;
    Ok(())
}

fn weighting_functions(path: &Path) -> Res<()> {
    const FLOOR: f64 = 1e-5;
    use Prediction::*;
    let uniform = TimeDistribution::Uniform;
    let cases: Vec<(&str, &dyn Schedule, Objective)> = vec![
        (
            "ELBO",
            &VpCosine,
            Objective::new(Eps, Weighting::Elbo, uniform)?,
        ),
        (
            "ε-MSE, cosine",
            &VpCosine,
            Objective::new(Eps, Weighting::Simple(Eps), uniform)?,
        ),
        (
            "flow matching = v-MSE, cosine",
            &Flow,
            Objective::new(FlowVelocity, Weighting::Simple(FlowVelocity), uniform)?,
        ),
        (
            "min-SNR-5, cosine (= ε-MSE below λ = ln 5)",
            &VpCosine,
            Objective::new(Eps, Weighting::MinSnr { gamma: 5.0 }, uniform)?,
        ),
        (
            "sigmoid(2 − λ), cosine (→ ELBO for λ ≪ 2)",
            &VpCosine,
            Objective::new(Eps, Weighting::Sigmoid { bias: 2.0 }, uniform)?,
        ),
        (
            "EDM (σ_data = 0.5)",
            &VpCosine,
            Objective::new(
                X,
                Weighting::Edm { sigma_data: 0.5 },
                TimeDistribution::edm_default(),
            )?,
        ),
        (
            "SD3: flow, logit-normal(0, 1)",
            &Flow,
            Objective::new(
                FlowVelocity,
                Weighting::Simple(FlowVelocity),
                TimeDistribution::sd3_logit_normal(0.0, 1.0)?,
            )?,
        ),
    ];
    let lambdas: Vec<f64> = (0..=400).map(|i| -10.0 + 20.0 * i as f64 / 400.0).collect();
    let mut series = Vec::new();
    for (label, sch, obj) in &cases {
        let w = lambdas
            .iter()
            .map(|&l| obj.effective_weight_at_log_snr(*sch, l))
            .collect::<Result<Vec<f64>, _>>()?;
        let peak = w.iter().cloned().fold(0.0, f64::max);
        series.push((
            *label,
            lambdas
                .iter()
                .zip(&w)
                .map(|(&l, &v)| (l, v / peak))
                // Below the axis: left out, not drawn along the bottom edge
                // (every curve is monotone in its tails, so what remains is
                // one piece).
                .filter(|&(_, v)| v >= FLOOR)
                .collect::<Vec<_>>(),
        ));
    }
    let root = SVGBackend::new(path, (1100, 680)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Weighting functions w(λ) of common objectives (each scaled to peak 1)",
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(-10f64..10f64, (FLOOR..2f64).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("log-SNR λ")
        .y_desc("w(λ) / max w")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .light_line_style(WHITE)
        .draw()?;
    for (i, (label, pts)) in series.into_iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        // Dashed where a curve runs on top of another one over part of
        // the range (min-SNR on ε-MSE, sigmoid on ELBO).
        let dashed = label.starts_with("min-SNR") || label.starts_with("sigmoid");
        let anno = if dashed {
            chart.draw_series(DashedLineSeries::new(pts, 12, 7, c.stroke_width(3)))?
        } else {
            chart.draw_series(LineSeries::new(pts, c.stroke_width(3)))?
        };
        anno.label(label).legend(move |(x, y)| {
            // Two pieces with a gap for a dashed curve, one line otherwise
            // (the second piece then repeats the first).
            let (first, second) = if dashed {
                ((0, 10), (15, 25))
            } else {
                ((0, 25), (0, 25))
            };
            EmptyElement::at((x, y))
                + PathElement::new(vec![(first.0, 0), (first.1, 0)], c.stroke_width(3))
                + PathElement::new(vec![(second.0, 0), (second.1, 0)], c.stroke_width(3))
        });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .label_font((FONT, 15))
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    root.present()?;
    Ok(())
}
