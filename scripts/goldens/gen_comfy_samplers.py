"""Golden sampling loops of ComfyUI's own samplers (tests/data/comfy_samplers.json).

ComfyUI is not pip-installable and its code is GPL-3.0, so nothing of it is kept in
this repository: pass the path of ComfyUI's ``comfy/k_diffusion/sampling.py`` (from a
checkout of the pinned commit, ``COMFY_COMMIT`` below) on the command line. This script
loads that file as ``comfy.k_diffusion.sampling`` with stub modules for the imports the
recorded samplers do not need (``comfy.model_patcher`` is reduced to ComfyUI's
``set_model_options_post_cfg_function``, ``comfy.model_sampling`` to the classes the
samplers test with ``isinstance``, ``comfy.utils.model_trange`` to ``range``; ``deis``,
``sa_solver``, ``comfy.memory_management`` are empty), and runs each sampler function
in float64 on the closed-form denoisers of tests/data/README.md (the ones
gen_kdiffusion_samplers.py uses), recording each loop in the same format: sigmas,
every step's scalars, the sigma of every model call, tensors of the first 3 and last 3
steps, x_T, the final sample and every noise draw in call order.

The model is wrapped as ComfyUI wraps one: ``model.inner_model.model_patcher
.get_model_object('model_sampling')`` is an ``EPS`` model sampling (the
variance-exploding convention of SD-style models: the sampler's sigma is k-diffusion's
sigma, the state is k-diffusion's x), and a guided case applies classifier-free
guidance the way ``comfy.samplers.cfg_function`` does -- ``cfg_result = uncond +
(cond - uncond) * cond_scale``, then every ``model_options['sampler_post_cfg_function']``
in turn with ``args['uncond_denoised'] = uncond``, ``args['denoised'] = cfg_result`` --
which is how the CFG++ samplers get the unconditional prediction.

The provenance of each sampler is recorded as the SHA-256 of its function's source text
(``inspect.getsource``) and of the whole file given.

Usage:
  /work/venv-comfy/bin/python scripts/goldens/gen_comfy_samplers.py \\
      /path/to/ComfyUI/comfy/k_diffusion/sampling.py ["note on where that file came from"]

The optional second argument is recorded as ``versions.sampling_py_source`` (e.g. that the
file is an excerpt holding only the recorded functions, copied verbatim).
"""

import hashlib
import importlib.util
import inspect
import platform
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import arr, scalar  # noqa: E402

COMFY_REPO = "https://github.com/comfyanonymous/ComfyUI"
COMFY_COMMIT = "02159d814dee609acc27994c1bf25fc5b40e2aaa"

torch.set_default_dtype(torch.float64)


# ---------------------------------------------------------------- loading ComfyUI's file


class EPS:
    """Stand-in for comfy.model_sampling.EPS (only its type is tested)."""


class CONST:
    """Stand-in for comfy.model_sampling.CONST (flow models; not used here)."""


def set_model_options_post_cfg_function(model_options, post_cfg_function, disable_cfg1_optimization=False):
    # Same behaviour as comfy/model_patcher.py's function of that name.
    model_options["sampler_post_cfg_function"] = model_options.get("sampler_post_cfg_function", []) + [post_cfg_function]
    if disable_cfg1_optimization:
        model_options["disable_cfg1_optimization"] = True
    return model_options


def append_dims(x, target_dims):
    # Same behaviour as comfy/k_diffusion/utils.py's append_dims.
    dims_to_append = target_dims - x.ndim
    if dims_to_append < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * dims_to_append]


def model_trange(n, disable=None, **_):
    return range(n)


def load_comfy_sampling(path):
    path = Path(path).resolve()
    mods = {}

    def stub(name, **attrs):
        m = types.ModuleType(name)
        m._golden_stub = True
        for k, v in attrs.items():
            setattr(m, k, v)
        sys.modules[name] = m
        mods[name] = m
        return m

    comfy = stub("comfy")
    comfy.__path__ = []
    kd = stub("comfy.k_diffusion")
    kd.__path__ = [str(path.parent)]
    comfy.k_diffusion = kd
    comfy.model_patcher = stub("comfy.model_patcher",
                               set_model_options_post_cfg_function=set_model_options_post_cfg_function)
    comfy.model_sampling = stub("comfy.model_sampling", EPS=EPS, CONST=CONST)
    comfy.memory_management = stub("comfy.memory_management")
    comfy.utils = stub("comfy.utils", model_trange=model_trange)
    kd.utils = stub("comfy.k_diffusion.utils", append_dims=append_dims)
    kd.deis = stub("comfy.k_diffusion.deis")
    kd.sa_solver = stub("comfy.k_diffusion.sa_solver")
    spec = importlib.util.spec_from_file_location("comfy.k_diffusion.sampling", path)
    m = importlib.util.module_from_spec(spec)
    sys.modules["comfy.k_diffusion.sampling"] = m
    spec.loader.exec_module(m)
    kd.sampling = m
    return m, hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- the wrapped model


class _Patcher:
    def __init__(self, ms):
        self.ms = ms

    def get_model_object(self, name):
        assert name == "model_sampling", name
        return self.ms


class _Inner:
    pass


class ComfyModel:
    """What a ComfyUI sampler receives as ``model``: ``model(x, sigma, **extra_args)``
    returns the (guided) denoised value, with ComfyUI's attributes for model_sampling."""

    def __init__(self, cond, uncond=None, cond_scale=1.0):
        self.cond, self.uncond, self.cond_scale = cond, uncond, cond_scale
        ms = EPS()
        self.inner_model = _Inner()
        self.inner_model.model_patcher = _Patcher(ms)
        self.inner_model.inner_model = _Inner()
        self.inner_model.inner_model.model_sampling = ms
        self.calls = []  # (sigma, x, cond, uncond or None, returned)

    def __call__(self, x, sigma, model_options=None, seed=None):
        assert torch.all(sigma == sigma[0])
        model_options = model_options or {}
        cond = self.cond(x, sigma)
        if self.uncond is None:
            assert not model_options.get("sampler_post_cfg_function"), "CFG++ sampler on an unguided model"
            out, uncond = cond, None
        else:
            # comfy.samplers.cfg_function (no sampler_cfg_function in model_options)
            uncond = self.uncond(x, sigma)
            out = uncond + (cond - uncond) * self.cond_scale
            for fn in model_options.get("sampler_post_cfg_function", []):
                args = {"denoised": out, "cond": None, "uncond": None, "cond_scale": self.cond_scale, "model": self,
                        "uncond_denoised": uncond, "cond_denoised": cond, "sigma": sigma,
                        "model_options": model_options, "input": x}
                out = fn(args)
        self.calls.append((scalar(sigma[0]), x.clone(), cond.clone(),
                           None if uncond is None else uncond.clone(), out.clone()))
        return out


# ---------------------------------------------------------------- cases

# (case tag, function name, kwargs, guided, draws noise)
SAMPLERS = [
    ("ipndm", "sample_ipndm", {}, False, False),
    ("ipndm_v", "sample_ipndm_v", {}, False, False),
    ("heunpp2", "sample_heunpp2", {}, False, False),
    ("res_multistep", "sample_res_multistep", {}, False, True),
    ("res_multistep_ancestral", "sample_res_multistep_ancestral", {"eta": 1.0}, False, True),
    ("euler_cfg_pp", "sample_euler_cfg_pp", {}, True, False),
    ("euler_ancestral_cfg_pp", "sample_euler_ancestral_cfg_pp", {"eta": 1.0}, True, True),
    ("dpmpp_2m_cfg_pp", "sample_dpmpp_2m_cfg_pp", {}, True, False),
    ("res_multistep_cfg_pp", "sample_res_multistep_cfg_pp", {}, True, True),
    ("res_multistep_ancestral_cfg_pp", "sample_res_multistep_ancestral_cfg_pp", {"eta": 1.0}, True, True),
    ("er_sde", "sample_er_sde", {}, False, True),
]
# Functions a sampler above calls (their source is hashed too).
HELPERS = ["to_d", "get_ancestral_step", "default_noise_sampler", "sigma_to_half_log_snr",
           "res_multistep", "offset_first_sigma_for_snr", "get_sigmas_karras", "get_sigmas_exponential", "append_zero"]

SIGMA_MIN, SIGMA_MAX = 0.03, 14.6
COND_SCALE = 2.0
UNCOND_S = 1.0

UNCOND_FORMULA = ("unconditional denoiser (guided cases): the k-diffusion Gaussian denoiser "
                  "D_u(x, sigma) = x * s_u^2/(s_u^2 + sigma^2) with s_u = 1.0, float64")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    source_note = sys.argv[2] if len(sys.argv) == 3 else "a checkout of the pinned commit"
    C, file_sha = load_comfy_sampling(sys.argv[1])
    grids = {
        "karras15": (lambda: C.get_sigmas_karras(15, SIGMA_MIN, SIGMA_MAX, rho=7.0),
                     "ComfyUI get_sigmas_karras(15, 0.03, 14.6, rho=7) in float64 (default dtype float64)"),
        "exp12": (lambda: C.get_sigmas_exponential(12, SIGMA_MIN, SIGMA_MAX),
                  "ComfyUI get_sigmas_exponential(12, 0.03, 14.6) in float64 (default dtype float64)"),
    }
    models = {
        "gauss": ([3, 7], {"kind": "kd_gauss", "formula": common.KD_GAUSS_FORMULA, "s": 0.5},
                  lambda x, s: common.kd_gauss(x, s)),
        "gmm2d": ([3, 3, 2], dict(kind="kd_gmm2d", formula=common.KD_GMM_FORMULA, **common.GMM),
                  lambda x, s: common.kd_gmm(x, s)),
    }
    uncond = lambda x, sig: common.kd_gauss(x, sig, UNCOND_S)  # noqa: E731

    fn_sha = {}
    for name in [s[1] for s in SAMPLERS] + HELPERS:
        fn_sha[name] = hashlib.sha256(inspect.getsource(getattr(C, name)).encode()).hexdigest()

    cases = []
    seed = 2000
    for tag, fname, kwargs, guided, draws in SAMPLERS:
        for grid in grids:
            for model_name in models:
                seed += 10
                shape, model_desc, fn = models[model_name]
                sigmas = grids[grid][0]()
                g = torch.Generator().manual_seed(seed)
                x_T = torch.randn(shape, generator=g, dtype=torch.float64) * sigmas[0]
                model = ComfyModel(fn, uncond if guided else None, COND_SCALE if guided else 1.0)
                desc = dict(model_desc)
                if guided:
                    desc = {"kind": "guided", "cond": model_desc,
                            "uncond": {"kind": "kd_gauss", "formula": UNCOND_FORMULA, "s": UNCOND_S},
                            "cond_scale": COND_SCALE,
                            "guidance": "comfy.samplers.cfg_function: denoised = uncond + (cond - uncond) * "
                                        "cond_scale; post-CFG hooks get uncond_denoised = uncond"}
                cbs = []
                starts = []
                noise = None

                def callback(info, model=model, cbs=cbs, starts=starts):
                    starts.append(len(model.calls) - 1)
                    cbs.append({"i": info["i"], "sigma": scalar(info["sigma"]),
                                "sigma_hat": scalar(info["sigma_hat"]), "denoised": info["denoised"].clone(),
                                "noise_from": len(noise.draws) if noise else 0})

                kw = dict(kwargs)
                noise_seed = seed + 1
                if draws:
                    noise = common.RecordingNoise(C.default_noise_sampler(x_T, seed=noise_seed))
                    kw["noise_sampler"] = noise
                extra_args = {"seed": noise_seed}
                sampler = getattr(C, fname)
                final = sampler(model, x_T.clone(), sigmas, extra_args=extra_args, callback=callback,
                                disable=True, **kw)
                n = len(sigmas) - 1
                assert len(cbs) == n, (len(cbs), n)
                starts.append(len(model.calls))
                noise_bounds = [c["noise_from"] for c in cbs] + [len(noise.draws) if noise else 0]
                calls = model.calls
                steps = []
                for i, cb in enumerate(cbs):
                    st = {"i": i, "sigma": cb["sigma"], "sigma_hat": cb["sigma_hat"],
                          "sigma_next": scalar(sigmas[i + 1]),
                          "model_call_sigmas": [c[0] for c in calls[starts[i]:starts[i + 1]]],
                          "noise_calls": list(range(noise_bounds[i], noise_bounds[i + 1]))}
                    if "eta" in kwargs:
                        sd, su = C.get_ancestral_step(sigmas[i], sigmas[i + 1], eta=kwargs["eta"])
                        st["get_ancestral_step"] = {"sigma_down": scalar(sd), "sigma_up": scalar(su)}
                    if i < 3 or i >= n - 3:
                        c0 = calls[starts[i]]
                        st["x"] = arr(c0[1])
                        st["denoised"] = arr(cb["denoised"])
                        mc = []
                        for c in calls[starts[i]:starts[i + 1]]:
                            rec = {"sigma": c[0], "x": arr(c[1]), "denoised": arr(c[4])}
                            if guided:
                                rec["cond_denoised"] = arr(c[2])
                                rec["uncond_denoised"] = arr(c[3])
                            mc.append(rec)
                        st["model_calls"] = mc
                        st["x_next"] = arr(calls[starts[i + 1]][1] if i + 1 < n else final)
                    steps.append(st)
                config = dict(kwargs)
                if draws:
                    config["s_noise"] = 1.0
                case = {
                    "id": f"comfy_{tag}_{model_name}_{grid}",
                    "library": "ComfyUI",
                    "function": f"comfy.k_diffusion.sampling.{fname}(model, x_T, sigmas, extra_args={{'seed': "
                                f"{noise_seed}}}"
                                + "".join(f", {k}={v!r}" for k, v in kwargs.items())
                                + (", noise_sampler=recorded" if noise else "") + ")",
                    "function_source_sha256": fn_sha[fname],
                    "config": config,
                    "dtype": "float64",
                    "dtype_note": "torch.set_default_dtype(float64): sigmas, state and model in float64; the "
                                  "sampler's scalars are 0-dim float64 tensors.",
                    "model": desc,
                    "model_sampling": "EPS (sigma is k-diffusion's sigma; alpha = 1 in the samplers' "
                                      "sigma * exp(-log sigma) terms)",
                    "inputs": {"x_T": arr(x_T), "x_T_note": f"randn(shape, generator seed {seed}) * sigmas[0]",
                               "sigmas": arr(sigmas), "sigmas_note": grids[grid][1]},
                    "steps": steps,
                    "outputs": {"final_sample": arr(final)},
                    "n_model_calls": len(calls),
                }
                if noise:
                    case["inputs"]["noise_seed"] = noise_seed
                    if noise.draws:
                        case["inputs"]["noise"] = arr(noise.stacked())
                    case["inputs"]["noise_calls_sigma_pairs"] = noise.pairs
                    case["note"] = ("noise_sampler(sigma, sigma_next) is ComfyUI's default_noise_sampler(x, "
                                    "seed=noise_seed) (a CPU torch.Generator seeded with noise_seed + 1, "
                                    "torch.randn) wrapped to record: its k-th call returned inputs.noise[k] "
                                    "(at inputs.noise_calls_sigma_pairs[k]).")
                    if "eta" not in kwargs and fname != "sample_er_sde":
                        case["note"] += (" eta = 0: the sampler still calls it on every step to sigma_next > 0, "
                                         "with weight sigma_up = 0.")
                if fname == "sample_er_sde":
                    case["note"] += (" er_sde: max_stage = 3, default noise scaler x * (exp(x^0.3) + 10); its "
                                     "integrals are 200-point left Riemann sums over float32 nodes "
                                     "(torch.arange(..., dtype=float32)), which ComfyUI evaluates in float32 "
                                     "(about 1e-8 relative in the final sample against float64 nodes).")
                if fname == "sample_heunpp2":
                    case["note"] = ("s_churn = 0 (default): gamma = 0 and the torch.randn_like draw the loop makes "
                                    "every step is unused. Heun++ (3 calls) while sigmas[i + 2] is not the last "
                                    "sigma, Heun (2 calls) when it is, Euler (1 call) on the last step.")
                cases.append(case)

    what = (
        f"ComfyUI ({COMFY_REPO} at {COMFY_COMMIT}) comfy/k_diffusion/sampling.py sampling loops "
        "(float64) on k-diffusion's closed-form Gaussian and 2-D mixture denoisers (guided cases: the same "
        "as cond, a broader Gaussian as uncond, cond_scale 2), karras-15 and exponential-12 grids, EPS "
        "model sampling: " + ", ".join(s[1] for s in SAMPLERS) + "."
    )
    vers = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "comfyui_repo": COMFY_REPO,
        "comfyui_commit": COMFY_COMMIT,
        "sampling_py_given_sha256": file_sha,
        "sampling_py_source": source_note,
        "comfy_function_source_sha256": fn_sha,
    }
    doc = {"what": what, "versions": vers, "generator": "scripts/goldens/gen_comfy_samplers.py",
           "array_encoding": common.ARRAY_ENCODING, "n_cases": len(cases), "cases": cases}
    out = common.DATA / "comfy_samplers.json"
    text = common._compact(common._sanitize(doc)) + "\n"
    out.write_text(text)
    print(f"{out}: {len(cases)} cases, {len(text)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
