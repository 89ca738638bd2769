#!/usr/bin/env python3
"""The fused kernels' updates as PyTorch eager ops, the way diffusers'
schedulers write them, timed on the GPU; printed beside gaussflow's CUDA
bench numbers when given (--gaussflow-json, records with op, dtype, batch,
dim and seconds or us).

* noise: `add_noise` (DDPMScheduler): sqrt(ᾱ)·x + sqrt(1−ᾱ)·ε with
  ε = randn_like, plus the v-target α·ε − σ·x (as a training loop does);
* step: DDIMScheduler.step with classifier-free guidance (η = 1, so with
  noise): guidance, x̂, ε̂, clip, direction, renoise: one kernel per op;
* loss: per-sample weighted MSE and its gradient (autograd).

Bytes are the floor the fused kernel moves (each input read once, each
output written once); the copy column is a device-to-device copy of that
many bytes, the bandwidth ceiling.
"""

import argparse
import json
import math

import torch

SIZES = [(1, 4 * 64 * 64), (8, 4 * 128 * 128), (16, 16 * 128 * 128), (1, 1 << 24)]
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def timed(fn, reps=50):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3)
    times.sort()
    return times[len(times) // 2]  # median, µs


def cases(batch, dim, dt):
    dev = "cuda"
    x = torch.randn(batch, dim, device=dev, dtype=dt)
    z = torch.randn_like(x)
    cond, uncond = torch.randn_like(x), torch.randn_like(x)
    pred, target = torch.randn_like(x), torch.randn_like(x)
    abar = torch.rand(batch, 1, device=dev) * 0.98 + 0.01
    abar_prev = torch.clamp(abar + 0.01, max=0.999)
    w = torch.rand(batch, device=dev)
    gs, eta = 7.5, 1.0
    esize = x.element_size()

    def noise():
        eps = torch.randn_like(x)
        noisy = abar.sqrt().to(dt) * x + (1 - abar).sqrt().to(dt) * eps
        v = abar.sqrt().to(dt) * eps - (1 - abar).sqrt().to(dt) * x
        return noisy, v

    def step():
        eps = uncond + gs * (cond - uncond)
        x0 = (z - (1 - abar).sqrt().to(dt) * eps) / abar.sqrt().to(dt)
        x0 = x0.clamp(-1, 1)
        eps = (z - abar.sqrt().to(dt) * x0) / (1 - abar).sqrt().to(dt)
        var = (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)
        std = (eta * var.sqrt()).to(dt)
        direction = (1 - abar_prev - std.float() ** 2).clamp(min=0).sqrt().to(dt) * eps
        prev = abar_prev.sqrt().to(dt) * x0 + direction
        return prev + std * torch.randn_like(x)

    p = pred.clone().requires_grad_(True)

    def loss():
        l = ((p.float() - target.float()) ** 2).mean(dim=1) * w
        (g,) = torch.autograd.grad(l.sum(), p)
        return l, g

    copy_src = torch.empty(1, device=dev)
    return {
        # (fn, bytes the fused kernel moves)
        "noise": (noise, 3 * batch * dim * esize),          # x in; z, target out
        "step": (step, 5 * batch * dim * esize),            # z, cond, uncond in; out, x̂ out
        "loss": (loss, 3 * batch * dim * esize),            # pred, target in; grad out
    }, copy_src


def copy_us(nbytes):
    a = torch.empty(nbytes // 2, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    return timed(lambda: b.copy_(a)) if nbytes >= 2 else float("nan")


def load_gaussflow(path):
    if not path:
        return {}
    try:
        data = json.load(open(path))
    except Exception as e:  # a format this script does not know: show nothing rather than fail
        print(f"(could not read {path}: {e})")
        return {}
    recs = data if isinstance(data, list) else data.get("results", data.get("rows", []))
    out = {}
    for r in recs if isinstance(recs, list) else []:
        try:
            us = r["us"] if "us" in r else r.get("time_us", r.get("seconds", math.nan) * 1e6)
            out[(r["op"], r["dtype"], int(r["batch"]), int(r["dim"]))] = float(us)
        except (KeyError, TypeError, ValueError):
            continue
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gaussflow-json")
    args = ap.parse_args()
    gf = load_gaussflow(args.gaussflow_json)
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    print(f"{'op':<6} {'dtype':<5} {'B':>3} {'D':>9} {'bytes':>10} {'copy µs':>9} "
          f"{'torch µs':>9} {'torch GB/s':>10} {'gaussflow µs':>12} {'speedup':>8}")
    for dname, dt in DTYPES.items():
        for batch, dim in SIZES:
            ops, _ = cases(batch, dim, dt)
            for op, (fn, nbytes) in ops.items():
                t = timed(fn)
                c = copy_us(nbytes)
                g = gf.get((op, dname, batch, dim), math.nan)
                sp = t / g if g == g else math.nan
                print(f"{op:<6} {dname:<5} {batch:>3} {dim:>9} {nbytes:>10} {c:>9.1f} {t:>9.1f} "
                      f"{nbytes / t / 1e3:>10.1f} {g:>12.1f} {sp:>8.2f}")
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
