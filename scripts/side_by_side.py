#!/usr/bin/env python3
"""diffusers scheduler steps on PyTorch (CPU) against `gaussflow bench`, in one run.

Times the real diffusers `step()` calls (and the training arithmetic of
`train_text_to_image.py`) on torch CPU tensors with a fixed thread count,
runs `gaussflow bench --backend cpu --dtypes f32 --json` for the fused ops
that do the same work, and prints one markdown table of speed-ups
(diffusers median / gaussflow median) per size, plus both medians.

Pinned versions: scripts/goldens/requirements.txt (torch 2.15.0,
diffusers 0.42.1). Set up and run:

    python3 -m venv target/sbs-venv
    target/sbs-venv/bin/pip install -r scripts/goldens/requirements.txt
    cargo build --release
    target/sbs-venv/bin/python scripts/side_by_side.py [--threads 2] [--sizes 65536,1048576,16777216]

What is compared (same f32 storage, same element count):

| diffusers (torch eager)                         | gaussflow op                  |
|-------------------------------------------------|-------------------------------|
| DDIMScheduler.step, η = 0                       | step/ddim                     |
| DDPMScheduler.step (noise drawn)                | step/ddpm (Philox in kernel)  |
| DPMSolverMultistepScheduler.step (2M, ε)        | step/dpm++2m                  |
| EulerDiscreteScheduler.step                     | step/ddim (the same fused row)|
| FlowMatchEulerDiscreteScheduler.step            | step/flow-euler               |
| LMSDiscreteScheduler.step, order 4              | step/lms4                     |
| PNDMScheduler.step (PLMS, skip_prk_steps)       | step/plms                     |
| add_noise + get_velocity + min-SNR MSE + backward | noise/buffer + loss/read    |

The gaussflow side of "training math" reads stored noise (as the torch side
does: `noise` is drawn once by the loop, outside what is timed) and sums the
two launches' medians.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
import diffusers
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
)

SAMPLE = 65536  # one SD latent: 4 × 128 × 128


def shape_for(n):
    """gaussflow's bench shape: [n / 65536, 4, 128, 128] or [1, n]."""
    if n >= SAMPLE and n % SAMPLE == 0:
        return (n // SAMPLE, 4, 128, 128)
    return (1, n)


def median_time(fn, target_s, min_reps=5, max_reps=2000):
    """Median seconds of `fn()` after a warm-up, about `target_s` of reps."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    reps = int(min(max(target_s / one, min_reps), max_reps))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def sd_betas():
    return dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def torch_rows(n, target_s):
    """Median seconds per diffusers call, by row name, at n elements."""
    g = torch.Generator().manual_seed(0)
    shape = shape_for(n)
    x = torch.randn(shape, generator=g)
    eps = torch.randn(shape, generator=g)
    out = {}

    ddim = DDIMScheduler(**sd_betas())
    ddim.set_timesteps(50)
    t = ddim.timesteps[25]
    out["DDIM η=0"] = median_time(lambda: ddim.step(eps, t, x, eta=0.0), target_s)

    ddpm = DDPMScheduler(**sd_betas())
    ddpm.set_timesteps(50)
    t = ddpm.timesteps[25]
    out["DDPM (with noise)"] = median_time(lambda: ddpm.step(eps, t, x, generator=g), target_s)

    # Stateful schedulers advance their step index: give them enough steps
    # for every repetition and warm up the history first.
    many = 999

    def stepping(sched, warm=4, **kw):
        sched.set_timesteps(many, **kw)
        # The timed call is `step` alone (a pipeline scales the model input
        # once per step either way); silences the Euler-family warning.
        sched.is_scale_input_called = True
        ts = iter(list(sched.timesteps))
        for _ in range(warm):
            sched.step(eps, next(ts), x)

        def f():
            sched.step(eps, next(ts), x)

        return f

    dpm = DPMSolverMultistepScheduler(**sd_betas(), algorithm_type="dpmsolver++", solver_order=2)
    out["DPM-Solver++(2M)"] = median_time(stepping(dpm), target_s, max_reps=many - 10)

    euler = EulerDiscreteScheduler(**sd_betas())
    out["Euler"] = median_time(stepping(euler), target_s, max_reps=many - 10)

    flow = FlowMatchEulerDiscreteScheduler(shift=3.0)
    out["FlowMatchEuler"] = median_time(stepping(flow), target_s, max_reps=many - 10)

    lms = LMSDiscreteScheduler(**sd_betas())
    lms.set_timesteps(many)
    lms.is_scale_input_called = True
    ts = iter(list(lms.timesteps))
    for _ in range(4):
        lms.step(eps, next(ts), x, order=4)
    out["LMS order 4"] = median_time(
        lambda: lms.step(eps, next(ts), x, order=4), target_s, max_reps=many - 10
    )

    pndm = PNDMScheduler(**sd_betas(), skip_prk_steps=True)
    out["PNDM (PLMS)"] = median_time(stepping(pndm), target_s, max_reps=many - 10)

    # train_text_to_image.py: noisy = add_noise, target = get_velocity,
    # min-SNR-γ weighted MSE per sample, mean, backward (the gradient of
    # the loss with respect to the model output).
    train = DDPMScheduler(**sd_betas(), prediction_type="v_prediction")
    b = shape[0]
    timesteps = torch.randint(0, 1000, (b,), generator=g)
    noise = torch.randn(shape, generator=g)
    pred = torch.randn(shape, generator=g, requires_grad=True)
    ac = train.alphas_cumprod[timesteps]
    snr = ac / (1 - ac)
    weights = torch.clamp(snr, max=5.0) / (snr + 1)
    dims = list(range(1, len(shape)))

    def training():
        noisy = train.add_noise(x, noise, timesteps)
        target = train.get_velocity(x, noise, timesteps)
        loss = torch.nn.functional.mse_loss(pred, target, reduction="none")
        loss = (loss.mean(dim=dims) * weights).mean()
        pred.grad = None
        loss.backward()
        return noisy

    out["training math"] = median_time(training, target_s)
    return out


ROWS = [
    ("DDIM η=0", ["step/ddim"]),
    ("DDPM (with noise)", ["step/ddpm"]),
    ("DPM-Solver++(2M)", ["step/dpm++2m"]),
    ("Euler", ["step/ddim"]),
    ("FlowMatchEuler", ["step/flow-euler"]),
    ("LMS order 4", ["step/lms4"]),
    ("PNDM (PLMS)", ["step/plms"]),
    ("training math", ["noise/buffer", "loss/read"]),
]


# The bench JSON names an op by its Rust variant.
VARIANT = {
    "step/ddim": "Ddim",
    "step/ddpm": "Ddpm",
    "step/dpm++2m": "DpmSolver2M",
    "step/flow-euler": "FlowEuler",
    "step/lms4": "Lms4",
    "step/plms": "Plms",
    "noise/buffer": "NoiseBuffer",
    "loss/read": "LossRead",
}


def gaussflow_rows(binary, sizes, quick):
    ops = sorted({op for _, ops in ROWS for op in ops})
    cmd = [
        binary, "bench", "--backend", "cpu", "--dtypes", "f32", "--json",
        "--ops", ",".join(ops), "--sizes", ",".join(map(str, sizes)),
    ]
    if quick:
        cmd.append("--quick")
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    data = json.loads(res.stdout)
    cpu = data["backends"][0]
    name = {v: k for k, v in VARIANT.items()}
    times = {(name[r["op"]], r["size"]): r["median_s"] for r in cpu["rows"]}
    return times, cpu.get("isa") or {}


def size_name(n):
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20}M"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10}K"
    return str(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gaussflow", default="target/release/gaussflow")
    ap.add_argument("--sizes", default="65536,1048576,16777216")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--quick", action="store_true", help="60 ms per measurement instead of 400 ms")
    ap.add_argument("--json", help="also write every median to this file")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    target_s = 0.06 if args.quick else 0.4

    torch.set_num_threads(args.threads)
    os.environ.setdefault("RAYON_NUM_THREADS", str(args.threads))
    gf, isa = gaussflow_rows(args.gaussflow, sizes, args.quick)
    th = {n: torch_rows(n, target_s) for n in sizes}

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(
        f"machine: {cpu}, {os.cpu_count()} cores; torch {torch.__version__} "
        f"({args.threads} threads), diffusers {diffusers.__version__}; gaussflow cpu kernels: "
        f"{isa.get('kernels', '?')} (available: {', '.join(isa.get('available', []))}); f32\n"
    )
    head = "| diffusers step on torch | gaussflow | " + " | ".join(size_name(n) for n in sizes) + " |"
    print(head)
    print("|---|---|" + "---:|" * len(sizes))
    record = []
    for name, ops in ROWS:
        cells = []
        for n in sizes:
            g = sum(gf[(op, n)] for op in ops)
            t = th[n][name]
            cells.append(f"{t / g:.1f}× ({t * 1e6:.0f} / {g * 1e6:.0f} µs)")
            record.append(dict(row=name, ops=ops, size=n, torch_s=t, gaussflow_s=g))
        print(f"| {name} | {' + '.join(ops)} | " + " | ".join(cells) + " |")
    print("\ncells: speed-up (diffusers median / gaussflow median), then both medians in µs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(cpu=cpu, threads=args.threads, isa=isa, rows=record), f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
