//! A model trained on real data through gaussflow: the UCI digits (8×8
//! images), a candle MLP, and gaussflow's fused kernels for everything
//! around the network.
//!
//! Two models are trained, one per family of the seed paper:
//!
//! * **flow matching**: the flow schedule `z = (1 − t) x + t ε`, the network
//!   predicting the velocity `ε − x`;
//! * **diffusion**: the VP cosine schedule, the network predicting
//!   `v = α ε − σ x`.
//!
//! A training step: gaussflow draws the noise in its kernel and writes
//! `z_t` (fused noising); candle runs the network; gaussflow's fused loss
//! kernel rebuilds the target from the same Philox noise and writes the
//! per-sample loss and its gradient with respect to the network output;
//! candle backpropagates that gradient (`Σ out · grad / B`) and steps AdamW.
//! Tensors cross between the two without a copy: `z` and the gradient are
//! moved into candle tensors, the network output is borrowed in place
//! (`gaussflow::interop::candle`).
//!
//! Then each model is sampled with DDIM, flow Euler, DPM-Solver++(2M) and
//! DDPM (stochastic) — each model also with the other family's samplers,
//! which the exact diffusion ⇄ flow map makes equally valid — and judged by
//! a nearest-neighbour vote over the training images.
//!
//! `cargo run --release --example digits` (a few minutes on 2 cores);
//! `-- --short` for the quick run CI makes; `-- --out DIR` for the PNGs
//! (default `target/digits`).

mod data;
mod model;
mod png;
mod quality;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use gaussflow::interop::candle::{borrow, into_candle};
use gaussflow::sampler::{
    Ddim, DdimOptions, DpmSolverPP2M, DpmppOptions, FlowEuler, Sampler, Steps,
};
use gaussflow::sampling::{Driver, RunNoise, prior_sample};
use gaussflow::schedule::{Flow, VpCosine};
use gaussflow::weighting::{Objective, TimeDistribution, Weighting};
use gaussflow::{
    Batch, DType, Engine, HostData, HostTensor, Prediction, Reduction, SampleIds, Schedule, Shape,
    Tensor,
};

use data::{Digits, PIXELS, SplitMix};
use model::Denoiser;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// How long and how large a run is.
struct Config {
    train_steps: usize,
    batch: usize,
    samples: usize,
    sample_steps: usize,
    out: PathBuf,
}

impl Config {
    fn from_args() -> AnyResult<Config> {
        let mut cfg = Config {
            train_steps: 8000,
            batch: 256,
            samples: 500,
            sample_steps: 25,
            out: PathBuf::from("target/digits"),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--short" => {
                    cfg.train_steps = 150;
                    cfg.samples = 100;
                    cfg.sample_steps = 10;
                }
                "--steps" => {
                    cfg.train_steps = args.next().ok_or("--steps needs a number")?.parse()?;
                }
                "--out" => cfg.out = PathBuf::from(args.next().ok_or("--out needs a folder")?),
                other => {
                    return Err(format!(
                        "unknown argument {other:?} (use --short, --steps N, --out DIR)"
                    )
                    .into());
                }
            }
        }
        Ok(cfg)
    }
}

/// One family of the seed paper: a schedule and what its network predicts.
struct Family {
    name: &'static str,
    schedule: Arc<dyn Schedule>,
    prediction: Prediction,
}

/// Where a training step's time went.
#[derive(Default)]
struct StepTimes {
    data: Duration,
    gaussflow: Duration,
    model: Duration,
}

fn main() -> AnyResult<()> {
    let cfg = Config::from_args()?;
    std::fs::create_dir_all(&cfg.out).map_err(|e| format!("{}: {e}", cfg.out.display()))?;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/digits/data/digits.csv.gz");
    let (train, held_out) = data::load(&path, 297)?;
    let engine = Engine::cpu();
    println!(
        "digits: {} training and {} held-out images of 8×8; gaussflow on {}",
        train.len(),
        held_out.len(),
        engine.describe()
    );

    let families = [
        Family {
            name: "flow",
            schedule: Arc::new(Flow),
            prediction: Prediction::Velocity,
        },
        Family {
            name: "diffusion",
            schedule: Arc::new(VpCosine),
            prediction: Prediction::V,
        },
    ];
    let mut rows = Vec::new();
    let held_q = quality::judge(&held_out.x, &train);
    rows.push(("held-out data".to_string(), "-".to_string(), held_q));
    let (w, h, px) = png::digit_grid(&held_out.x[..100 * PIXELS], 10, 3);
    png::write_gray(&cfg.out.join("data-held-out.png"), w, h, &px)?;

    for (f, family) in families.iter().enumerate() {
        let started = Instant::now();
        let (net, times) = train_model(&engine, family, &train, &cfg, 100 + f as u64)?;
        let per = |d: Duration| d.as_secs_f64() * 1e3 / cfg.train_steps as f64;
        println!(
            "{}: {} steps of batch {} in {:.1} s; per step: model {:.2} ms, gaussflow {:.3} ms, \
             data {:.3} ms, copies none",
            family.name,
            cfg.train_steps,
            cfg.batch,
            started.elapsed().as_secs_f64(),
            per(times.model),
            per(times.gaussflow),
            per(times.data),
        );
        for sampler in ["ddim", "flow_euler", "dpmpp_2m", "ddpm"] {
            let x0 = sample(&engine, &net, family, sampler, &cfg, 7)?;
            let file = format!("{}-{}.png", family.name, sampler);
            let (w, h, px) = png::digit_grid(&x0[..100.min(cfg.samples) * PIXELS], 10, 3);
            png::write_gray(&cfg.out.join(&file), w, h, &px)?;
            rows.push((
                format!("{} model", family.name),
                sampler.to_string(),
                quality::judge(&x0, &train),
            ));
        }
    }
    let noise: Vec<f32> = {
        let z = prior_sample(
            &engine,
            Shape::new(cfg.samples, PIXELS),
            DType::F32,
            1.0,
            7,
            SampleIds::Offset(0),
        )?;
        z.into_host()?.to_f32_vec()
    };
    rows.push((
        "prior noise".into(),
        "-".into(),
        quality::judge(&noise, &train),
    ));

    println!(
        "\nquality of {} samples ({} steps each), judged by a {}-NN vote over the training set:",
        cfg.samples,
        cfg.sample_steps,
        quality::K
    );
    println!(
        "| model | sampler | confident (≥{}/{} votes) | class balance | NN distance |",
        quality::CONFIDENT,
        quality::K
    );
    println!("|---|---|---:|---:|---:|");
    for (model, sampler, q) in &rows {
        println!(
            "| {model} | {sampler} | {:.1}% | {:.3} | {:.3} |",
            100.0 * q.confident,
            q.balance,
            q.nn_distance
        );
    }
    println!(
        "\npictures: {}/{{data-held-out,flow-*,diffusion-*}}.png",
        cfg.out.display()
    );
    Ok(())
}

/// Trains one family's denoiser with gaussflow's fused noising and loss.
fn train_model(
    engine: &Engine,
    family: &Family,
    train: &Digits,
    cfg: &Config,
    seed: u64,
) -> AnyResult<(Denoiser, StepTimes)> {
    let vars = VarMap::new();
    let net = Denoiser::new(&vars)?;
    let mut opt = AdamW::new(
        vars.all_vars(),
        ParamsAdamW {
            lr: 1e-3,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let p = family.prediction;
    let objective = Objective::new(p, Weighting::Simple(p), TimeDistribution::Uniform)?;
    let schedule = &*family.schedule;
    let shape = Shape::new(cfg.batch, PIXELS);
    // Batch indices only; times and noise are gaussflow's Philox.
    let mut rng = SplitMix(seed);
    let mut times = StepTimes::default();
    let bar = indicatif::ProgressBar::new(cfg.train_steps as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {pos}/{len} {msg} ({eta} left)",
        )?
        .progress_chars("=> "),
    );
    bar.set_prefix(family.name);
    let mut mean_loss = 0.0;
    for step in 0..cfg.train_steps {
        let clock = Instant::now();
        let mut x = Vec::with_capacity(shape.len()?);
        for _ in 0..cfg.batch {
            x.extend_from_slice(train.image((rng.next() % train.len() as u64) as usize));
        }
        // Times from Philox (seed, step, sample id); rows built once; one
        // noise key shared by the noising and the target rebuild.
        let ids: Vec<u32> = (0..cfg.batch as u32).collect();
        let batch = Batch::new(
            &objective,
            schedule,
            seed,
            step as u32,
            SampleIds::Explicit(&ids),
            shape,
        )?;
        let x = Tensor::from_host(HostTensor::new(shape, HostData::F32(x))?);
        let t_in = model::times(batch.times())?;
        times.data += clock.elapsed();

        let clock = Instant::now();
        let mut z = engine.alloc(shape, DType::F32)?;
        batch.noise(engine, x.view(), z.view_mut(), None)?;
        times.gaussflow += clock.elapsed();

        let clock = Instant::now();
        let out = net.forward(&into_candle(z)?, &t_in)?;
        times.model += clock.elapsed();

        let clock = Instant::now();
        let mut loss = engine.alloc(Shape::new(cfg.batch, 1), DType::F32)?;
        let mut grad = engine.alloc(shape, DType::F32)?;
        {
            let pred = borrow(&out)?;
            // Mean over the batch: entry b is l_b / B, the gradient the mean's.
            batch.loss(
                engine,
                pred.view()?,
                x.view(),
                loss.view_mut(),
                Some(grad.view_mut()),
                Reduction::Mean,
            )?;
        }
        times.gaussflow += clock.elapsed();

        let clock = Instant::now();
        // ∂/∂θ of the batch-mean loss: the kernel's gradient with respect
        // to the network output, backpropagated through the network.
        let surrogate = (out * into_candle(grad)?)?.sum_all()?;
        opt.backward_step(&surrogate)?;
        times.model += clock.elapsed();

        let losses = loss.into_host()?.to_f32_vec();
        let batch_loss = losses.iter().map(|&l| f64::from(l)).sum::<f64>();
        mean_loss = if step == 0 {
            batch_loss
        } else {
            0.98 * mean_loss + 0.02 * batch_loss
        };
        if step % 25 == 0 {
            bar.set_message(format!("loss {mean_loss:.4}"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("{}: final loss (running mean) {mean_loss:.4}", family.name);
    Ok((net, times))
}

/// `cfg.samples` samples of a model, drawn with the named sampler.
fn sample(
    engine: &Engine,
    net: &Denoiser,
    family: &Family,
    sampler: &str,
    cfg: &Config,
    seed: u64,
) -> AnyResult<Vec<f32>> {
    let (schedule, p) = (family.schedule.clone(), family.prediction);
    let grid = gaussflow::grid::uniform_t(cfg.sample_steps, 1.0, 0.0)?;
    let steps = Steps::from_grid(&grid.t)?;
    let sampler: Box<dyn Sampler> = match sampler {
        "ddim" => Box::new(Ddim::new(schedule, p, steps, DdimOptions::ddim())?),
        "ddpm" => Box::new(Ddim::new(schedule, p, steps, DdimOptions::ddpm())?),
        "flow_euler" => Box::new(FlowEuler::new(schedule, p, steps)),
        "dpmpp_2m" => Box::new(DpmSolverPP2M::new(
            schedule,
            p,
            steps,
            DpmppOptions::default(),
        )),
        other => return Err(format!("no sampler {other}").into()),
    };
    let driver = Driver::new(engine, sampler.plan()?)?;
    let shape = Shape::new(cfg.samples, PIXELS);
    // σ = 1 at t = 1 for both schedules: the prior is N(0, I).
    let z1 = prior_sample(engine, shape, DType::F32, 1.0, seed, SampleIds::Offset(0))?;
    let mut run = driver.start(
        &z1,
        RunNoise::Philox {
            seed,
            ids: SampleIds::Offset(0),
        },
    )?;
    while !run.is_done() {
        // The run owns the state; candle wants a tensor of its own: the one
        // copy per stage. The output is read where candle wrote it.
        let z = run.state().host_slice()?.typed::<f32>()?.to_vec();
        let z =
            candle_core::Tensor::from_vec(z, (shape.batch, shape.dim), &candle_core::Device::Cpu)
                .map_err(gaussflow::Error::model)?;
        let t = model::times(run.times()?).map_err(gaussflow::Error::model)?;
        let out = net.forward(&z, &t).map_err(gaussflow::Error::model)?;
        run.advance_with(borrow(&out)?.view()?, None)?;
    }
    let x0 = run.finish()?;
    Ok(x0.into_host()?.to_f32_vec())
}
