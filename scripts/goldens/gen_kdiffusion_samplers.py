"""Golden sampling loops of k-diffusion 0.1.1.post1 (tests/data/kdiffusion_samplers.json).

Runs the real ``k_diffusion.sampling`` samplers (imported without the package
``__init__``) in float64 on the README's two closed-form denoisers and records
each loop: sigmas, every step's scalars (sigma, sigma_hat, sigma_next, the
sigma of every model call, the (sigma, sigma_next) of every noise draw, and
per sampler the library's own coefficients: get_ancestral_step, LMS
coefficients), the tensors of the first 3 and last 3 steps, x_T, the final
sample and all noise in call order.

Usage: /work/venv-goldens/bin/python scripts/goldens/gen_kdiffusion_samplers.py
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import arr, scalar  # noqa: E402

torch.set_default_dtype(torch.float64)
K, SAMPLING_SHA = common.import_kdiffusion_sampling()

# Samplers the task asked for. Those not in this sampling.py are listed in `what`.
WANTED_ABSENT = [
    "sample_ipndm", "sample_ipndm_v", "sample_deis", "sample_heunpp2", "sample_lcm",
    "sample_res_multistep", "sample_er_sde", "sample_sa_solver",
    "sample_euler_cfg_pp", "sample_euler_ancestral_cfg_pp", "sample_dpmpp_2m_cfg_pp",
    "sample_dpmpp_2s_ancestral_cfg_pp", "sample_res_multistep_cfg_pp",
]
ABSENT = [n for n in WANTED_ABSENT if not hasattr(K, n)]
PRESENT_EXTRA = [n for n in WANTED_ABSENT if hasattr(K, n)]
assert not PRESENT_EXTRA, f"this k-diffusion has {PRESENT_EXTRA}: add cases for them"

# (case tag, function name, kwargs, noise kind)
SAMPLERS = [
    ("lms4", "sample_lms", {"order": 4}, None),
    ("dpm_2", "sample_dpm_2", {}, None),
    ("dpm_2_ancestral", "sample_dpm_2_ancestral", {}, "randn"),
    ("dpmpp_2s_ancestral", "sample_dpmpp_2s_ancestral", {}, "randn"),
    ("dpmpp_sde", "sample_dpmpp_sde", {}, "brownian"),
    ("dpmpp_2m_sde_midpoint", "sample_dpmpp_2m_sde", {"solver_type": "midpoint"}, "brownian"),
    ("dpmpp_2m_sde_heun", "sample_dpmpp_2m_sde", {"solver_type": "heun"}, "brownian"),
    ("dpmpp_3m_sde", "sample_dpmpp_3m_sde", {}, "brownian"),
]

SIGMA_MIN, SIGMA_MAX = 0.03, 14.6
GRIDS = {
    "karras15": (lambda: K.get_sigmas_karras(15, SIGMA_MIN, SIGMA_MAX, rho=7.0),
                 "get_sigmas_karras(15, 0.03, 14.6, rho=7) in float64 (default dtype float64)"),
    "exp12": (lambda: K.get_sigmas_exponential(12, SIGMA_MIN, SIGMA_MAX),
              "get_sigmas_exponential(12, 0.03, 14.6) in float64 (default dtype float64)"),
}
MODELS = {
    "gauss": ([3, 7], {"kind": "kd_gauss", "formula": common.KD_GAUSS_FORMULA, "s": 0.5},
              lambda x, s: common.kd_gauss(x, s)),
    "gmm2d": ([3, 3, 2], dict(kind="kd_gmm2d", formula=common.KD_GMM_FORMULA, **common.GMM),
              lambda x, s: common.kd_gmm(x, s)),
}


def run_case(tag, fname, kwargs, noise_kind, grid, model_name, seed):
    shape, model_desc, fn = MODELS[model_name]
    sigmas = GRIDS[grid][0]()
    g = torch.Generator().manual_seed(seed)
    x_T = torch.randn(shape, generator=g, dtype=torch.float64) * sigmas[0]

    calls = []  # every model call: (sigma, x, denoised)

    def model(x, sigma):
        d = fn(x, sigma)
        assert torch.all(sigma == sigma[0])
        calls.append((scalar(sigma[0]), x.clone(), d.clone()))
        return d

    cbs = []
    starts = []
    noise = None

    def callback(info):
        starts.append(len(calls) - 1)
        cbs.append({"i": info["i"], "x": info["x"].clone(), "sigma": scalar(info["sigma"]),
                    "sigma_hat": scalar(info["sigma_hat"]), "denoised": info["denoised"].clone(),
                    "noise_from": len(noise.draws) if noise else 0})

    kw = dict(kwargs)
    note = None
    if noise_kind == "randn":
        torch.manual_seed(seed + 1)
        noise = common.RecordingNoise(K.default_noise_sampler(x_T))
        kw["noise_sampler"] = noise
        note = ("noise_sampler(sigma, sigma_next) is k-diffusion's default_noise_sampler "
                "(torch.randn_like, global generator seeded with noise_seed) wrapped to record: "
                "its k-th call returned inputs.noise[k] (at inputs.noise_calls_sigma_pairs[k]).")
    elif noise_kind == "brownian":
        smin, smax = sigmas[sigmas > 0].min(), sigmas.max()
        noise = common.RecordingNoise(K.BrownianTreeNoiseSampler(x_T, smin, smax, seed=seed + 1))
        kw["noise_sampler"] = noise
        note = ("noise_sampler is k-diffusion's BrownianTreeNoiseSampler(x, sigma_min, sigma_max, "
                "seed=noise_seed) over (min positive sigma, max sigma) -- what the sampler builds "
                "when none is given, seeded -- wrapped to record: inputs.noise[k] is the value its "
                "k-th call returned, i.e. the Brownian increment W(sigma_next) - W(sigma) divided by "
                "sqrt|sigma_next - sigma| (a unit normal per element), for the (sigma, sigma_next) "
                "in inputs.noise_calls_sigma_pairs[k]. Replay by feeding these values back; the "
                "tree itself (torchsde) is not reproduced.")

    sampler = getattr(K, fname)
    final = sampler(model, x_T.clone(), sigmas, callback=callback, disable=True, **kw)
    n = len(sigmas) - 1
    assert len(cbs) == n, (len(cbs), n)
    starts.append(len(calls))
    # noise draws belong to the step whose callback came last before them
    noise_bounds = [c["noise_from"] for c in cbs] + [len(noise.draws) if noise else 0]

    steps = []
    for i, cb in enumerate(cbs):
        st = {"i": i, "sigma": cb["sigma"], "sigma_hat": cb["sigma_hat"],
              "sigma_next": scalar(sigmas[i + 1]),
              "model_call_sigmas": [c[0] for c in calls[starts[i]:starts[i + 1]]],
              "noise_calls": list(range(noise_bounds[i], noise_bounds[i + 1]))}
        if "ancestral" in fname:
            sd, su = K.get_ancestral_step(sigmas[i], sigmas[i + 1], eta=1.0)
            st["get_ancestral_step"] = {"sigma_down": scalar(sd), "sigma_up": scalar(su)}
        if fname == "sample_lms":
            order = min(i + 1, kwargs["order"])
            st["lms_order"] = order
            st["lms_coeffs"] = [K.linear_multistep_coeff(order, sigmas.numpy(), i, j)
                                for j in range(order)]
        if i < 3 or i >= n - 3:
            st["x"] = arr(cb["x"])
            st["denoised"] = arr(cb["denoised"])
            st["model_calls"] = [{"sigma": c[0], "x": arr(c[1]), "denoised": arr(c[2])}
                                 for c in calls[starts[i]:starts[i + 1]]]
            nxt = cbs[i + 1]["x"] if i + 1 < n else final
            st["x_next"] = arr(nxt)
        steps.append(st)

    case = {
        "id": f"kd_{tag}_{model_name}_{grid}",
        "library": "k-diffusion",
        "function": f"{fname}(model, x_T, sigmas"
                    + "".join(f", {k}={v!r}" for k, v in kwargs.items())
                    + (", noise_sampler=recorded" if noise else "") + ")",
        "config": dict(kwargs, **({"eta": 1.0, "s_noise": 1.0} if noise else {})),
        "dtype": "float64",
        "dtype_note": "torch.set_default_dtype(float64): sigmas, state and model in float64; the "
                      "sampler's scalars are 0-dim float64 tensors.",
        "model": model_desc,
        "inputs": {"x_T": arr(x_T), "x_T_note": f"randn(shape, generator seed {seed}) * sigmas[0]",
                   "sigmas": arr(sigmas), "sigmas_note": GRIDS[grid][1]},
        "steps": steps,
        "outputs": {"final_sample": arr(final)},
        "n_model_calls": len(calls),
    }
    if noise:
        case["inputs"]["noise_seed"] = seed + 1
        case["inputs"]["noise"] = arr(noise.stacked())
        case["inputs"]["noise_calls_sigma_pairs"] = noise.pairs
        case["note"] = note
    if fname == "sample_lms":
        case["note"] = ("lms_coeffs[j] = linear_multistep_coeff(order, sigmas, i, j) = integral of the "
                        "Lagrange basis over [sigma_i, sigma_{i+1}] by scipy.integrate.quad "
                        "(epsrel=1e-4, exact for these cubic integrands up to rounding); "
                        "x_next = x + sum_j lms_coeffs[j] * d_{i-j}, d = (x - denoised)/sigma.")
    if fname == "sample_dpm_2":
        case["note"] = "s_churn=0 (default): no noise; second model call at sigma_mid = exp(lerp(log sigma_hat, log sigma_next, 0.5))."
    return case


def main():
    cases = []
    seed = 1000
    for tag, fname, kw, nk in SAMPLERS:
        for grid in GRIDS:
            for model_name in MODELS:
                seed += 10
                cases.append(run_case(tag, fname, kw, nk, grid, model_name, seed))
    what = (
        "k-diffusion 0.1.1.post1 sampling loops (float64) on the closed-form Gaussian and 2-D "
        "mixture denoisers, karras-15 and exponential-12 grids: "
        + ", ".join(sorted({s[1] for s in SAMPLERS}))
        + ". Absent from this k-diffusion (its sampling.py has no such function, so no golden "
          "exists for them from here): " + ", ".join(ABSENT) + "."
    )
    out = common.DATA / "kdiffusion_samplers.json"
    size = common.dump(out, what, cases,
                       extra_versions={"k_diffusion_sampling_py_sha256": SAMPLING_SHA},
                       generator="scripts/goldens/gen_kdiffusion_samplers.py")
    print(f"{out}: {len(cases)} cases, {size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
