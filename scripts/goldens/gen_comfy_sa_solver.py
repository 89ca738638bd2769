"""Golden sampling loops of ComfyUI's SA-Solver (tests/data/comfy_sa_solver.json).

ComfyUI is not pip-installable and its code is GPL-3.0, so nothing of it is kept in
this repository: pass the paths of ComfyUI's ``comfy/k_diffusion/sampling.py`` and
``comfy/k_diffusion/sa_solver.py`` (from checkouts of the commits below, or excerpts of
them holding the functions used, copied verbatim) on the command line. As
gen_comfy_samplers.py does, this script loads ``sampling.py`` as
``comfy.k_diffusion.sampling`` with stub modules for the imports SA-Solver does not need
(``comfy.model_patcher``, ``comfy.memory_management``, ``deis`` empty;
``comfy.model_sampling`` reduced to the classes tested with ``isinstance``;
``comfy.utils.model_trange`` to ``range``), but ``comfy.k_diffusion.sa_solver`` is the
real file given. Each loop runs ``sample_sa_solver`` / ``sample_sa_solver_pece`` in
float64 on the closed-form denoisers of tests/data/README.md (the Gaussian with s = 0.5
and the 2-D mixture), with ComfyUI's ``default_noise_sampler`` wrapped to record every
draw in call order.

The model sampling is ``EPS`` (k-diffusion's sigma and state x), and for two settings
also ``CONST`` (a flow model: sigma = t, the state z = (1 - t) x0 + t eps, the same denoisers
seen on that path; its ``percent_to_sigma`` is ModelSamplingDiscreteFlow's at shift 3, and the
loop moves its first sigma = 1 to ``percent_to_sigma(1e-4)``, recorded as
``inputs.sigmas_used``). The EPS ``percent_to_sigma``
(what SA-Solver's default tau interval asks for) behaves as ComfyUI's
``ModelSamplingDiscrete`` does for SD 1.x's schedule (scaled-linear betas 0.00085 ...
0.012, 1000 steps, alphas_cumprod and sigmas in float32, log-sigma interpolated at the
timestep (1 - percent) * 999); the stub below is written from that behaviour and its
results are recorded in every case (``config.tau``), so a replay needs only those two
numbers.

Recorded per case: sigmas, x_T, every step's sigma, sigma_next, tau (``tau_func(sigma_next)``
as the loop computes it), the sigma of every model call, the noise-call indices, and
every step's tensors (the state ``x`` the callback sees -- ComfyUI's ``x_pred``, the first
model call's input -- and the denoised value it returned; for PECE also the second call's
input, the corrected state, and output), the final sample and all noise draws. Provenance: the SHA-256 of each function's source text
(``inspect.getsource``) and of each file given.

Usage:
  /work/venv-goldens/bin/python scripts/goldens/gen_comfy_sa_solver.py \\
      /path/to/comfy/k_diffusion/sampling.py /path/to/comfy/k_diffusion/sa_solver.py \\
      ["note on where those files came from"]
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
# The commits the two files were read at (sampling.py is the one gen_comfy_samplers.py
# pins; sa_solver.py was available at this later commit only).
SAMPLING_COMMIT = "02159d814dee609acc27994c1bf25fc5b40e2aaa"
SA_SOLVER_COMMIT = "4328fa894d96811bde5bcdce56b6a4106f62feed"

torch.set_default_dtype(torch.float64)


# ---------------------------------------------------------------- model sampling stubs


def _sd_log_sigmas():
    # SD 1.x discrete schedule as ComfyUI's ModelSamplingDiscrete registers it: betas in
    # float64 (scaled linear), alphas_cumprod then sigmas and log sigmas in float32.
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    ac = torch.tensor(np.cumprod(1.0 - betas, axis=0), dtype=torch.float32)
    sigmas = (((1 - ac) / ac) ** 0.5).float()
    return sigmas.log().float()


class EPS:
    """Stand-in for comfy.model_sampling.EPS with SD 1.x's percent_to_sigma."""

    def __init__(self):
        self.log_sigmas = _sd_log_sigmas()

    def _sigma(self, timestep):
        t = torch.clamp(timestep.float(), min=0, max=len(self.log_sigmas) - 1)
        lo, hi, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[lo] + w * self.log_sigmas[hi]).exp()

    def percent_to_sigma(self, percent):
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return self._sigma(torch.tensor((1.0 - percent) * 999.0)).item()


class CONST:
    """Stand-in for comfy.model_sampling.CONST (flow models: sigma = t, state z = (1 - t) x0 + t eps)
    with the percent_to_sigma of ComfyUI's ModelSamplingDiscreteFlow at shift FLOW_SHIFT
    (0 -> 1, 1 -> 0, else the shifted 1 - percent)."""

    def percent_to_sigma(self, percent):
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return flow_shift(1.0 - percent)


FLOW_SHIFT = 3.0


def flow_shift(t):
    return FLOW_SHIFT * t / (1 + (FLOW_SHIFT - 1) * t)


def common_append_zero(x):
    return torch.cat([x, x.new_zeros([1])])


def model_trange(n, disable=None, **_):
    return range(n)


def load_comfy(sampling_path, sa_solver_path):
    sampling_path, sa_solver_path = Path(sampling_path).resolve(), Path(sa_solver_path).resolve()

    def stub(name, **attrs):
        m = types.ModuleType(name)
        m._golden_stub = True
        for k, v in attrs.items():
            setattr(m, k, v)
        sys.modules[name] = m
        return m

    comfy = stub("comfy")
    comfy.__path__ = []
    kd = stub("comfy.k_diffusion")
    kd.__path__ = [str(sampling_path.parent)]
    comfy.k_diffusion = kd
    comfy.model_patcher = stub("comfy.model_patcher")
    comfy.model_sampling = stub("comfy.model_sampling", EPS=EPS, CONST=CONST)
    comfy.memory_management = stub("comfy.memory_management")
    comfy.utils = stub("comfy.utils", model_trange=model_trange)
    kd.utils = stub("comfy.k_diffusion.utils")
    kd.deis = stub("comfy.k_diffusion.deis")

    def load(name, path):
        spec = importlib.util.spec_from_file_location(name, path)
        m = importlib.util.module_from_spec(spec)
        sys.modules[name] = m
        spec.loader.exec_module(m)
        return m

    kd.sa_solver = load("comfy.k_diffusion.sa_solver", sa_solver_path)
    kd.sampling = load("comfy.k_diffusion.sampling", sampling_path)
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    return kd.sampling, kd.sa_solver, sha(sampling_path), sha(sa_solver_path)


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
    returns the denoised value; ``model.inner_model.model_patcher`` gives the model
    sampling."""

    def __init__(self, fn, ms):
        self.fn = fn
        self.inner_model = _Inner()
        self.inner_model.model_patcher = _Patcher(ms)
        self.inner_model.inner_model = _Inner()
        self.inner_model.inner_model.model_sampling = ms
        self.calls = []  # (sigma, x, returned)

    def __call__(self, x, sigma, seed=None):
        assert torch.all(sigma == sigma[0])
        out = self.fn(x, sigma)
        self.calls.append((scalar(sigma[0]), x.clone(), out.clone()))
        return out


# ---------------------------------------------------------------- cases

# (case tag, function, kwargs; "tau" is (eta, interval) with interval "default" -- the
# sampler's own default from percent_to_sigma(0.2) / (0.8), tau_func=None -- or (start,
# end) sigmas given as get_tau_interval_func(start, end, eta))
VARIANTS = [
    ("sa_solver", "sample_sa_solver", {}, (1.0, "default")),
    ("sa_solver_const", "sample_sa_solver", {}, (1.0, "default")),
    ("sa_solver_pece_const", "sample_sa_solver_pece", {}, (1.0, "default")),
    ("sa_solver_ode", "sample_sa_solver", {}, (0.0, "default")),
    ("sa_solver_p2c3", "sample_sa_solver", {"predictor_order": 2, "corrector_order": 3}, (1.0, "default")),
    ("sa_solver_p1c0", "sample_sa_solver", {"predictor_order": 1, "corrector_order": 0}, (1.0, "default")),
    ("sa_solver_simple2", "sample_sa_solver", {"predictor_order": 2, "corrector_order": 2, "simple_order_2": True},
     (1.0, "default")),
    ("sa_solver_p5c6", "sample_sa_solver", {"predictor_order": 5, "corrector_order": 6}, (1.0, "default")),
    ("sa_solver_eta07_all", "sample_sa_solver", {"s_noise": 0.8}, (0.7, (1e9, 0.0))),
    ("sa_solver_pece", "sample_sa_solver_pece", {}, (1.0, "default")),
]
HELPERS = ["default_noise_sampler", "sigma_to_half_log_snr", "offset_first_sigma_for_snr", "get_sigmas_karras",
           "get_sigmas_exponential", "append_zero"]
SA_HELPERS = ["compute_exponential_coeffs", "compute_stochastic_adams_b_coeffs",
              "compute_simple_stochastic_adams_b_coeffs", "get_tau_interval_func"]

SIGMA_MIN, SIGMA_MAX = 0.03, 14.6


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    source_note = sys.argv[3] if len(sys.argv) == 4 else "checkouts of the commits named"
    C, SA, sampling_sha, sa_sha = load_comfy(sys.argv[1], sys.argv[2])
    eps_ms, const_ms = EPS(), CONST()
    defaults = {"EPS": (eps_ms.percent_to_sigma(0.2), eps_ms.percent_to_sigma(0.8)),
                "CONST": (const_ms.percent_to_sigma(0.2), const_ms.percent_to_sigma(0.8))}
    grids = {
        "karras15": (lambda: C.get_sigmas_karras(15, SIGMA_MIN, SIGMA_MAX, rho=7.0),
                     "ComfyUI get_sigmas_karras(15, 0.03, 14.6, rho=7) in float64 (default dtype float64)"),
        "exp12": (lambda: C.get_sigmas_exponential(12, SIGMA_MIN, SIGMA_MAX),
                  "ComfyUI get_sigmas_exponential(12, 0.03, 14.6) in float64 (default dtype float64)"),
        "karras10_nozero": (lambda: C.get_sigmas_karras(10, SIGMA_MIN, SIGMA_MAX, rho=7.0)[:-1],
                            "ComfyUI get_sigmas_karras(10, 0.03, 14.6, rho=7)[:-1] in float64: no final 0, so "
                            "no lower order at the end and the loop returns its last predicted state"),
        "flow12": (lambda: common_append_zero(flow_shift(torch.linspace(1, 0, 13)[:-1])),
                   "flow model (CONST) sigmas: shift-3 of linspace(1, 0, 13)[:-1], then a final 0 (ComfyUI's "
                   "'simple' scheduler on ModelSamplingDiscreteFlow(shift=3) up to its 1000-entry table), float64; "
                   "sigmas[0] = 1, which the sampler moves to percent_to_sigma(1e-4) (inputs.sigmas_used)"),
    }
    models = {
        "gauss": ([3, 7], {"kind": "kd_gauss", "formula": common.KD_GAUSS_FORMULA, "s": 0.5},
                  lambda x, s: common.kd_gauss(x, s)),
        "gmm2d": ([3, 3, 2], dict(kind="kd_gmm2d", formula=common.KD_GMM_FORMULA, **common.GMM),
                  lambda x, s: common.kd_gmm(x, s)),
    }

    src_sha = lambda f: hashlib.sha256(inspect.getsource(f).encode()).hexdigest()  # noqa: E731
    fn_sha = {n: src_sha(getattr(C, n)) for n in ["sample_sa_solver", "sample_sa_solver_pece"] + HELPERS}
    sa_fn_sha = {n: src_sha(getattr(SA, n)) for n in SA_HELPERS}

    cases = []
    seed = 3000
    for tag, fname, kwargs, (eta, interval) in VARIANTS:
        kind = "CONST" if tag.endswith("_const") else "EPS"
        ms = const_ms if kind == "CONST" else eps_ms
        default_start, default_end = defaults[kind]
        grid_names = {"sa_solver": ["karras15", "exp12", "karras10_nozero"]}.get(
            tag, ["flow12"] if kind == "CONST" else ["karras15", "exp12"])
        for grid in grid_names:
            for model_name in models:
                seed += 10
                shape, desc, fn = models[model_name]
                if kind == "CONST":
                    # the same data seen on the flow path: D(z, t) = D_kd(z/(1 - t), t/(1 - t))
                    fn = (lambda f: lambda z, t: f(z / (1 - t.reshape([-1] + [1] * (z.ndim - 1))),
                                                   t / (1 - t)))(fn)
                    desc = {"kind": "flow", "formula": "D(z, t) = D_kd(z/(1 - t), t/(1 - t)) with D_kd the "
                            "k-diffusion denoiser below (z = (1 - t) x0 + t eps)", "kd": desc}
                sigmas = grids[grid][0]()
                g = torch.Generator().manual_seed(seed)
                x_T = torch.randn(shape, generator=g, dtype=torch.float64) * sigmas[0]
                model = ComfyModel(fn, ms)
                kw = dict(kwargs)
                if interval == "default" and eta == 1.0:
                    start, end = default_start, default_end  # tau_func=None: the sampler builds it
                else:
                    start, end = (default_start, default_end) if interval == "default" else interval
                    kw["tau_func"] = SA.get_tau_interval_func(start, end, eta=eta)
                tau_func = SA.get_tau_interval_func(start, end, eta=eta)  # for the record only
                noise_seed = seed + 1
                noise = common.RecordingNoise(C.default_noise_sampler(x_T, seed=noise_seed))
                kw["noise_sampler"] = noise
                cbs, starts = [], []

                def callback(info, model=model, cbs=cbs, starts=starts, noise=noise):
                    starts.append(len(model.calls) - 1)
                    cbs.append({"i": info["i"], "sigma": scalar(info["sigma"]), "x": info["x"].clone(),
                                "denoised": info["denoised"].clone(), "noise_from": len(noise.draws)})

                final = getattr(C, fname)(model, x_T.clone(), sigmas, extra_args={"seed": noise_seed},
                                          callback=callback, disable=True, **kw)
                n = len(sigmas) - 1
                assert len(cbs) == n, (len(cbs), n)
                starts.append(len(model.calls))
                bounds = [c["noise_from"] for c in cbs] + [len(noise.draws)]
                calls = model.calls
                steps = []
                for i, cb in enumerate(cbs):
                    sn = sigmas[i + 1]
                    assert torch.equal(calls[starts[i]][1], cb["x"])
                    steps.append({
                        "i": i, "sigma": cb["sigma"], "sigma_next": scalar(sn),
                        "tau": tau_func(sn) if scalar(sn) > 0 else None,
                        "model_call_sigmas": [c[0] for c in calls[starts[i]:starts[i + 1]]],
                        "noise_calls": list(range(bounds[i], bounds[i + 1])),
                        "x": arr(cb["x"]),
                        "denoised": arr(cb["denoised"]),
                        # PECE's second call (the corrected state and its denoised value)
                        "later_model_calls": [{"sigma": c[0], "x": arr(c[1]), "denoised": arr(c[2])}
                                              for c in calls[starts[i] + 1:starts[i + 1]]],
                    })
                config = {"predictor_order": 3, "corrector_order": 4, "use_pece": fname.endswith("_pece"),
                          "simple_order_2": False, "s_noise": 1.0}
                config.update({k: v for k, v in kwargs.items()})
                config["tau"] = {"eta": eta, "start_sigma": start, "end_sigma": end,
                                 "rule": "tau(sigma_next) = eta if start_sigma >= sigma_next >= end_sigma else 0 "
                                         "(0 when eta <= 0)",
                                 "source": ("tau_func=None: the sampler's default, get_tau_interval_func("
                                            "percent_to_sigma(0.2), percent_to_sigma(0.8), eta=1.0)"
                                            if "tau_func" not in kw else
                                            f"tau_func=get_tau_interval_func({start!r}, {end!r}, eta={eta!r})")}
                case = {
                    "id": f"comfy_{tag}_{model_name}_{grid}",
                    "library": "ComfyUI",
                    "function": f"comfy.k_diffusion.sampling.{fname}(model, x_T, sigmas, extra_args={{'seed': "
                                f"{noise_seed}}}" + "".join(f", {k}={v!r}" for k, v in kwargs.items())
                                + (", tau_func=..." if "tau_func" in kw else "") + ", noise_sampler=recorded)",
                    "function_source_sha256": fn_sha[fname],
                    "config": config,
                    "dtype": "float64",
                    "dtype_note": "torch.set_default_dtype(float64): sigmas, state, model and the b coefficients "
                                  "in float64.",
                    "model": desc,
                    "model_sampling": kind,
                    "model_sampling_note": (
                        "EPS (sigma is k-diffusion's sigma, lambda = -log sigma, alpha_t = sigma * exp(lambda) = 1 "
                        "up to rounding); percent_to_sigma as ComfyUI's ModelSamplingDiscrete for SD 1.x"
                        if kind == "EPS" else
                        "CONST (flow: sigma = t, the state is z itself, lambda = -logit(sigma), alpha_t = 1 - t); "
                        f"percent_to_sigma as ComfyUI's ModelSamplingDiscreteFlow(shift={FLOW_SHIFT})"),
                    "inputs": {"x_T": arr(x_T), "x_T_note": f"randn(shape, generator seed {seed}) * sigmas[0]",
                               "sigmas": arr(sigmas), "sigmas_note": grids[grid][1], "noise_seed": noise_seed,
                               "noise_calls_sigma_pairs": noise.pairs,
                               "sigmas_used": arr(C.offset_first_sigma_for_snr(sigmas, ms))},
                    "steps": steps,
                    "outputs": {"final_sample": arr(final)},
                    "n_model_calls": len(calls),
                    "note": ("noise_sampler(sigma, sigma_next) is ComfyUI's default_noise_sampler(x, seed="
                             "noise_seed) wrapped to record: its k-th call returned inputs.noise[k]. SA-Solver "
                             "calls it once per predictor step to sigma_next > 0 with tau > 0 and s_noise > 0, "
                             "after that step's model call(s); steps[i].x is x_pred (the state the model sees "
                             "first); the state after the last step is outputs.final_sample."),
                }
                if noise.draws:
                    case["inputs"]["noise"] = arr(noise.stacked())
                cases.append(case)

    what = (
        f"ComfyUI ({COMFY_REPO}) SA-Solver sampling loops (float64): comfy/k_diffusion/sampling.py at "
        f"{SAMPLING_COMMIT} (sample_sa_solver, sample_sa_solver_pece) with comfy/k_diffusion/sa_solver.py at "
        f"{SA_SOLVER_COMMIT}, on k-diffusion's closed-form Gaussian and 2-D mixture denoisers, karras-15 and "
        "exponential-12 grids (defaults also on karras-10 without the final 0), EPS model sampling; the defaults "
        "and PECE also as a flow model (CONST model sampling, shift-3 flow sigmas from 1): "
        + ", ".join(v[0] for v in VARIANTS) + "."
    )
    vers = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "comfyui_repo": COMFY_REPO,
        "comfyui_sampling_py_commit": SAMPLING_COMMIT,
        "comfyui_sa_solver_py_commit": SA_SOLVER_COMMIT,
        "sampling_py_given_sha256": sampling_sha,
        "sa_solver_py_given_sha256": sa_sha,
        "files_source": source_note,
        "comfy_function_source_sha256": fn_sha,
        "comfy_sa_solver_function_source_sha256": sa_fn_sha,
        "percent_to_sigma": {k: {"0.2": v[0], "0.8": v[1]} for k, v in defaults.items()},
    }
    doc = {"what": what, "versions": vers, "generator": "scripts/goldens/gen_comfy_sa_solver.py",
           "array_encoding": common.ARRAY_ENCODING, "n_cases": len(cases), "cases": cases}
    out = common.DATA / "comfy_sa_solver.json"
    text = common._compact(common._sanitize(doc)) + "\n"
    out.write_text(text)
    print(f"{out}: {len(cases)} cases, {len(text)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
