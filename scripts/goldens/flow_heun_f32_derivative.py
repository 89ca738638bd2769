"""FlowMatchHeunDiscreteScheduler's float32 derivative at the smallest sigma.

diffusers 0.42.1's second-order half forms the derivative as
``(sample - (sample - model_output * sigma_next)) / sigma_next`` in float32.
The subtraction rounds at the scale of ``sample`` (~1), and dividing by
``sigma_next`` amplifies that rounding by 1/sigma_next: at the grid's last
nonzero sigma (0.001 for shift 1) the derivative is off by up to
~6e-8 / 0.001 = 6e-5 and the step's output by ~0.5 * |dt| * 6e-5. gaussflow
uses the model output (the derivative exactly), so its f64 replay differs
from diffusers there by that rounding.

This script replays the recorded last corrector step of each flow_heun case
in tests/data/diffusers_samplers.json twice, with diffusers' float32
operations and with the exact derivative in float64, and prints each one's
largest error relative to the largest element of the recorded result (the
float32 replay reproduces diffusers' state bit for bit):

    python3 scripts/goldens/flow_heun_f32_derivative.py

Output (pure Python, no numpy needed):

    flow_heun_shift1: sigma_next 0.001: float32 replay 0.00e+00, exact derivative 1.17e-06
    flow_heun_shift3: sigma_next 0.00892857: float32 replay 0.00e+00, exact derivative 1.79e-07
"""
import json
import os
import struct


def f(x):
    """Round to float32."""
    return struct.unpack("f", struct.pack("f", x))[0]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "tests", "data", "diffusers_samplers.json")
    with open(path) as fh:
        data = json.load(fh)
    for case in data["cases"]:
        if not case["id"].startswith("flow_heun_"):
            continue
        steps = case["steps"]
        sig = [f(s) for s in case["inputs"]["sigmas"]["data"]]
        # The last corrector is call 2n - 3 (calls: t0, then each t_k twice).
        i = len(steps) - 2
        s_prev, s_next = sig[i - 1], sig[i]
        dt = f(s_next - s_prev)
        z0 = steps[i - 1]["sample"]["data"]
        v0 = steps[i - 1]["model_output"]["data"]
        zp = steps[i]["sample"]["data"]
        v1 = steps[i]["model_output"]["data"]
        want = steps[i + 1]["sample"]["data"]
        scale = max(abs(w) for w in want)
        e32 = e64 = 0.0
        for a, b, c, d, w in zip(z0, v0, zp, v1, want):
            a, b, c, d, w = f(a), f(b), f(c), f(d), f(w)
            d0 = f(f(a - f(a - f(b * s_prev))) / s_prev)
            d1 = f(f(c - f(c - f(d * s_next))) / s_next)
            got32 = f(a + f(f(f(0.5) * f(d0 + d1)) * dt))
            got64 = a + 0.5 * (b + d) * (s_next - s_prev)
            e32 = max(e32, abs(got32 - w) / scale)
            e64 = max(e64, abs(got64 - w) / scale)
        print(
            f"{case['id']}: sigma_next {s_next:.6g}: float32 replay {e32:.2e}, "
            f"exact derivative {e64:.2e}"
        )


if __name__ == "__main__":
    main()
