//! Shared pieces of the golden replays (`tests/golden_*.rs`): the library
//! configurations read from a case, the closed-form models of
//! `tests/data/README.md`, moving f64 data to and from the CPU engine, and
//! the error measure every replay reports.
//!
//! Every replay prints one line per check,
//! `golden <case> <path> <what>: max err <e> (tol <t>)`, so
//! `cargo test --test golden_… -- --nocapture` gives the error table.
#![allow(dead_code)]

use gaussflow::schedule::{BetaSchedule, Discrete, DiscreteConfig, Precision, ZeroSnrTerminal};
use gaussflow::{DType, Engine, HostTensor, Prediction, ScheduleAt, Shape, Tensor};

use crate::golden::{self, Case, Json};

/// diffusers' `prediction_type` as a gaussflow [`Prediction`].
pub fn prediction(diffusers: &str) -> Prediction {
    match diffusers {
        "epsilon" => Prediction::Eps,
        "v_prediction" => Prediction::V,
        "sample" => Prediction::X,
        other => panic!("unknown prediction_type {other}"),
    }
}

/// diffusers' `beta_schedule` with its `beta_start` / `beta_end`.
pub fn beta_schedule(cfg: &Json) -> BetaSchedule {
    let (start, end) = (cfg.at("beta_start").as_f64(), cfg.at("beta_end").as_f64());
    match cfg.at("beta_schedule").as_str() {
        "linear" => BetaSchedule::Linear {
            beta_start: start,
            beta_end: end,
        },
        "scaled_linear" => BetaSchedule::ScaledLinear {
            beta_start: start,
            beta_end: end,
        },
        "squaredcos_cap_v2" => BetaSchedule::squaredcos_cap_v2(),
        other => panic!("unknown beta schedule {other}"),
    }
}

/// The [`Discrete`] schedule of a diffusers config, in diffusers' float32
/// arithmetic.
pub fn discrete(cfg: &Json, terminal: ZeroSnrTerminal) -> Discrete {
    DiscreteConfig::new(beta_schedule(cfg))
        .num_train_timesteps(cfg.at("num_train_timesteps").as_i64() as usize)
        .zero_snr(cfg.at("rescale_betas_zero_snr").as_bool())
        .precision(Precision::Diffusers)
        .terminal(terminal)
        .build()
        .unwrap()
}

/// diffusers' own `alphas_cumprod` for a case of `schedules_betas.json`, as
/// a schedule (bit-exact values; see `Discrete`'s note on MKL's sqrt).
pub fn discrete_from_table(case_id: &str) -> Discrete {
    let g = golden::load("schedules_betas.json");
    let ab = g.case(case_id).array("outputs.alphas_cumprod").f64s();
    Discrete::from_alphas_cumprod(ab).unwrap()
}

/// `gauss_vp` (README): the exact posterior of `x ~ N(mu, s² I)` seen as
/// `z = a x + g ε`, output as `pred`, evaluated in f64 from the schedule's
/// `α = a`, `σ = g` at the step:
/// `k = a s²/(a² s² + g²)`, `x̂ = mu + k (z − a mu)`, `ε̂ = (z − a x̂)/g`,
/// `v̂ = a ε̂ − g x̂`.
pub fn gauss_vp(at: &ScheduleAt, mu: &[f64], s: f64, pred: Prediction, z: &[f64]) -> Vec<f64> {
    let (a, g) = (at.alpha, at.sigma);
    let k = a * s * s / (a * a * s * s + g * g);
    z.iter()
        .zip(mu)
        .map(|(&z, &m)| {
            let x = m + k * (z - a * m);
            let e = (z - a * x) / g;
            match pred {
                Prediction::X => x,
                Prediction::Eps => e,
                Prediction::V => a * e - g * x,
                other => panic!("gauss_vp has no {other} output"),
            }
        })
        .collect()
}

/// `gauss_flow` (README): the same Gaussian on `z = (1 − t) x + t ε`,
/// output `v̂ = ε̂ − x̂ = dz/dt`.
pub fn gauss_flow(t: f64, mu: &[f64], s: f64, z: &[f64]) -> Vec<f64> {
    let (a, g) = (1.0 - t, t);
    let k = a * s * s / (a * a * s * s + g * g);
    z.iter()
        .zip(mu)
        .map(|(&z, &m)| {
            let x = m + k * (z - a * m);
            let e = (z - a * x) / g;
            e - x
        })
        .collect()
}

/// k-diffusion's Gaussian denoiser `D(x, σ) = x s²/(s² + σ²)`.
pub fn kd_gauss(x: &[f64], sigma: f64, s: f64) -> Vec<f64> {
    x.iter()
        .map(|&v| v * s * s / (s * s + sigma * sigma))
        .collect()
}

/// The 2-D mixture of the k-diffusion cases.
#[derive(Debug, Clone)]
pub struct Gmm2 {
    /// Weights `w_k`.
    pub w: Vec<f64>,
    /// Means `m_k` (2-D).
    pub m: Vec<[f64; 2]>,
    /// Standard deviations `s_k`.
    pub s: Vec<f64>,
}

impl Gmm2 {
    /// From a case's `model`.
    pub fn of(case: &Case) -> Gmm2 {
        Gmm2::from_model(case.at("model"))
    }

    /// From a `kd_gmm2d` model object (`w`, `m`, `s`).
    pub fn from_model(m: &Json) -> Gmm2 {
        Gmm2 {
            w: m.at("w").f64_list(),
            m: m.at("m")
                .as_arr()
                .iter()
                .map(|r| {
                    let v = r.f64_list();
                    [v[0], v[1]]
                })
                .collect(),
            s: m.at("s").f64_list(),
        }
    }

    /// `D(x, σ) = Σ r_k (m_k + s_k²/v_k (x − m_k))`,
    /// `r = softmax(log w_k − |x − m_k|²/(2 v_k) − log v_k)`, `v_k = s_k² + σ²`,
    /// for rows of 2.
    pub fn denoise(&self, x: &[f64], sigma: f64) -> Vec<f64> {
        let mut out = Vec::with_capacity(x.len());
        for p in x.chunks(2) {
            let logits: Vec<f64> = (0..self.w.len())
                .map(|k| {
                    let v = self.s[k] * self.s[k] + sigma * sigma;
                    let d2 = (p[0] - self.m[k][0]).powi(2) + (p[1] - self.m[k][1]).powi(2);
                    self.w[k].ln() - d2 / (2.0 * v) - v.ln()
                })
                .collect();
            let mx = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = logits.iter().map(|l| (l - mx).exp()).collect();
            let tot: f64 = e.iter().sum();
            let mut d = [0.0; 2];
            for ((ek, mk), sk) in e.iter().zip(&self.m).zip(&self.s) {
                let v = sk * sk + sigma * sigma;
                let r = ek / tot;
                for (j, dj) in d.iter_mut().enumerate() {
                    *dj += r * (mk[j] + sk * sk / v * (p[j] - mk[j]));
                }
            }
            out.extend(d);
        }
        out
    }
}

/// k-diffusion's denoiser `D(x, σ)` of a case's model: the Gaussian
/// (`kd_gauss`, [`kd_gauss`]) or the 2-D mixture (`kd_gmm2d`, [`Gmm2`]).
pub enum Denoiser {
    /// `N(0, s²)` data.
    Gauss(f64),
    /// The two-component mixture.
    Gmm(Gmm2),
}

impl Denoiser {
    /// From a model object (its `kind` and parameters).
    pub fn of(m: &Json) -> Denoiser {
        match m.at("kind").as_str() {
            "kd_gauss" => Denoiser::Gauss(m.at("s").as_f64()),
            "kd_gmm2d" => Denoiser::Gmm(Gmm2::from_model(m)),
            other => panic!("unknown model {other}"),
        }
    }

    /// `D(x, σ)`.
    pub fn d(&self, x: &[f64], sigma: f64) -> Vec<f64> {
        match self {
            Denoiser::Gauss(s) => kd_gauss(x, sigma, *s),
            Denoiser::Gmm(g) => g.denoise(x, sigma),
        }
    }
}

/// The `[B, D]` of a case's `inputs.x_T` (a flat list is one sample) and
/// its recorded noise, one `B·D` block per draw (none if it has no
/// `inputs.noise`).
pub fn shape_and_noise(case: &Case) -> (Shape, Vec<Vec<f64>>) {
    let xt = case.array("inputs.x_T");
    let shape = if xt.shape.len() == 2 {
        Shape::new(xt.shape[0], xt.shape[1])
    } else {
        Shape::new(1, xt.len())
    };
    let noise = match case.opt("inputs.noise") {
        Some(n) => n
            .array()
            .f64s()
            .chunks(shape.batch * shape.dim)
            .map(<[f64]>::to_vec)
            .collect(),
        None => vec![],
    };
    (shape, noise)
}

/// Uploads f64 values as an f32 tensor `[B, D]` on the engine.
pub fn upload(engine: &Engine, shape: Shape, v: &[f64]) -> Tensor {
    upload_as(engine, shape, v, DType::F32)
}

/// Uploads f64 values as a tensor of `dtype`.
pub fn upload_as(engine: &Engine, shape: Shape, v: &[f64], dtype: DType) -> Tensor {
    let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    engine
        .upload(&HostTensor::from_f32(shape, &f, dtype).unwrap())
        .unwrap()
}

/// Downloads a tensor as f64.
pub fn download(engine: &Engine, t: &Tensor) -> Vec<f64> {
    engine.download(&t.view()).unwrap().to_f64_vec()
}

/// The largest `|got − want| / scale(i)`, with its index; panics on a
/// non-finite value or a length mismatch.
pub fn max_err(got: &[f64], want: &[f64], scale: impl Fn(usize) -> f64) -> (f64, usize) {
    assert_eq!(got.len(), want.len(), "lengths");
    let mut worst = (0.0, 0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "element {i} is {g}");
        let e = (g - w).abs() / scale(i);
        if e > worst.0 {
            worst = (e, i);
        }
    }
    worst
}

/// Asserts `max |got − want| / scale ≤ tol` and prints the table line.
pub fn check(
    case: &str,
    path: &str,
    what: &str,
    got: &[f64],
    want: &[f64],
    scale: impl Fn(usize) -> f64,
    tol: f64,
) -> f64 {
    let (e, i) = max_err(got, want, scale);
    eprintln!("golden {case} {path} {what}: max err {e:.2e} (tol {tol:.1e})");
    assert!(
        e <= tol,
        "{case} {path} {what}: element {i}: got {} want {} (err {e:e} > tol {tol:e})",
        got[i],
        want[i]
    );
    e
}

/// Absolute error (scale 1).
pub fn abs(_: usize) -> f64 {
    1.0
}
