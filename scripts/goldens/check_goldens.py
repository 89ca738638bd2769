"""Replays the sampling-loop goldens with independent numpy transcriptions, from the
recorded data alone (x_T, sigmas, per-step scalars, recorded noise), and checks the
final samples: proof that what the files record is enough to re-run every stochastic
loop. Covers all of kdiffusion_samplers.json (float64, to 1e-12) and the stochastic
and EDM / Euler loops of diffusers_samplers.json (a float64 replay of a float32 loop,
to 5e-6 absolute, the full-loop tolerance of tests/data/README.md).

Usage: python scripts/goldens/check_goldens.py   (exit status 1 on any mismatch)
"""

import json
import math
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"


def A(a):
    return np.array(a["data"], dtype=np.float64).reshape(a["shape"])


# ---------------------------------------------------------------- k-diffusion


def kd_gauss(x, s):
    return x * 0.25 / (0.25 + s * s)


def kd_gmm(x, s, M):
    w, m, sd = M["w"], np.array(M["m"]), M["s"]
    lg, parts = [], []
    for k in range(len(w)):
        v = sd[k] ** 2 + s * s
        lg.append(math.log(w[k]) - ((x - m[k]) ** 2).sum(-1) / (2 * v) - math.log(v))
        parts.append(m[k] + sd[k] ** 2 / v * (x - m[k]))
    lg = np.stack(lg, -1)
    r = np.exp(lg - lg.max(-1, keepdims=True))
    r /= r.sum(-1, keepdims=True)
    return sum(r[..., k : k + 1] * p for k, p in enumerate(parts))


def ancestral(a, b):
    su = min(b, math.sqrt(b * b * (a * a - b * b) / (a * a)))
    return math.sqrt(b * b - su * su), su


def replay_kd(c):
    M = c["model"]
    D = (lambda x, s: kd_gauss(x, s)) if M["kind"] == "kd_gauss" else (lambda x, s: kd_gmm(x, s, M))
    x = A(c["inputs"]["x_T"])
    sig = A(c["inputs"]["sigmas"])
    f = c["function"]
    N = A(c["inputs"]["noise"]) if "noise" in c["inputs"] else None
    k = [0]

    def nz():
        k[0] += 1
        return N[k[0] - 1]

    ds, old, hl = [], None, None
    d1 = d2 = h1 = h2 = None
    for i in range(len(sig) - 1):
        s0, s1 = sig[i], sig[i + 1]
        den = D(x, s0)
        if f.startswith("sample_lms"):
            ds = (ds + [(x - den) / s0])[-4:]
            x = x + sum(cf * q for cf, q in zip(c["steps"][i]["lms_coeffs"], reversed(ds)))
        elif f.startswith("sample_dpm_2("):
            d = (x - den) / s0
            if s1 == 0:
                x = x + d * (s1 - s0)
            else:
                sm = math.exp(0.5 * (math.log(s0) + math.log(s1)))
                x2 = x + d * (sm - s0)
                x = x + (x2 - D(x2, sm)) / sm * (s1 - s0)
        elif f.startswith("sample_dpm_2_ancestral"):
            sd, su = ancestral(s0, s1)
            d = (x - den) / s0
            if sd == 0:
                x = x + d * (sd - s0)
            else:
                sm = math.exp(0.5 * (math.log(s0) + math.log(sd)))
                x2 = x + d * (sm - s0)
                x = x + (x2 - D(x2, sm)) / sm * (sd - s0) + nz() * su
        elif f.startswith("sample_dpmpp_2s_ancestral"):
            sd, su = ancestral(s0, s1)
            if sd == 0:
                x = x + (x - den) / s0 * (sd - s0)
            else:
                t, tn = -math.log(s0), -math.log(sd)
                h = tn - t
                s = t + h / 2
                x2 = math.exp(-s) / math.exp(-t) * x - math.expm1(-h / 2) * den
                x = math.exp(-tn) / math.exp(-t) * x - math.expm1(-h) * D(x2, math.exp(-s))
            if s1 > 0:
                x = x + nz() * su
        elif f.startswith("sample_dpmpp_sde"):
            if s1 == 0:
                x = x + (x - den) / s0 * (s1 - s0)
            else:
                t, tn = -math.log(s0), -math.log(s1)
                h = tn - t
                s = t + h / 2
                sd, su = ancestral(math.exp(-t), math.exp(-s))
                s_ = -math.log(sd)
                x2 = math.exp(-s_) / math.exp(-t) * x - math.expm1(t - s_) * den + nz() * su
                den2 = D(x2, math.exp(-s))
                sd, su = ancestral(math.exp(-t), math.exp(-tn))
                tn_ = -math.log(sd)
                x = math.exp(-tn_) / math.exp(-t) * x - math.expm1(t - tn_) * den2 + nz() * su
        elif f.startswith("sample_dpmpp_2m_sde"):
            heun = "heun" in f
            if s1 == 0:
                x = den
            else:
                h = math.log(s0) - math.log(s1)
                x = s1 / s0 * math.exp(-h) * x - math.expm1(-2 * h) * den
                if old is not None:
                    r = hl / h
                    phi = -math.expm1(-2 * h)
                    coef = (phi / (-2 * h) + 1) if heun else 0.5 * phi
                    x = x + coef / r * (den - old)
                x = x + nz() * s1 * math.sqrt(-math.expm1(-2 * h))
                hl = h
            old = den
        elif f.startswith("sample_dpmpp_3m_sde"):
            if s1 == 0:
                x = den
            else:
                h = math.log(s0) - math.log(s1)
                he = 2 * h
                x = math.exp(-he) * x - math.expm1(-he) * den
                p2 = math.expm1(-he) / he + 1
                if h2 is not None:
                    r0, r1 = h1 / h, h2 / h
                    a0, a1 = (den - d1) / r0, (d1 - d2) / r1
                    x = x + p2 * (a0 + (a0 - a1) * r0 / (r0 + r1)) - (p2 / he - 0.5) * (a0 - a1) / (r0 + r1)
                elif h1 is not None:
                    x = x + p2 * (den - d1) / (h1 / h)
                x = x + nz() * s1 * math.sqrt(-math.expm1(-2 * h))
            d1, d2 = den, d1
            h1, h2 = (h if s1 > 0 else None), h1
        else:
            raise ValueError(f)
    used = k[0] == (0 if N is None else N.shape[0])
    return np.abs(x - A(c["outputs"]["final_sample"])).max(), used


# ---------------------------------------------------------------- diffusers


def gauss_vp(z, ab, mu, pt):
    a, g = math.sqrt(ab), math.sqrt(1 - ab)
    x0 = mu + a * 0.25 / (ab * 0.25 + 1 - ab) * (z - a * mu)
    e = (z - a * x0) / g
    return e if pt == "epsilon" else a * e - g * x0


def x0_sigma(pt, x, mo, s):
    # diffusers' sigma-space x0 from an eps / v output
    return x - s * mo if pt == "epsilon" else mo * (-s / math.sqrt(s * s + 1)) + x / (s * s + 1)


def replay_diffusers(c):
    cid = c["id"]
    pt = c["model"].get("prediction_type")
    mu = A(c["model"]["mu"])
    st = c["steps"]
    x = A(c["inputs"]["x_T"])
    N = A(c["inputs"]["noise"]) if "noise" in c["inputs"] else None
    sig = A(c["inputs"]["sigmas"]) if "sigmas" in c["inputs"] else None
    if cid.startswith("euler_"):
        for i, r in enumerate(st):
            s = sig[i]
            eps = gauss_vp(x / math.sqrt(s * s + 1), r["model_ab"], mu, pt)
            x = x + eps * (sig[i + 1] - s)
    elif cid.startswith("kdpm2_ancestral"):
        for r in st:
            mo = gauss_vp(x / math.sqrt(r["scheduler_sigma"] ** 2 + 1), r["model_ab"], mu, pt)
            si = r["step_sigma_interpol"]
            if "step_sigma_up" not in r:  # first stage
                s = r["step_sigma"]
                keep = x
                x = x + (x - x0_sigma(pt, x, mo, s)) / s * (si - s)
            else:
                x = keep + (x - x0_sigma(pt, x, mo, si)) / si * (r["step_sigma_down"] - r["step_sigma"])
                x = x + N[r["noise_calls"][0]] * r["step_sigma_up"]
    elif cid.startswith("dpmsolver_sde"):
        for r in st:
            k = r["state"].get("step_index", 0)
            first = r["state"]["state_in_first_order"]
            mo = gauss_vp(x / math.sqrt(r["scheduler_sigma"] ** 2 + 1), r["model_ab"], mu, pt)
            s0, s1 = (sig[k], sig[k + 1]) if first else (sig[k - 1], sig[k])
            if s1 == 0:
                x = x + (x - x0_sigma(pt, x, mo, s0)) / s0 * (s1 - s0)
                continue
            t, tn = -math.log(s0), -math.log(s1)
            tp = t + (tn - t) * 0.5
            x0 = x0_sigma(pt, x, mo, s0 if first else math.exp(-tp))
            if first:
                tn, keep = tp, x
            else:
                x = keep
            sf, stt = math.exp(-t), math.exp(-tn)
            sd, su = ancestral(sf, stt)
            at = -math.log(sd)
            x = math.exp(-at) / math.exp(-t) * x - math.expm1(t - at) * x0 + N[r["noise_calls"][0]] * su
    elif cid.startswith(("lcm_", "tcd_")):
        for r in st:
            ab = r["alpha_prod_t"]
            a, g = math.sqrt(ab), math.sqrt(1 - ab)
            mo = gauss_vp(x, r["model_ab"], mu, pt)
            x0, e = ((x - g * mo) / a, mo) if pt == "epsilon" else (a * x - g * mo, a * mo + g * x)
            if cid.startswith("lcm_"):
                den = r["c_out"] * x0 + r["c_skip"] * x
                q = r["alpha_prod_t_prev"]
            else:
                s_ = r["alpha_prod_s"]
                den = math.sqrt(s_) * x0 + math.sqrt(1 - s_) * e
                q = r["alpha_prod_t_prev"] / s_
            x = math.sqrt(q) * den + math.sqrt(1 - q) * N[r["noise_calls"][0]] if r["noise_calls"] else den
    elif cid.startswith("edm_euler"):
        sd = c["model"]["sigma_data"]
        sign = 1 if pt == "epsilon" else -1
        for i, r in enumerate(st):
            s, S = sig[i], r["model_sigma"]
            xx = x / math.sqrt(s * s + sd * sd) * math.sqrt(S * S + sd * sd)
            D = mu + 0.25 / (0.25 + S * S) * (xx - mu)
            F = (D - sd * sd / (S * S + sd * sd) * xx) / (sign * S * sd / math.sqrt(S * S + sd * sd))
            den = sd * sd / (s * s + sd * sd) * x + sign * s * sd / math.sqrt(s * s + sd * sd) * F
            x = x + (x - den) / s * (sig[i + 1] - s)
    else:
        return None, True
    n_used = sum(len(r["noise_calls"]) for r in st)
    return np.abs(x - A(c["outputs"]["final_sample"])).max(), n_used == (0 if N is None else N.shape[0])


def main():
    bad = 0
    for name, fn, tol in (("kdiffusion_samplers.json", replay_kd, 1e-12),
                          ("diffusers_samplers.json", replay_diffusers, 5e-6)):
        d = json.loads((DATA / name).read_text())
        worst, n = 0.0, 0
        for c in d["cases"]:
            err, used = fn(c)
            if err is None:
                continue
            n += 1
            worst = max(worst, err)
            if not err <= tol or not used:
                bad += 1
                print(f"MISMATCH {name} {c['id']}: {err:.3e} (noise all used: {used})")
        print(f"{name}: {n} loops replayed, worst |final - golden| = {worst:.3e} (tolerance {tol:g})")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
