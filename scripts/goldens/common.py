"""Shared parts of the golden generators (see scripts/goldens/README.md).

Array encoding, the closed-form models of tests/data/README.md, the
k-diffusion import without its package ``__init__`` and a recording noise
sampler. Everything the generators write goes through ``arr``/``dump`` so the
files keep the format tests/data/README.md describes.
"""

import hashlib
import importlib.util
import json
import math
import platform
import sys
import types
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"

ARRAY_ENCODING = (
    "{dtype, shape, data(flat row-major)}; float32 written as shortest f32 round-trip "
    "decimal, float64 as shortest f64 round-trip decimal (Python repr)"
)


# ---------------------------------------------------------------- encoding


def _f32(x):
    # shortest decimal that round-trips in float32 (parse it as f32 directly)
    return float(np.format_float_positional(np.float32(x), unique=True, trim="-"))


def arr(t):
    """Encode a tensor / ndarray / list as {dtype, shape, data}."""
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    a = np.asarray(t)
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        if np.isnan(a).all():
            # valid JSON has no NaN: say so instead of writing a number
            return {"dtype": str(a.dtype), "shape": list(a.shape), "all_nan": True}
        raise ValueError("non-finite values in a golden array")
    if a.dtype == np.float32:
        data = [_f32(x) for x in a.reshape(-1)]
        dt = "float32"
    elif a.dtype == np.float64:
        data = [float(x) for x in a.reshape(-1)]
        dt = "float64"
    elif np.issubdtype(a.dtype, np.integer):
        data = [int(x) for x in a.reshape(-1)]
        dt = "int64"
    else:
        raise TypeError(f"unsupported dtype {a.dtype}")
    return {"dtype": dt, "shape": list(a.shape), "data": data}


def scalar(x):
    """A Python float/int from a 0-dim tensor or number; f32 tensors exactly as their double."""
    if isinstance(x, torch.Tensor):
        x = x.item()
    if isinstance(x, (np.floating,)):
        x = float(x)
    if isinstance(x, (np.integer,)):
        x = int(x)
    return x


def f32_exact(x):
    """The exact double value of a float32 quantity (what the Rust side gets from `x as f64`)."""
    return float(np.float32(scalar(x)))


def _sanitize(o):
    # JSON has no inf/NaN; only config values (e.g. lambda_min_clipped = -inf) are non-finite
    # here (arrays are checked in arr), and they become the strings "inf" / "-inf" / "nan"
    if isinstance(o, float) and not math.isfinite(o):
        return repr(o)
    if isinstance(o, dict):
        return {k: _sanitize(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_sanitize(v) for v in o]
    return o


def _flat(v):
    return not isinstance(v, (dict, list)) or (
        isinstance(v, list) and len(v) <= 8 and all(not isinstance(x, (dict, list)) for x in v))


def _compact(o, indent=0):
    # arrays and small scalar records on one line, everything else indented
    pad = "  " * indent
    if isinstance(o, dict) and set(o) == {"dtype", "shape", "data"}:
        return json.dumps(o, separators=(",", ":"), allow_nan=False)
    if isinstance(o, dict):
        if not o:
            return "{}"
        if len(o) <= 12 and all(_flat(v) for v in o.values()):
            return json.dumps(o, allow_nan=False)
        items = [f"{pad}  {json.dumps(k)}: {_compact(v, indent + 1)}" for k, v in o.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(o, list):
        if all(not isinstance(v, (dict, list)) for v in o):
            return json.dumps(o, allow_nan=False)
        items = [pad + "  " + _compact(v, indent + 1) for v in o]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(o, allow_nan=False)


def versions(extra=None):
    import diffusers

    v = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "diffusers": diffusers.__version__,
    }
    try:
        from importlib.metadata import version

        v["k-diffusion"] = version("k-diffusion")
        v["torchsde"] = version("torchsde")
        v["scipy"] = version("scipy")
    except Exception:  # noqa: BLE001 - versions are informative only
        pass
    if extra:
        v.update(extra)
    return v


def dump(path, what, cases, extra_versions=None, generator=None, models=None):
    doc = {
        "what": what,
        "versions": versions(extra_versions),
        "generator": generator,
        "array_encoding": ARRAY_ENCODING,
    }
    if models:
        doc["models"] = models
    doc["n_cases"] = len(cases)
    doc["cases"] = cases
    text = _compact(_sanitize(doc)) + "\n"
    Path(path).write_text(text)
    return len(text)


# ---------------------------------------------------------------- k-diffusion import


def import_kdiffusion_sampling():
    """k_diffusion.sampling without the package __init__ (which pulls in
    clip, wandb, jsonmerge... that the venv does not have)."""
    spec = importlib.util.find_spec("k_diffusion")
    root = Path(spec.submodule_search_locations[0])
    if "k_diffusion" not in sys.modules or not hasattr(sys.modules["k_diffusion"], "_golden_stub"):
        pkg = types.ModuleType("k_diffusion")
        pkg.__path__ = [str(root)]
        pkg._golden_stub = True
        sys.modules["k_diffusion"] = pkg
    mods = {}
    for name in ("utils", "sampling"):
        full = f"k_diffusion.{name}"
        if full in sys.modules:
            mods[name] = sys.modules[full]
            continue
        s = importlib.util.spec_from_file_location(full, root / f"{name}.py")
        m = importlib.util.module_from_spec(s)
        sys.modules[full] = m
        s.loader.exec_module(m)
        setattr(sys.modules["k_diffusion"], name, m)
        mods[name] = m
    sha = hashlib.sha256((root / "sampling.py").read_bytes()).hexdigest()
    return mods["sampling"], sha


# ---------------------------------------------------------------- models

GAUSS_VP_FORMULA = (
    "Exact posterior-mean model for data x0 ~ N(mu, s^2 I) observed as z = a*x0 + g*eps, "
    "a = sqrt(ab), g = sqrt(1-ab): k = a*s^2/(ab*s^2 + 1 - ab); x0_hat = mu + k*(z - a*mu); "
    "eps_hat = (z - a*x0_hat)/g; v_hat = a*eps_hat - g*x0_hat. Output x0_hat ('sample'), eps_hat "
    "('epsilon') or v_hat ('v_prediction'). Evaluated in float64 (z upcast, ab the exact double of "
    "the recorded model_ab), then cast to the case dtype."
)

GAUSS_FLOW_FORMULA = (
    "The same Gaussian x0 ~ N(mu, s^2 I) on the path z = (1 - t)*x0 + t*eps: "
    "k = (1-t)*s^2/((1-t)^2 s^2 + t^2); x0_hat = mu + k*(z - (1-t)*mu); eps_hat = (z - (1-t)*x0_hat)/t; "
    "output v_hat = eps_hat - x0_hat (= dz/dt). Evaluated in float64 (t the exact double of the "
    "recorded model_t), then cast to the case dtype."
)

KD_GAUSS_FORMULA = (
    "k-diffusion denoiser D(x, sigma) = x * s^2/(s^2 + sigma^2) with s = 0.5 (exact denoiser of "
    "N(0, s^2 I) data in variance-exploding form x = x0 + sigma*eps), sigma per batch row, float64."
)

KD_GMM_FORMULA = (
    "2-D Gaussian-mixture exact denoiser acting on each 2-vector of the last axis. Data p(x0) = "
    "sum_k w_k N(m_k, s_k^2 I_2). For x = x0 + sigma*eps: v_k = s_k^2 + sigma^2; log r_k = log w_k "
    "- |x - m_k|^2/(2 v_k) - log v_k, r = softmax_k(log r); D(x, sigma) = sum_k r_k * (m_k + "
    "(s_k^2/v_k) * (x - m_k)). float64."
)

GMM = {"w": [0.4, 0.6], "m": [[-1.0, 0.5], [1.0, -0.25]], "s": [0.3, 0.5]}


def gauss_vp(z, ab, mu, s, prediction_type, out_dtype):
    """README's gauss_vp. z: model input (any dtype), ab: float (f64)."""
    z = z.to(torch.float64)
    mu = mu.to(torch.float64)
    a = math.sqrt(ab)
    g = math.sqrt(1.0 - ab)
    k = a * s * s / (ab * s * s + 1.0 - ab)
    x0 = mu + k * (z - a * mu)
    if prediction_type == "sample":
        out = x0
    else:
        eps = (z - a * x0) / g
        if prediction_type == "epsilon":
            out = eps
        elif prediction_type == "v_prediction":
            out = a * eps - g * x0
        else:
            raise ValueError(prediction_type)
    return out.to(out_dtype)


def gauss_flow(z, t, mu, s, out_dtype):
    """README's gauss_flow: z = (1-t) x0 + t eps, output eps_hat - x0_hat."""
    z = z.to(torch.float64)
    mu = mu.to(torch.float64)
    a = 1.0 - t
    k = a * s * s / (a * a * s * s + t * t)
    x0 = mu + k * (z - a * mu)
    eps = (z - a * x0) / t
    return (eps - x0).to(out_dtype)


def kd_gauss(x, sigma, s=0.5):
    sig = sigma.to(torch.float64).reshape([-1] + [1] * (x.ndim - 1))
    return x * (s * s) / (s * s + sig * sig)


def kd_gmm(x, sigma, w=GMM["w"], m=GMM["m"], s=GMM["s"]):
    """x: [..., 2]; sigma: [batch] broadcast over the batch axis."""
    sig = sigma.to(torch.float64).reshape([-1] + [1] * (x.ndim - 1))  # [B,1,..,1]
    num = 0.0
    logits = []
    parts = []
    for wk, mk, sk in zip(w, m, s):
        mk = torch.tensor(mk, dtype=torch.float64)
        vk = sk * sk + sig * sig  # [B,1,...]
        d2 = ((x - mk) ** 2).sum(-1, keepdim=True)
        logits.append(math.log(wk) - d2 / (2 * vk) - torch.log(vk))
        parts.append(mk + (sk * sk / vk) * (x - mk))
    lg = torch.cat(logits, -1)
    r = torch.softmax(lg, -1)
    for k, p in enumerate(parts):
        num = num + r[..., k : k + 1] * p
    return num


# ---------------------------------------------------------------- noise


class RecordingNoise:
    """Wraps a library noise sampler (k-diffusion signature ``f(sigma, sigma_next)``)
    and keeps every draw in call order, with the (sigma, sigma_next) it was asked for."""

    def __init__(self, inner):
        self.inner = inner
        self.draws = []
        self.pairs = []

    def __call__(self, sigma, sigma_next):
        n = self.inner(sigma, sigma_next)
        self.draws.append(n.detach().clone())
        self.pairs.append([scalar(sigma), scalar(sigma_next)])
        return n

    def stacked(self):
        return torch.stack(self.draws) if self.draws else None


class RecordingRandn:
    """Wraps a function returning random tensors (diffusers' ``randn_tensor``) and keeps
    every result in call order."""

    def __init__(self, inner):
        self.inner = inner
        self.draws = []

    def __call__(self, *a, **k):
        n = self.inner(*a, **k)
        self.draws.append(n.detach().clone())
        return n
