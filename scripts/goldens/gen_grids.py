"""Golden time grids of ComfyUI and diffusers (tests/data/grids.json).

* ComfyUI's 9 schedulers (``comfy/samplers.py``: ``SCHEDULER_HANDLERS``) over a
  ``ModelSamplingDiscrete`` (SD 1.x betas) and a ``ModelSamplingDiscreteFlow``
  (shift 3, SD3), for several step counts. ComfyUI is not pip-installable, so
  the pieces of ComfyUI are re-stated below VERBATIM (only ``self`` turned into
  an explicit object) from Comfy-Org/ComfyUI:
    comfy/samplers.py        at e0d4ea77a9f6fda218619802b8c4e83cda5db082
    comfy/model_sampling.py  at 38a99a826e14dd509ef32cfb68aa981ba782ec41
    comfy/ldm/modules/diffusionmodules/util.py (make_beta_schedule, "linear")
  and ``karras`` / ``exponential`` call k-diffusion's own
  ``get_sigmas_karras`` / ``get_sigmas_exponential`` (ComfyUI's
  comfy/k_diffusion/sampling.py carries the same two functions), ``beta`` calls
  scipy's ``beta.ppf`` as ComfyUI does.
* diffusers' ``EulerDiscreteScheduler.set_timesteps`` with ``use_karras_sigmas``,
  ``use_exponential_sigmas``, ``use_beta_sigmas`` (or none) x every
  ``timestep_spacing`` x ``final_sigmas_type`` (zero / sigma_min), SD 1.5
  config. The grid is the same for every ``prediction_type`` (set_timesteps
  never reads it), so one prediction type is recorded.
* The SD3 training sigma table (``FlowMatchEulerDiscreteScheduler(shift=3)``'s
  ``sigmas`` before ``set_timesteps``) and the sigmas the SD3 training script
  picks for given u (``indices = (u * N).long()``).
* diffusers' ``compute_density_for_timestep_sampling(weighting_scheme="mode")``
  (training_utils.py): the uniform draws and the outputs, float32 (the
  library's default) and float64 (same function under
  ``torch.set_default_dtype(torch.float64)``), and the density of gaussflow's
  time ``t = 1 - u_mode`` at those points from autograd of the re-stated line.
* scipy's ``beta.ppf`` and ``betainc`` values for special.rs.

Usage: /work/venv-goldens/bin/python scripts/goldens/gen_grids.py
"""

import math
import sys
from pathlib import Path

import numpy
import scipy
import scipy.special
import scipy.stats
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import arr  # noqa: E402

import diffusers  # noqa: E402
from diffusers import EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler  # noqa: E402
from diffusers.training_utils import compute_density_for_timestep_sampling  # noqa: E402

K, KD_SHA = common.import_kdiffusion_sampling()

COMFY_SAMPLERS_COMMIT = "e0d4ea77a9f6fda218619802b8c4e83cda5db082"
COMFY_MODEL_SAMPLING_COMMIT = "38a99a826e14dd509ef32cfb68aa981ba782ec41"

# ------------------------------------------------------------------ ComfyUI, verbatim


def make_beta_schedule(schedule, n_timestep, linear_start=1e-4, linear_end=2e-2, cosine_s=8e-3):
    # comfy/ldm/modules/diffusionmodules/util.py, the "linear" branch (the only one used here)
    if schedule == "linear":
        betas = (
                torch.linspace(linear_start ** 0.5, linear_end ** 0.5, n_timestep, dtype=torch.float64) ** 2
        )
    else:
        raise ValueError(schedule)
    return betas


class ModelSamplingDiscrete(torch.nn.Module):
    # comfy/model_sampling.py (model_config=None, zsnr=False): SD 1.x defaults
    def __init__(self, linear_start=0.00085, linear_end=0.012, timesteps=1000):
        super().__init__()
        self._register_schedule(given_betas=None, beta_schedule="linear", timesteps=timesteps,
                                linear_start=linear_start, linear_end=linear_end, cosine_s=8e-3)
        self.sigma_data = 1.0

    def _register_schedule(self, given_betas=None, beta_schedule="linear", timesteps=1000,
                           linear_start=1e-4, linear_end=2e-2, cosine_s=8e-3):
        betas = make_beta_schedule(beta_schedule, timesteps, linear_start=linear_start, linear_end=linear_end, cosine_s=cosine_s)
        alphas = 1. - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        timesteps, = betas.shape
        self.num_timesteps = int(timesteps)
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.set_sigmas(sigmas)

    def set_sigmas(self, sigmas):
        self.register_buffer('sigmas', sigmas.float())
        self.register_buffer('log_sigmas', sigmas.log().float())

    @property
    def sigma_min(self):
        return self.sigmas[0]

    @property
    def sigma_max(self):
        return self.sigmas[-1]

    def timestep(self, sigma):
        log_sigma = sigma.log()
        dists = log_sigma.to(self.log_sigmas.device) - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape).to(sigma.device)

    def sigma(self, timestep):
        t = torch.clamp(timestep.float().to(self.log_sigmas.device), min=0, max=(len(self.sigmas) - 1))
        low_idx = t.floor().long()
        high_idx = t.ceil().long()
        w = t.frac()
        log_sigma = (1 - w) * self.log_sigmas[low_idx] + w * self.log_sigmas[high_idx]
        return log_sigma.exp().to(timestep.device)


def time_snr_shift(alpha, t):
    if alpha == 1.0:
        return t
    return alpha * t / (1 + (alpha - 1) * t)


class ModelSamplingDiscreteFlow(torch.nn.Module):
    # comfy/model_sampling.py, set_parameters(shift, timesteps=1000, multiplier=1000)
    def __init__(self, shift=1.0, multiplier=1000):
        super().__init__()
        self.set_parameters(shift=shift, multiplier=multiplier)

    def set_parameters(self, shift=1.0, timesteps=1000, multiplier=1000):
        self.shift = shift
        self.multiplier = multiplier
        ts = self.sigma((torch.arange(1, timesteps + 1, 1) / timesteps) * multiplier)
        self.register_buffer('sigmas', ts)

    @property
    def sigma_min(self):
        return self.sigmas[0]

    @property
    def sigma_max(self):
        return self.sigmas[-1]

    def timestep(self, sigma):
        return sigma * self.multiplier

    def sigma(self, timestep):
        return time_snr_shift(self.shift, timestep / self.multiplier)


def simple_scheduler(model_sampling, steps):
    s = model_sampling
    sigs = []
    ss = len(s.sigmas) / steps
    for x in range(steps):
        sigs += [float(s.sigmas[-(1 + int(x * ss))])]
    sigs += [0.0]
    return torch.FloatTensor(sigs)


def ddim_scheduler(model_sampling, steps):
    s = model_sampling
    sigs = []
    x = 1
    if math.isclose(float(s.sigmas[x]), 0, abs_tol=0.00001):
        steps += 1
        sigs = []
    else:
        sigs = [0.0]

    ss = max(len(s.sigmas) // steps, 1)
    while x < len(s.sigmas):
        sigs += [float(s.sigmas[x])]
        x += ss
    sigs = sigs[::-1]
    return torch.FloatTensor(sigs)


def normal_scheduler(model_sampling, steps, sgm=False, floor=False):
    s = model_sampling
    start = s.timestep(s.sigma_max)
    end = s.timestep(s.sigma_min)

    append_zero = True
    if sgm:
        timesteps = torch.linspace(start, end, steps + 1)[:-1]
    else:
        if math.isclose(float(s.sigma(end)), 0, abs_tol=0.00001):
            steps += 1
            append_zero = False
        timesteps = torch.linspace(start, end, steps)

    sigs = []
    for x in range(len(timesteps)):
        ts = timesteps[x]
        sigs.append(float(s.sigma(ts)))

    if append_zero:
        sigs += [0.0]

    return torch.FloatTensor(sigs)


# Implemented based on: https://arxiv.org/abs/2407.12173
def beta_scheduler(model_sampling, steps, alpha=0.6, beta=0.6):
    total_timesteps = (len(model_sampling.sigmas) - 1)
    ts = 1 - numpy.linspace(0, 1, steps, endpoint=False)
    ts = numpy.rint(scipy.stats.beta.ppf(ts, alpha, beta) * total_timesteps)

    sigs = []
    last_t = -1
    for t in ts:
        if t != last_t:
            sigs += [float(model_sampling.sigmas[int(t)])]
        last_t = t
    sigs += [0.0]
    return torch.FloatTensor(sigs)


# from: https://github.com/genmoai/models/blob/main/src/mochi_preview/infer.py#L41
def linear_quadratic_schedule(model_sampling, steps, threshold_noise=0.025, linear_steps=None):
    if steps == 1:
        sigma_schedule = [1.0, 0.0]
    else:
        if linear_steps is None:
            linear_steps = steps // 2
        linear_sigma_schedule = [i * threshold_noise / linear_steps for i in range(linear_steps)]
        threshold_noise_step_diff = linear_steps - threshold_noise * steps
        quadratic_steps = steps - linear_steps
        quadratic_coef = threshold_noise_step_diff / (linear_steps * quadratic_steps ** 2)
        linear_coef = threshold_noise / linear_steps - 2 * threshold_noise_step_diff / (quadratic_steps ** 2)
        const = quadratic_coef * (linear_steps ** 2)
        quadratic_sigma_schedule = [
            quadratic_coef * (i ** 2) + linear_coef * i + const
            for i in range(linear_steps, steps)
        ]
        sigma_schedule = linear_sigma_schedule + quadratic_sigma_schedule + [1.0]
        sigma_schedule = [1.0 - x for x in sigma_schedule]
    return torch.FloatTensor(sigma_schedule) * model_sampling.sigma_max.cpu()


# Referenced from https://github.com/AUTOMATIC1111/stable-diffusion-webui/pull/15608
def kl_optimal_scheduler(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    adj_idxs = torch.arange(n, dtype=torch.float).div_(n - 1)
    sigmas = adj_idxs.new_zeros(n + 1)
    sigmas[:-1] = (adj_idxs * math.atan(sigma_min) + (1 - adj_idxs) * math.atan(sigma_max)).tan_()
    return sigmas


# (handler, use_ms) as SCHEDULER_HANDLERS; karras / exponential from k-diffusion
SCHEDULER_HANDLERS = {
    "simple": (simple_scheduler, True),
    "sgm_uniform": (lambda ms, steps: normal_scheduler(ms, steps, sgm=True), True),
    "karras": (K.get_sigmas_karras, False),
    "exponential": (K.get_sigmas_exponential, False),
    "ddim_uniform": (ddim_scheduler, True),
    "beta": (beta_scheduler, True),
    "normal": (normal_scheduler, True),
    "linear_quadratic": (linear_quadratic_schedule, True),
    "kl_optimal": (kl_optimal_scheduler, False),
}


def calculate_sigmas(model_sampling, scheduler_name, steps):
    handler, use_ms = SCHEDULER_HANDLERS[scheduler_name]
    if use_ms:
        return handler(model_sampling, steps)
    return handler(n=steps, sigma_min=float(model_sampling.sigma_min), sigma_max=float(model_sampling.sigma_max))


# ------------------------------------------------------------------ cases


def comfy_cases():
    cases = []
    samplings = {
        "discrete": (ModelSamplingDiscrete(), {"class": "ModelSamplingDiscrete", "beta_schedule": "linear",
                                               "linear_start": 0.00085, "linear_end": 0.012,
                                               "timesteps": 1000, "zsnr": False}),
        "flow": (ModelSamplingDiscreteFlow(shift=3.0), {"class": "ModelSamplingDiscreteFlow",
                                                        "shift": 3.0, "multiplier": 1000, "timesteps": 1000}),
    }
    for ms_name, (ms, cfg) in samplings.items():
        cases.append({
            "id": f"comfy/{ms_name}/table",
            "library": "ComfyUI",
            "function": f"{cfg['class']}.sigmas",
            "config": cfg,
            "dtype": "float32",
            "outputs": {"sigmas": arr(ms.sigmas.float())},
        })
        for name in SCHEDULER_HANDLERS:
            for steps in (2, 5, 10, 20, 30):
                sig = calculate_sigmas(ms, name, steps)
                # what the model receives at each step's start: ComfyUI's apply_model
                # calls model_sampling.timestep(sigma)
                ts = ms.timestep(sig[:-1].float())
                cases.append({
                    "id": f"comfy/{ms_name}/{name}/{steps}",
                    "library": "ComfyUI",
                    "function": f"calculate_sigmas(model_sampling, {name!r}, {steps})",
                    "config": cfg,
                    "scheduler": name,
                    "steps": steps,
                    "dtype": "float32",
                    "dtype_note": "torch float32 (ComfyUI's default); ddim/simple/beta read the float32 table",
                    "outputs": {"sigmas": arr(sig.float()), "model_timesteps": arr(ts)},
                })
    return cases


def config_of(s):
    # the scheduler's config without diffusers' bookkeeping keys (whose
    # "_use_default_values" is a set, listed in no fixed order)
    return {k: v for k, v in s.config.items() if not k.startswith("_")}


SD15 = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}


def diffusers_euler_cases():
    cases = []
    for option in ("none", "karras", "exponential", "beta"):
        for spacing in ("leading", "linspace", "trailing"):
            for final in ("zero", "sigma_min"):
                for steps in (10, 25):
                    cfg = dict(SD15, timestep_spacing=spacing, final_sigmas_type=final,
                               use_karras_sigmas=option == "karras",
                               use_exponential_sigmas=option == "exponential",
                               use_beta_sigmas=option == "beta")
                    s = EulerDiscreteScheduler(**cfg)
                    s.set_timesteps(steps)
                    cases.append({
                        "id": f"diffusers/euler/{option}/{spacing}/{final}/{steps}",
                        "library": "diffusers",
                        "function": f"EulerDiscreteScheduler.set_timesteps({steps})",
                        "config": config_of(s),
                        "option": option,
                        "spacing": spacing,
                        "final_sigmas_type": final,
                        "steps": steps,
                        "dtype": "float32",
                        "dtype_note": "sigma table float32 (torch), respacing NumPy f64, stored float32; "
                                      "the same for every prediction_type",
                        "outputs": {"sigmas": arr(s.sigmas.float()), "timesteps": arr(s.timesteps.float())},
                    })
    return cases


def sd3_cases():
    s = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    sig = s.sigmas.clone()
    n = s.config.num_train_timesteps
    g = torch.Generator().manual_seed(3)
    u = torch.rand(size=(64,), generator=g)
    # examples/dreambooth/train_dreambooth_sd3.py: indices = (u * N).long(); timesteps =
    # noise_scheduler_copy.timesteps[indices]; get_sigmas looks each timestep up again
    indices = (u * n).long()
    timesteps = s.timesteps[indices]
    schedule_timesteps = s.timesteps
    step_indices = [(schedule_timesteps == t).nonzero().item() for t in timesteps]
    picked = sig[step_indices]
    return [{
        "id": "diffusers/sd3/train_sigmas",
        "library": "diffusers",
        "function": "FlowMatchEulerDiscreteScheduler(shift=3.0).sigmas; sigmas[(u * N).long()]",
        "config": config_of(s),
        "dtype": "float32",
        "inputs": {"u": arr(u)},
        "outputs": {"sigmas": arr(sig.float()), "timesteps": arr(s.timesteps.float()),
                    "picked_sigmas": arr(picked.float())},
    }]


def mode_cases():
    cases = []
    for scale in (1.29, 0.5):
        for dtype in (torch.float32, torch.float64):
            old = torch.get_default_dtype()
            torch.set_default_dtype(dtype)
            try:
                g = torch.Generator().manual_seed(7)
                uni = torch.rand(size=(256,), generator=g)
                g = torch.Generator().manual_seed(7)
                u = compute_density_for_timestep_sampling(
                    weighting_scheme="mode", batch_size=256, mode_scale=scale, generator=g)
            finally:
                torch.set_default_dtype(old)
            case = {
                "id": f"diffusers/mode/{scale}/{str(dtype).split('.')[-1]}",
                "library": "diffusers",
                "function": f"compute_density_for_timestep_sampling('mode', 256, mode_scale={scale})",
                "mode_scale": scale,
                "dtype": str(dtype).split(".")[-1],
                "dtype_note": "u = 1 - v - mode_scale*(cos(pi v/2)^2 - 1 + v) for v = torch.rand; "
                              "gaussflow's t is 1 - u (SD3 trains at sigma ~ 1 - u)",
                "inputs": {"uniform": arr(uni)},
                "outputs": {"u": arr(u)},
            }
            if dtype == torch.float64:
                # density of t = 1 - u_mode at t(v): 1/(dt/dv), dt/dv by autograd of the
                # re-stated training_utils line
                v = uni.clone().to(torch.float64).requires_grad_(True)
                um = 1 - v - scale * (torch.cos(math.pi * v / 2) ** 2 - 1 + v)
                t = 1 - um
                (dt,) = torch.autograd.grad(t.sum(), v)
                case["outputs"]["t"] = arr(t.detach())
                case["outputs"]["pdf_t"] = arr(1.0 / dt)
            cases.append(case)
    return cases


def special_cases():
    qs = numpy.concatenate([numpy.array([0.0, 1e-12, 1e-6, 1e-3, 0.01, 0.05]),
                            numpy.linspace(0.1, 0.9, 9),
                            numpy.array([0.95, 0.99, 0.999, 1 - 1e-6, 1.0])])
    xs = numpy.array([0.0, 1e-9, 1e-4, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.9999, 1.0])
    cases = []
    for a, b in ((0.6, 0.6), (0.5, 0.5), (2.0, 5.0), (1.0, 1.0), (5.0, 0.7), (0.3, 3.0)):
        cases.append({
            "id": f"scipy/beta/{a}/{b}",
            "library": "scipy",
            "function": "scipy.stats.beta.ppf(q, a, b), scipy.special.betainc(a, b, x)",
            "a": a,
            "b": b,
            "dtype": "float64",
            "inputs": {"q": arr(qs), "x": arr(xs)},
            "outputs": {"ppf": arr(scipy.stats.beta.ppf(qs, a, b)),
                        "betainc": arr(scipy.special.betainc(a, b, xs))},
        })
    return cases


def main():
    cases = comfy_cases() + diffusers_euler_cases() + sd3_cases() + mode_cases() + special_cases()
    out = common.DATA / "grids.json"
    what = ("Time grids: ComfyUI's 9 schedulers over ModelSamplingDiscrete / ModelSamplingDiscreteFlow "
            "(ComfyUI formulas re-stated verbatim from Comfy-Org/ComfyUI comfy/samplers.py@"
            f"{COMFY_SAMPLERS_COMMIT}, comfy/model_sampling.py@{COMFY_MODEL_SAMPLING_COMMIT}); "
            "diffusers Euler karras/exponential/beta sigmas x spacing x final_sigmas_type; the SD3 "
            "training sigma table; diffusers' 'mode' timestep density; scipy beta.ppf / betainc")
    size = common.dump(out, what, cases, generator="scripts/goldens/gen_grids.py",
                       extra_versions={"k-diffusion sampling.py sha256": KD_SHA,
                                       "scipy": scipy.__version__,
                                       "ComfyUI comfy/samplers.py": COMFY_SAMPLERS_COMMIT,
                                       "ComfyUI comfy/model_sampling.py": COMFY_MODEL_SAMPLING_COMMIT})
    print(f"{out}: {len(cases)} cases, {size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
