"""Golden sampling loops of diffusers 0.42.1 schedulers (tests/data/diffusers_samplers.json).

Each case runs a scheduler the way a diffusers pipeline does:
``Scheduler.from_config(config)``, ``set_timesteps(n)``, ``x_T = randn_tensor(shape,
generator) * init_noise_sigma``, then per timestep ``model_input =
scale_model_input(latents, t)``, ``model_output = model(model_input, t)``,
``latents = step(model_output, t, latents, [generator], [eta]).prev_sample``.
State in float32 as diffusers runs it; the closed-form model (README gauss_vp,
gauss_flow, or the EDM-preconditioned Gaussian) in float64 from the model input
and the timestep. Noise drawn inside ``step`` (randn_tensor, torchsde Brownian
tree) is recorded in call order by wrapping the library's own function.

Usage: /work/venv-goldens/bin/python scripts/goldens/gen_diffusers_samplers.py
"""

import inspect
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import arr, f32_exact, scalar  # noqa: E402

import diffusers  # noqa: E402
from diffusers.schedulers import (  # noqa: E402
    scheduling_dpmsolver_sde,
    scheduling_k_dpm_2_ancestral_discrete,
    scheduling_lcm,
    scheduling_tcd,
)
from diffusers.utils.torch_utils import randn_tensor  # noqa: E402

# runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json (a PNDMScheduler config);
# pipelines switch schedulers with Other.from_config(pipe.scheduler.config).
SD15 = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}

SHAPE = [2, 6]
S_DATA = 0.5
N_TRAIN = 1000

# ------------------------------------------------------------------ noise recording

_RANDN_LOG = []


def _recording_randn(*a, **k):
    n = randn_tensor(*a, **k)
    _RANDN_LOG.append(n.detach().clone())
    return n


for _m in (scheduling_k_dpm_2_ancestral_discrete, scheduling_lcm, scheduling_tcd):
    _m.randn_tensor = _recording_randn

_BT_LOG = []
_BT_PAIRS = []


class _RecordingBrownianTreeNoiseSampler(scheduling_dpmsolver_sde.BrownianTreeNoiseSampler):
    def __call__(self, sigma, sigma_next):
        n = super().__call__(sigma, sigma_next)
        _BT_LOG.append(n.detach().clone())
        _BT_PAIRS.append([scalar(sigma), scalar(sigma_next)])
        return n


scheduling_dpmsolver_sde.BrownianTreeNoiseSampler = _RecordingBrownianTreeNoiseSampler

# ------------------------------------------------------------------ models

EDM_FORMULA = (
    "EDM-preconditioned exact model of x0 ~ N(mu, s^2 I) in VE form x = x0 + sigma*eps: "
    "sigma = exp(4*timestep) (the scheduler's timestep is c_noise = 0.25*log(sigma)); "
    "x = model_input * sqrt(sigma^2 + sigma_data^2) (undoing c_in); D = mu + s^2/(s^2 + sigma^2)*(x - mu); "
    "c_skip = sigma_data^2/(sigma^2 + sigma_data^2); c_out = +sigma*sigma_data/sqrt(sigma^2 + sigma_data^2) "
    "for 'epsilon', -sigma*sigma_data/sqrt(...) for 'v_prediction' (diffusers' precondition_outputs); "
    "output F = (D - c_skip*x)/c_out, so that the scheduler's denoised = c_skip*x + c_out*F = D. "
    "float64, cast to float32; model_sigma recorded per step."
)

AB_OF_T = (
    "model_ab is the alphas_cumprod the timestep stands for: for an integer-valued timestep t, "
    "alphas_cumprod[t] (diffusers' float32 value as its exact double); for a fractional t "
    "(Karras / interpolated sigmas) log sigma is interpolated linearly between floor(t) and ceil(t) "
    "in the training table sigma_k = sqrt((1 - ab_k)/ab_k) (f64 from the f32 ab_k) -- the exact "
    "inverse of diffusers' _sigma_to_t -- and model_ab = 1/(1 + sigma^2)."
)


def ab_of_t(t, ac):
    t = float(scalar(t))
    if t == int(t):
        return float(ac[int(t)])
    lo, hi = int(math.floor(t)), int(math.ceil(t))
    w = t - lo
    ls = [0.5 * math.log((1.0 - float(ac[k])) / float(ac[k])) for k in (lo, hi)]
    sig = math.exp((1 - w) * ls[0] + w * ls[1])
    return 1.0 / (1.0 + sig * sig)


class Model:
    def __init__(self, kind, prediction_type, mu, ac=None, sigma_data=None):
        self.kind, self.pt, self.mu, self.ac, self.sigma_data = kind, prediction_type, mu, ac, sigma_data

    def __call__(self, z, t):
        if self.kind == "gauss_vp":
            ab = ab_of_t(t, self.ac)
            return common.gauss_vp(z, ab, self.mu, S_DATA, self.pt, torch.float32), {"model_ab": ab}
        if self.kind == "gauss_flow":
            tt = float(scalar(t)) / N_TRAIN
            return common.gauss_flow(z, tt, self.mu, S_DATA, torch.float32), {"model_t": tt}
        if self.kind == "edm_gauss":
            sig = math.exp(4.0 * float(scalar(t)))
            sd = self.sigma_data
            x = z.to(torch.float64) * math.sqrt(sig * sig + sd * sd)
            mu = self.mu.to(torch.float64)
            d = mu + S_DATA**2 / (S_DATA**2 + sig * sig) * (x - mu)
            c_skip = sd * sd / (sig * sig + sd * sd)
            c_out = sig * sd / math.sqrt(sig * sig + sd * sd)
            if self.pt == "v_prediction":
                c_out = -c_out
            return ((d - c_skip * x) / c_out).to(torch.float32), {"model_sigma": sig}
        raise ValueError(self.kind)


MODELS = {
    "gauss_vp": common.GAUSS_VP_FORMULA + " " + AB_OF_T,
    "gauss_flow": common.GAUSS_FLOW_FORMULA
    + " model_t = timestep/1000 (the timestep the pipeline passes).",
    "edm_gauss": EDM_FORMULA,
}


def model_desc(kind, pt, mu, sigma_data=None):
    d = {"kind": kind, "formula": f"top-level models.{kind}", "s": S_DATA}
    if kind == "gauss_vp":
        d["prediction_type"] = pt
    elif kind == "gauss_flow":
        d["prediction_type"] = "flow (eps - x0)"
    else:
        d["sigma_data"] = sigma_data
        d["prediction_type"] = pt
    d["mu"] = arr(mu)
    d["model_input"] = "the scheduler's scale_model_input(latents, t), as the pipeline passes it"
    return d


# ------------------------------------------------------------------ scheduler introspection


def sched_sigma(s):
    """The sigma the scheduler itself scales this model call with (None for alpha-only schedulers)."""
    if not hasattr(s, "sigmas") or s.step_index is None:
        return None
    i = s.step_index
    name = type(s).__name__
    if name == "KDPM2DiscreteScheduler":
        return s.sigmas[i] if s.state_in_first_order else s.sigmas_interpol[i]
    if name == "KDPM2AncestralDiscreteScheduler":
        return s.sigmas[i] if s.state_in_first_order else s.sigmas_interpol[i - 1]
    if name == "DPMSolverSDEScheduler":
        return s.sigmas[i] if s.state_in_first_order else s.mid_point_sigma
    return s.sigmas[i]


def state_scalars(s):
    out = {}
    for a in ("step_index", "state_in_first_order", "lower_order_nums", "counter", "this_order"):
        try:
            v = getattr(s, a)
        except Exception:  # noqa: BLE001 - some properties need state that is not there yet
            continue
        if v is None:
            continue
        out[a] = scalar(v)
    if hasattr(s, "ets"):
        out["ets_len"] = len(s.ets)
    return out


def kdpm2_scalars(s):
    """The table entries KDPM2 / KDPM2 ancestral step() reads this call (their tables hold NaN
    in entries no step reads, so the tables themselves are not stored)."""
    i = s.step_index
    first = s.state_in_first_order
    if type(s).__name__ == "KDPM2DiscreteScheduler":
        if first:
            v = (s.sigmas[i], s.sigmas_interpol[i + 1], s.sigmas[i + 1])
        else:
            v = (s.sigmas[i - 1], s.sigmas_interpol[i], s.sigmas[i])
        return {"step_sigma": scalar(v[0]), "step_sigma_interpol": scalar(v[1]),
                "step_sigma_next": scalar(v[2])}
    j = i if first else i - 1
    out = {"step_sigma": scalar(s.sigmas[j]), "step_sigma_interpol": scalar(s.sigmas_interpol[j])}
    if not first:  # the first stage reads sigma_up / sigma_down but does not use them
        out["step_sigma_up"] = scalar(s.sigmas_up[j])
        out["step_sigma_down"] = scalar(s.sigmas_down[j])
    return out


def consistency_scalars(s, t, eta):
    """The step's own scalars for LCM / TCD, read from the scheduler's tables and helpers
    the way their step() reads them (before the step moves step_index)."""
    i = s.step_index
    last = i + 1 >= len(s.timesteps)
    if type(s).__name__ == "LCMScheduler":
        prev_t = t if last else s.timesteps[i + 1]
    else:
        prev_t = torch.tensor(0) if last else s.timesteps[i + 1]
    out = {"prev_timestep": scalar(prev_t), "alpha_prod_t": scalar(s.alphas_cumprod[t])}
    if type(s).__name__ == "LCMScheduler":
        c_skip, c_out = s.get_scalings_for_boundary_condition_discrete(t)
        out["c_skip"] = scalar(c_skip)
        out["c_out"] = scalar(c_out)
        out["alpha_prod_t_prev"] = scalar(s.alphas_cumprod[prev_t] if prev_t >= 0 else s.final_alpha_cumprod)
    else:
        ts = torch.floor((1 - eta) * prev_t).to(dtype=torch.long)
        out["timestep_s"] = scalar(ts)
        out["alpha_prod_s"] = scalar(s.alphas_cumprod[ts])
        out["alpha_prod_t_prev"] = scalar(s.alphas_cumprod[prev_t] if prev_t >= 0 else s.final_alpha_cumprod)
    return out


# ------------------------------------------------------------------ one loop


def run_case(cid, cls, cfg_over, n_steps, pt, model_kind, seed, base=SD15, step_kwargs=None,
             note=None, function_extra=""):
    _RANDN_LOG.clear()
    _BT_LOG.clear()
    _BT_PAIRS.clear()
    s = cls.from_config(base, **cfg_over) if base is not None else cls(**cfg_over)
    s.set_timesteps(n_steps)
    timesteps = s.timesteps.clone()
    sigmas = s.sigmas.clone() if hasattr(s, "sigmas") and isinstance(s.sigmas, torch.Tensor) else None

    g = torch.Generator().manual_seed(seed)
    mu = (0.5 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed + 7),
                            dtype=torch.float64)).to(torch.float32).to(torch.float64)
    ac = s.alphas_cumprod.clone() if hasattr(s, "alphas_cumprod") else None
    model = Model(model_kind, pt, mu, ac=ac, sigma_data=getattr(s.config, "sigma_data", None))

    x_unscaled = randn_tensor(SHAPE, generator=g, dtype=torch.float32)
    # flow-match schedulers have no init_noise_sigma: their pipelines (SD3, Flux) use the noise as is
    has_ins = hasattr(s, "init_noise_sigma")
    init_noise_sigma = s.init_noise_sigma if has_ins else 1.0
    latents = x_unscaled * init_noise_sigma if has_ins else x_unscaled.clone()
    has_smi = hasattr(s, "scale_model_input")

    sk = dict(step_kwargs or {})
    params = inspect.signature(s.step).parameters
    noise_gen = None
    if "generator" in params:
        noise_gen = torch.Generator().manual_seed(seed + 1)
        sk["generator"] = noise_gen

    steps = []
    tens = []
    n = len(timesteps)
    for i, t in enumerate(timesteps):
        before = state_scalars(s)
        model_input = s.scale_model_input(latents, t) if has_smi else latents
        if getattr(s, "step_index", None) is None and hasattr(s, "_init_step_index"):
            s._init_step_index(t)  # what step() does first; lets us read the step's sigma
        sig = sched_sigma(s)
        mo, mscal = model(model_input, t)
        rec = {"i": i, "timestep": scalar(t)}
        rec.update(mscal)
        if sig is not None:
            rec["scheduler_sigma"] = scalar(sig)
        rec["state"] = before
        if cls.__name__ == "UniPCMultistepScheduler":
            si = s.step_index
            rec["corrector_applied"] = bool(si > 0 and si - 1 not in s.disable_corrector
                                            and s.last_sample is not None)
        if cls.__name__ == "DPMSolverSinglestepScheduler":
            rec["order"] = int(s.order_list[s.step_index])
        if cls.__name__ == "LMSDiscreteScheduler":
            order = min(s.step_index + 1, 4)
            rec["lms_order"] = order
            rec["lms_coeffs"] = [float(s.get_lms_coefficient(order, s.step_index, k)) for k in range(order)]
        if cls.__name__ in ("KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler"):
            rec.update(kdpm2_scalars(s))
        if cls.__name__ in ("LCMScheduler", "TCDScheduler"):
            rec.update(consistency_scalars(s, t, sk.get("eta")))
        nr, nb = len(_RANDN_LOG), len(_BT_LOG)
        out = s.step(mo, t, latents, **sk)
        rec["noise_calls"] = list(range(nr, len(_RANDN_LOG))) + list(range(nb, len(_BT_LOG)))
        t_rec = {"sample": latents, "model_input": model_input, "model_output": mo}
        if cls.__name__ == "DPMSolverSDEScheduler" and not s.state_in_first_order:
            rec["mid_point_sigma_stored"] = scalar(s.mid_point_sigma)  # this was a first stage
        for a in ("pred_original_sample", "denoised", "pred_noised_sample"):
            v = getattr(out, a, None)
            if v is not None:
                t_rec[a] = v
        if cls.__name__ == "UniPCMultistepScheduler":
            t_rec["corrected_sample"] = s.last_sample  # the sample the predictor started from
        t_rec["prev_sample"] = out.prev_sample
        latents = out.prev_sample
        steps.append(rec)
        tens.append({k: v.clone() for k, v in t_rec.items()})
    for i, rec in enumerate(steps):
        if i < 3 or i >= n - 3:
            for k, v in tens[i].items():
                rec[k] = arr(v)

    cfg = {k: v for k, v in dict(s.config).items() if not k.startswith("_")}
    case = {
        "id": cid,
        "library": "diffusers",
        "function": (f"{cls.__name__}.from_config(SD 1.5 config" if base is SD15 else f"{cls.__name__}(")
                    + (", " if base is SD15 and cfg_over else "")
                    + ", ".join(f"{k}={v!r}" for k, v in cfg_over.items())
                    + f") + set_timesteps({n_steps}) + " + ("scale_model_input + " if has_smi else "")
                    + "step("
                    + ", ".join(f"{k}={v!r}" for k, v in (step_kwargs or {}).items())
                    + ("generator" if noise_gen is not None and not step_kwargs else "")
                    + (", generator" if noise_gen is not None and step_kwargs else "")
                    + ") loop" + function_extra,
        "config": cfg,
        "dtype": "float32",
        "dtype_note": "latents, model input/output and step arithmetic in float32 as diffusers runs "
                      "them; scheduler tables (alphas_cumprod, sigmas, timesteps) are diffusers' own "
                      "(float32, timesteps int64 or float32); the model is evaluated in float64 and cast "
                      "to float32.",
        "model": model_desc(model_kind, pt, mu, getattr(s.config, "sigma_data", None)),
        "inputs": {
            "num_inference_steps": n_steps,
            "timesteps": arr(timesteps),
            "init_noise_sigma": scalar(init_noise_sigma) if has_ins else None,
            "init_noise_sigma_f32": f32_exact(init_noise_sigma) if has_ins else None,
            "x_T_unscaled": arr(x_unscaled),
            "x_T": arr(x_unscaled * init_noise_sigma if has_ins else x_unscaled),
            "x_T_note": f"x_T_unscaled = diffusers.utils.torch_utils.randn_tensor(shape, generator="
                        f"torch.Generator().manual_seed({seed}), dtype=float32); x_T = x_T_unscaled * "
                        "scheduler.init_noise_sigma, as the pipelines prepare latents",
        },
        "scale_model_input_applied": "yes" if has_smi else
        "no (the scheduler has no scale_model_input; its pipelines pass the latents as they are)",
        "steps": steps,
        "outputs": {"final_sample": arr(latents)},
    }
    if sigmas is not None:
        case["inputs"]["sigmas"] = arr(sigmas)
    if cls.__name__ == "DPMSolverSinglestepScheduler":
        case["inputs"]["order_list"] = [int(o) for o in s.order_list]
    if _RANDN_LOG:
        case["inputs"]["noise"] = arr(torch.stack(_RANDN_LOG))
        case["inputs"]["noise_steps"] = [i for i, r in enumerate(steps) for _ in r["noise_calls"]]
        case["inputs"]["noise_note"] = (
            f"every randn_tensor call inside step(), in call order (step generator seeded {seed + 1}); "
            "steps[i].noise_calls index into inputs.noise")
    if _BT_LOG:
        case["inputs"]["noise"] = arr(torch.stack(_BT_LOG))
        case["inputs"]["noise_calls_sigma_pairs"] = _BT_PAIRS[:]
        case["inputs"]["noise_steps"] = [i for i, r in enumerate(steps) for _ in r["noise_calls"]]
        case["inputs"]["noise_note"] = (
            "DPMSolverSDEScheduler's BrownianTreeNoiseSampler (torchsde BrownianTree, seed = "
            "config.noise_sampler_seed, over [min positive sigma, max sigma]) wrapped to record: "
            "inputs.noise[k] is what its k-th call returned, (W(sigma_next) - W(sigma)) / "
            "sqrt|sigma_next - sigma| in float32, for inputs.noise_calls_sigma_pairs[k] (f32 sigmas as "
            "doubles). Replay by feeding these values back.")
    if note:
        case["note"] = note
    return case


# ------------------------------------------------------------------ the cases

BH1_NOTE = (
    "bh1 cases use final_sigmas_type='sigma_min' because with the default 'zero' the last step of "
    "diffusers 0.42.1 is NaN: the final sigma is 0, so h = lambda_t - lambda_s0 = +inf, bh1 sets "
    "B_h = hh = -h = -inf, and the order-1 final predictor computes alpha_t * B_h * pred_res with "
    "pred_res = 0, i.e. -inf * 0 (bh2's B_h = expm1(hh) = -1 stays finite). See case "
    "unipc_bh1_o2_corr_eps_default_final_zero_nan."
)


def main():
    cases = []
    seed = [2000]

    def add(*a, **k):
        seed[0] += 10
        cases.append(run_case(*a, seed=seed[0], **k))

    D = diffusers
    PT2 = ("epsilon", "v_prediction")
    short = {"epsilon": "eps", "v_prediction": "v"}

    # PNDM (PLMS with skip_prk_steps as SD 1.5; and with the Runge-Kutta warm-up)
    for prk in (True, False):
        for pt in PT2:
            for spacing in ("leading", "trailing"):
                add(f"pndm_{'plms' if prk else 'prk'}_{short[pt]}_{spacing}", D.PNDMScheduler,
                    {"skip_prk_steps": prk, "prediction_type": pt, "timestep_spacing": spacing},
                    25 if prk else 20, pt, "gauss_vp")

    # UniPC
    for st in ("bh1", "bh2"):
        for order in (2, 3):
            for corr in (True, False):
                for pt in PT2:
                    for karras in (False, True):
                        n = 20
                        over = {"solver_type": st, "solver_order": order, "prediction_type": pt,
                                "use_karras_sigmas": karras}
                        if not corr:
                            over["disable_corrector"] = list(range(n))
                        nt = None
                        if st == "bh1":
                            over["final_sigmas_type"] = "sigma_min"
                            nt = BH1_NOTE
                        add(f"unipc_{st}_o{order}_{'corr' if corr else 'nocorr'}_{short[pt]}_"
                            f"{'karras' if karras else 'default'}", D.UniPCMultistepScheduler, over,
                            n, pt, "gauss_vp", note=nt)
    # the fact behind BH1_NOTE, recorded: bh1 with the default final_sigmas_type='zero'
    add("unipc_bh1_o2_corr_eps_default_final_zero_nan", D.UniPCMultistepScheduler,
        {"solver_type": "bh1", "solver_order": 2, "prediction_type": "epsilon"}, 20, "epsilon",
        "gauss_vp", note="diffusers 0.42.1 returns NaN from the last step (prev_sample and "
        "final_sample are marked all_nan): " + BH1_NOTE.split(":", 1)[1])
    for n in (20, 25):
        add(f"unipc_flow_shift3_{n}", D.UniPCMultistepScheduler,
            {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": 3.0},
            n, "flow_prediction", "gauss_flow",
            note="flow-matching variant: sigmas = shift*s/(1 + (shift-1)*s) on a linspace, "
                 "timesteps = round(sigma*1000) as integers; the model is gauss_flow at "
                 "t = timestep/1000.")

    # DEIS
    for order in (2, 3):
        for pt in PT2:
            for karras in (False, True):
                add(f"deis_o{order}_{short[pt]}_{'karras' if karras else 'default'}",
                    D.DEISMultistepScheduler,
                    {"solver_order": order, "prediction_type": pt, "use_karras_sigmas": karras},
                    20, pt, "gauss_vp")

    # sigma-space schedulers of the k-diffusion family
    for name, cls in (("lms4", D.LMSDiscreteScheduler), ("kdpm2", D.KDPM2DiscreteScheduler),
                      ("kdpm2_ancestral", D.KDPM2AncestralDiscreteScheduler)):
        for pt in PT2:
            for karras in (False, True):
                add(f"{name}_{short[pt]}_{'karras' if karras else 'default'}", cls,
                    {"prediction_type": pt, "use_karras_sigmas": karras}, 20, pt, "gauss_vp")
    for pt in PT2:
        for karras in (False, True):
            add(f"dpmsolver_sde_{short[pt]}_{'karras' if karras else 'default'}", D.DPMSolverSDEScheduler,
                {"prediction_type": pt, "use_karras_sigmas": karras, "noise_sampler_seed": 4242},
                20, pt, "gauss_vp")

    # DPM-Solver singlestep
    for order in (2, 3):
        for pt in PT2:
            for karras in (False, True):
                add(f"dpmsolver_singlestep_o{order}_{short[pt]}_{'karras' if karras else 'default'}",
                    D.DPMSolverSinglestepScheduler,
                    {"solver_order": order, "prediction_type": pt, "use_karras_sigmas": karras},
                    21, pt, "gauss_vp")

    # LCM / TCD: SD 1.5 config (as the LCM-LoRA / TCD-LoRA recipes do: from_config(pipe.scheduler.config))
    for pt in PT2:
        for n in (20, 8):
            add(f"lcm_{short[pt]}_{n}", D.LCMScheduler, {"prediction_type": pt}, n, pt, "gauss_vp",
                note="LCM multistep sampling injects fresh noise at every step but the last "
                     "(randn_tensor in step, recorded).")
            add(f"tcd_gamma0.3_{short[pt]}_{n}", D.TCDScheduler, {"prediction_type": pt}, n, pt,
                "gauss_vp", step_kwargs={"eta": 0.3},
                note="eta = gamma = 0.3 (the TCD pipeline's default), noise recorded.")

    # EDM Euler: its own defaults (sigma 0.002-80, sigma_data 0.5, rho 7)
    for pt in PT2:
        for sched in ("karras", "exponential"):
            add(f"edm_euler_{short[pt]}_{sched}", D.EDMEulerScheduler,
                {"prediction_type": pt, "sigma_schedule": sched}, 20, pt, "edm_gauss", base=None)

    # Flow-match Heun: defaults, shift 1 and 3
    for shift in (1.0, 3.0):
        add(f"flow_heun_shift{int(shift)}", D.FlowMatchHeunDiscreteScheduler, {"shift": shift}, 20,
            "flow", "gauss_flow", base=None)

    # README Euler regression (issue 13 item 4): SD config, epsilon, 25 steps, every spacing
    for spacing in ("leading", "linspace", "trailing"):
        add(f"euler_sd_eps_{spacing}_25", D.EulerDiscreteScheduler,
            {"timestep_spacing": spacing, "prediction_type": "epsilon"}, 25, "epsilon", "gauss_vp",
            note="latents = randn_tensor(...) * init_noise_sigma exactly as the SD pipelines do: "
                 "init_noise_sigma = sigma_max for linspace/trailing and sqrt(sigma_max^2 + 1) for "
                 "leading (inputs.init_noise_sigma; x_T_unscaled before and x_T after the scaling).")

    what = (
        "diffusers 0.42.1 scheduler sampling loops as the pipelines run them (from_config, "
        "set_timesteps, init_noise_sigma, scale_model_input, step), float32 state, closed-form "
        "Gaussian models: PNDM (PLMS / PRK), UniPC (bh1/bh2, order 2/3, corrector on/off, flow "
        "variant), DEIS (order 2/3), LMS (order 4), KDPM2, KDPM2 ancestral, DPM-Solver SDE, "
        "DPM-Solver singlestep (order 2/3), LCM, TCD, EDM Euler, flow-match Heun, and the "
        "Euler leading/linspace/trailing regression; noise recorded in call order."
    )
    out = common.DATA / "diffusers_samplers.json"
    size = common.dump(out, what, cases, generator="scripts/goldens/gen_diffusers_samplers.py",
                       models=MODELS)
    print(f"{out}: {len(cases)} cases, {size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
