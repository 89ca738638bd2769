"""Ground truth for diffusers' timestep spacings (tests/data/spacing.json).

Runs the real diffusers schedulers (DDIMScheduler, DPMSolverMultistepScheduler,
EulerDiscreteScheduler) and records what `set_timesteps(n)` produces for
1000 training steps and the step counts the project's regression tests use
(10, 25, 50, 999 among them), for every spacing and steps_offset 0/1.
Euler also records its float32 sigmas (scaled_linear betas, the SD config),
and Euler and DPM-Solver++ with `use_karras_sigmas=True` their timesteps and
sigmas.

Usage (CPU wheels suffice):
    pip install torch diffusers==0.42.1 numpy
    python tests/data/gen/gen_spacing.py > tests/data/spacing.json
"""

import json
import sys

import diffusers
import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

N_TRAIN = 1000
STEPS = [1, 2, 3, 7, 10, 25, 30, 50, 64, 100, 250, 333, 500, 999, 1000]
SPACINGS = ["leading", "trailing", "linspace"]


def f32_list(a):
    # shortest decimal that round-trips in float32
    return [float(np.format_float_positional(np.float32(x), unique=True, trim="-")) for x in a]


cases = []
for spacing in SPACINGS:
    for offset in (0, 1):
        for n in STEPS:
            base = dict(num_train_timesteps=N_TRAIN, timestep_spacing=spacing, steps_offset=offset)
            case = {"spacing": spacing, "steps_offset": offset, "num_inference_steps": n}
            s = DDIMScheduler(**base)
            s.set_timesteps(n)
            case["ddim_timesteps"] = s.timesteps.tolist()
            case["ddim_prev_timesteps"] = [int(t) - N_TRAIN // n for t in s.timesteps.tolist()]
            try:
                s = DPMSolverMultistepScheduler(**base)
                s.set_timesteps(n)
                case["dpm_timesteps"] = s.timesteps.tolist()
            except Exception as e:  # noqa: BLE001 - record what diffusers says
                case["dpm_error"] = repr(e)
            s = EulerDiscreteScheduler(
                beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", **base
            )
            s.set_timesteps(n)
            case["euler_timesteps"] = f32_list(s.timesteps.numpy())
            case["euler_sigmas"] = f32_list(s.sigmas.numpy())
            if n >= 2:
                s = EulerDiscreteScheduler(
                    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                    use_karras_sigmas=True, **base
                )
                s.set_timesteps(n)
                case["euler_karras_timesteps"] = f32_list(s.timesteps.numpy())
                case["euler_karras_sigmas"] = f32_list(s.sigmas.numpy())
                s = DPMSolverMultistepScheduler(
                    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                    use_karras_sigmas=True, **base
                )
                s.set_timesteps(n)
                case["dpm_karras_timesteps"] = s.timesteps.tolist()
                case["dpm_karras_sigmas"] = f32_list(s.sigmas.numpy())
            cases.append(case)

json.dump(
    {
        "what": "diffusers set_timesteps for DDIM / DPM-Solver++ / Euler, 1000 training steps",
        "versions": {"diffusers": diffusers.__version__, "torch": torch.__version__, "numpy": np.__version__},
        "generator": "tests/data/gen/gen_spacing.py",
        "cases": cases,
    },
    sys.stdout,
)
