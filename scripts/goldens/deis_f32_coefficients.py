"""DEIS coefficients in float32 (as diffusers 0.42.1 computes them) against f64.

diffusers' DEISMultistepScheduler forms each coefficient as a difference of
two antiderivatives, ``ind_fn(rho_t, ...) - ind_fn(rho_s0, ...)``, on float32
tensors (``sigma_t / alpha_t`` and ``np.log`` of float32 values stay float32).
The two terms are of size ~rho while their difference is of size ~(rho_t -
rho_s0), so float32 rounding of the terms is amplified by rho/|rho_t - rho_s0|.
This script replays that arithmetic with every operation rounded to float32
(pure Python, no numpy needed) on the sigmas recorded in
tests/data/diffusers_samplers.json and prints, per case, the largest relative
error of the coefficients and of the update's model term against f64.

    python3 scripts/goldens/deis_f32_coefficients.py
"""
import json
import math
import os
import struct


def f(x):
    """Round to float32."""
    return struct.unpack("f", struct.pack("f", x))[0]


def log32(x):
    return f(math.log(x))


def alpha_sigma(sig, r):
    a = r(1.0 / r(r(r(sig * sig) + 1.0) ** 0.5))
    return a, r(sig * a)


def ind2(t, b, c, r, lg):
    return r(r(t * r(r(-lg(c) + lg(t)) - 1.0)) / r(lg(b) - lg(c)))


def ind3(t, b, c, d, r, lg):
    lt, lc, ld = lg(t), lg(c), lg(d)
    inner = r(lc * r(r(ld - lt) + 1.0))
    inner = r(inner - r(ld * lt))
    inner = r(inner + ld)
    inner = r(inner + r(lt * lt))
    inner = r(inner - r(2.0 * lt))
    inner = r(inner + 2.0)
    num = r(t * inner)
    den = r(r(lg(b) - lc) * r(lg(b) - ld))
    return r(num / den)


def coeffs(order, sig_t, s0, s1, s2, r, lg):
    rho = lambda s: (lambda a_s: r(a_s[1] / a_s[0]))(alpha_sigma(s, r))
    rt, r0, r1 = rho(sig_t), rho(s0), rho(s1)
    if order == 2:
        return [
            r(ind2(rt, r0, r1, r, lg) - ind2(r0, r0, r1, r, lg)),
            r(ind2(rt, r1, r0, r, lg) - ind2(r0, r1, r0, r, lg)),
        ]
    r2 = rho(s2)
    return [
        r(ind3(rt, r0, r1, r2, r, lg) - ind3(r0, r0, r1, r2, r, lg)),
        r(ind3(rt, r1, r2, r0, r, lg) - ind3(r0, r1, r2, r0, r, lg)),
        r(ind3(rt, r2, r0, r1, r, lg) - ind3(r0, r2, r0, r1, r, lg)),
    ]


def gauss_vp(ab, mu, s, pt, z):
    a, g = math.sqrt(ab), math.sqrt(1 - ab)
    k = a * s * s / (a * a * s * s + g * g)
    out = []
    for zi, m in zip(z, mu):
        x = m + k * (zi - a * m)
        e = (zi - a * x) / g
        out.append(e if pt == "epsilon" else a * e - g * x)
    return out


def replay(case, r, lg):
    """The whole DEIS loop in f64 except the coefficients, formed with (r, lg)."""
    cfg, sig = case["config"], case["inputs"]["sigmas"]["data"]
    pt, mu, s = cfg["prediction_type"], case["model"]["mu"]["data"], case["model"]["s"]
    z, eps = list(case["inputs"]["x_T"]["data"]), []
    for i, rec in enumerate(case["steps"]):
        a, sg = alpha_sigma(sig[i], lambda x: x)
        p = gauss_vp(rec["model_ab"], mu, s, pt, z)
        e = p if pt == "epsilon" else [a * pi + sg * zi for pi, zi in zip(p, z)]
        eps.insert(0, e)
        if sig[i + 1] == sig[i]:
            continue  # diffusers' zero-length last step (Karras): the identity
        o = min(cfg["solver_order"], i + 1)
        at = alpha_sigma(sig[i + 1], lambda x: x)[0]
        if o == 1:
            c = [sig[i + 1] - sig[i]]
        else:
            c = coeffs(o, sig[i + 1], sig[i], sig[i - 1], sig[i - 2] if o == 3 else None, r, lg)
        z = [at * (zk / a + sum(c[j] * eps[j][k] for j in range(o))) for k, zk in enumerate(z)]
    want = case["outputs"]["final_sample"]["data"]
    return max(abs(x - y) for x, y in zip(z, want)) / max(abs(y) for y in want)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    data = json.load(open(os.path.join(here, "..", "..", "tests", "data", "diffusers_samplers.json")))
    ident = lambda x: x
    for case in data["cases"]:
        if not case["id"].startswith("deis_"):
            continue
        sig = case["inputs"]["sigmas"]["data"]
        order = case["config"]["solver_order"]
        worst_c, worst_term = 0.0, 0.0
        for i in range(2, len(sig) - 1):
            o = min(order, i + 1)
            if sig[i + 1] == sig[i]:
                continue
            args = (sig[i + 1], sig[i], sig[i - 1], sig[i - 2] if o == 3 else None)
            c32 = coeffs(o, *args, f, log32)
            c64 = coeffs(o, *args, ident, math.log)
            # the coefficients' sum multiplies eps; compare each to the largest
            scale = max(abs(c) for c in c64)
            worst_c = max(worst_c, max(abs(a - b) for a, b in zip(c32, c64)) / scale)
            # relative error of the model term alpha_t * sum(c_j eps_j) for equal eps_j
            worst_term = max(worst_term, abs(sum(c32) - sum(c64)) / abs(sum(c64)))
        print(f"{case['id']}: float32 coefficients off by up to {worst_c:.2e} of the largest "
              f"(sum: {worst_term:.2e} relative); final sample vs diffusers, relative to its "
              f"largest element: f64 coefficients {replay(case, ident, math.log):.2e}, "
              f"float32 coefficients {replay(case, f, log32):.2e}")


if __name__ == "__main__":
    main()
