#!/usr/bin/env python3
"""Assemble every kernels/*.ptx with ptxas and fail on spills or local memory.

    python3 scripts/check_ptx.py [--arch sm_80,sm_90] [--markdown]

ptxas comes from the PyPI wheel `nvidia-cuda-nvcc-cu12==12.9.86` (found
through the installed `nvidia` package, or PTXAS=/path/to/ptxas). For each
file and architecture it runs `ptxas -v`, which also rejects malformed PTX and
any construct newer than the declared `.version` (exit 255), and prints one
row per kernel: registers, stack frame, spill stores/loads, shared memory,
constant bank 0. Any stack frame, spill or local memory fails the run.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"


def ptxas_path():
    path = os.environ.get("PTXAS")
    if path:
        return path
    spec = importlib.util.find_spec("nvidia.cuda_nvcc")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("ptxas not found: pip install nvidia-cuda-nvcc-cu12==12.9.86 (or set PTXAS)")
    return str(Path(list(spec.submodule_search_locations)[0]) / "bin" / "ptxas")


def parse(out):
    """ptxas -v output -> {kernel: {regs, stack, spill_st, spill_ld, smem, cmem, lmem}}."""
    rows, cur = {}, None
    for line in out.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            cur = rows.setdefault(m.group(1), {"lmem": 0, "smem": 0, "cmem": 0})
            continue
        if cur is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            cur["stack"], cur["spill_st"], cur["spill_ld"] = map(int, m.groups())
        m = re.search(r"Used (\d+) registers", line)
        if m:
            cur["regs"] = int(m.group(1))
            for amount, kind in re.findall(r"(\d+) bytes (smem|lmem|cmem\[0\])", line):
                cur[kind.replace("[0]", "")] = int(amount)
    return rows


def main():
    archs = ["sm_70", "sm_80", "sm_90"]
    for i, a in enumerate(sys.argv):
        if a == "--arch":
            archs = sys.argv[i + 1].split(",")
    markdown = "--markdown" in sys.argv
    ptxas = ptxas_path()
    files = sorted(KERNELS.glob("*.ptx"))
    if not files:
        sys.exit("no kernels/*.ptx")
    failures, table = [], []
    for f in files:
        for arch in archs:
            p = subprocess.run([ptxas, "-v", f"-arch={arch}", str(f), "-o", os.devnull],
                               capture_output=True, text=True)
            if p.returncode != 0:
                failures.append(f"{f.name} {arch}: ptxas exit {p.returncode}\n{p.stderr}{p.stdout}")
                continue
            for kernel, r in parse(p.stderr + p.stdout).items():
                table.append((f.name, arch, kernel, r))
                bad = [k for k in ("stack", "spill_st", "spill_ld", "lmem") if r.get(k, 0)]
                if bad:
                    failures.append(f"{kernel} ({arch}): " + ", ".join(f"{k} {r[k]} bytes" for k in bad))
    if markdown:
        print("| kernel | arch | registers | stack | spill st/ld | smem | cmem[0] |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for _, arch, kernel, r in table:
            print(f"| `{kernel}` | {arch} | {r['regs']} | {r['stack']} | {r['spill_st']}/{r['spill_ld']} "
                  f"| {r['smem']} | {r['cmem']} |")
    else:
        print(f"{'kernel':<24} {'arch':<6} {'regs':>4} {'stack':>5} {'spill':>9} {'smem':>5} {'cmem':>5}")
        for _, arch, kernel, r in table:
            print(f"{kernel:<24} {arch:<6} {r['regs']:>4} {r['stack']:>5} "
                  f"{r['spill_st']:>4}/{r['spill_ld']:<4} {r['smem']:>5} {r['cmem']:>5}")
    if failures:
        print("\nFAILED:\n" + "\n".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"\nptxas: {len(table)} kernel builds over {len(files)} files x {', '.join(archs)}: "
          "no spills, no stack, no local memory")


if __name__ == "__main__":
    main()
