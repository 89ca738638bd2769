"""Golden conditional-flow-matching pairs from torchcfm (tests/data/torchcfm.json).

torchcfm 1.0.7 (``pip install --no-deps torchcfm==1.0.7 pot==0.9.6``: its
package ``__init__`` imports POT for the OT samplers, which these cases do
not use) in float64:

* ``ConditionalFlowMatcher(sigma)`` (I-CFM): ``x_t = t x1 + (1 - t) x0 + sigma eps``,
  ``u_t = x1 - x0``;
* ``TargetConditionalFlowMatcher(sigma)`` (Lipman et al.'s sigma_min path; x0 unused):
  ``x_t = t x1 + (1 - (1 - sigma) t) eps``, ``u_t = (x1 - (1 - sigma) x_t) / (1 - (1 - sigma) t)``.

Each case records the source ``x0`` (standard normal), the data ``x1``, the per-sample
``t`` (torchcfm's time: 0 noise, 1 data), the extra noise ``eps`` it drew
(``return_noise=True``), and its ``xt`` and ``ut``. The Rust side
(tests/golden_cfm.rs) rebuilds them with gaussflow's schedules at ``1 - t``.

    /work/venv-goldens/bin/python scripts/goldens/gen_torchcfm.py
"""

import sys
from importlib.metadata import version
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import arr  # noqa: E402

from torchcfm.conditional_flow_matching import (  # noqa: E402
    ConditionalFlowMatcher,
    TargetConditionalFlowMatcher,
)

torch.set_default_dtype(torch.float64)


def case(cls, sigma, seed, batch=5, dim=7):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch, dim, generator=g)
    x1 = 0.7 * torch.randn(batch, dim, generator=g) + 0.3
    # Times spread over (0, 1), both ends included closely.
    t = torch.tensor([0.0, 0.013, 0.4, 0.77, 0.999])[:batch]
    torch.manual_seed(seed + 1)  # sample_noise_like uses the global generator
    fm = cls(sigma=sigma)
    t_out, xt, ut, eps = fm.sample_location_and_conditional_flow(x0, x1, t=t, return_noise=True)
    return {
        "id": f"{cls.__name__}/sigma={sigma}",
        "function": f"torchcfm.{cls.__name__}(sigma={sigma}).sample_location_and_conditional_flow(x0, x1, t, return_noise=True)",
        "config": {"sigma": sigma},
        "dtype": "float64",
        "inputs": {"x0": arr(x0), "x1": arr(x1), "t": arr(t_out), "eps": arr(eps)},
        "outputs": {"xt": arr(xt), "ut": arr(ut)},
    }


def main():
    cases = []
    for sigma in (0.0, 0.1, 0.5):
        cases.append(case(ConditionalFlowMatcher, sigma, seed=11))
    for sigma in (0.0, 1e-4, 0.1):
        cases.append(case(TargetConditionalFlowMatcher, sigma, seed=23))
    what = (
        "torchcfm 1.0.7 conditional flow matching pairs in float64: ConditionalFlowMatcher "
        "(I-CFM, constant sigma) and TargetConditionalFlowMatcher (Lipman et al.'s sigma_min "
        "path) at sigma in {0, 0.1, 0.5} / {0, 1e-4, 0.1}, 5 samples x 7 elements, times "
        "0, 0.013, 0.4, 0.77, 0.999 (torchcfm's: 0 noise, 1 data)."
    )
    out = common.DATA / "torchcfm.json"
    common.dump(out, what, cases, extra_versions={"torchcfm": version("torchcfm"), "pot": version("pot")},
                generator="scripts/goldens/gen_torchcfm.py")
    print(f"wrote {out} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
