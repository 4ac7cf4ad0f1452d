"""Time the hand-built LSTM against nn.LSTM: forward + backward, CPU, medians of repeated runs.

    .venv/bin/python benchmarks/bench_cells.py                 # default sizes, table + JSON
    .venv/bin/python benchmarks/bench_cells.py --repeats 100 --threads 1 --out /tmp/cells.json

Implementations (all batch-first, same weights, loss = output.sum()):
  torch   nn.LSTM (on CPU: PyTorch's fused oneDNN kernel)
  hand    lstmctl's HandLSTM as it runs by default: the whole sequence in lstmctl's C loops
          (models/_lstm_kernel.c: per step one register-blocked GEMM for the recurrent part and
          the gates in one pass; the backward likewise; weight gradients in one GEMM each)
  hand-torch  the same HandLSTM on its pure-torch path (LSTMCTL_KERNEL=torch: what runs where
          there is no C compiler): one input matmul, one addmm per step, the gates in a dozen
          torch kernels per step, hand-written backward
  naive   the tutorial's per-step cell: four sliced matmuls per step, plain autograd
  script  the same per-step cell as `hand`'s forward, compiled with torch.jit.script, autograd
          backward; its compile time (first call) is reported separately and counted in `script+compile`
The implementations run interleaved (torch, hand, naive, script, torch, ...) so that load from
other processes hits them alike; the table shows medians, the JSON also minima.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lstmctl.models import kernel  # noqa: E402
from lstmctl.models.layers import HandLSTM, describe_kernel  # noqa: E402

from common import cpu_model  # benchmarks/common.py

SIZES = [  # (batch, steps, inputs, units)
    (64, 28, 28, 64),  # row-by-row MNIST size: the first target
    (64, 100, 1, 64),  # a long univariate series: the second target
    (1, 100, 1, 16),  # sin2cos.yaml: one sequence, 16 units
    (32, 50, 8, 128),
]


class NaiveLSTM(nn.Module):
    """The tutorial's cell: per step, four matmuls on [x, h] for four gates."""

    def __init__(self, ref: nn.LSTM):
        super().__init__()
        self.w_ih, self.w_hh = ref.weight_ih_l0, ref.weight_hh_l0
        self.b = ref.bias_ih_l0 + ref.bias_hh_l0

    def forward(self, x):
        B, T, _ = x.shape
        H = self.w_hh.shape[1]
        h = c = x.new_zeros(B, H)
        outs = []
        for t in range(T):
            xt = x[:, t]
            i = torch.sigmoid(xt @ self.w_ih[:H].T + h @ self.w_hh[:H].T + self.b[:H])
            f = torch.sigmoid(xt @ self.w_ih[H : 2 * H].T + h @ self.w_hh[H : 2 * H].T + self.b[H : 2 * H])
            g = torch.tanh(xt @ self.w_ih[2 * H : 3 * H].T + h @ self.w_hh[2 * H : 3 * H].T + self.b[2 * H : 3 * H])
            o = torch.sigmoid(xt @ self.w_ih[3 * H :].T + h @ self.w_hh[3 * H :].T + self.b[3 * H :])
            c = f * c + i * g
            h = o * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, 1)


def _scripted_loop():
    from typing import List

    def loop(xw: List[torch.Tensor], w_hh_t: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        H = h.shape[1]
        outs: List[torch.Tensor] = []
        for t in range(len(xw)):
            gates = torch.addmm(xw[t], h, w_hh_t)
            s = torch.sigmoid(gates)
            g = torch.tanh(gates[:, 2 * H : 3 * H])
            c = s[:, H : 2 * H] * c + s[:, :H] * g
            h = s[:, 3 * H :] * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, 1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.script(loop)


def bench_size(B, T, I, H, repeats, warmup):
    torch.manual_seed(0)
    ref = nn.LSTM(I, H, batch_first=True)
    hand = HandLSTM(I, H)
    hand.load_state_dict(ref.state_dict())
    naive = NaiveLSTM(ref)
    x = torch.randn(B, T, I)

    t0 = time.perf_counter()
    loop = _scripted_loop()
    b_all = ref.bias_ih_l0 + ref.bias_hh_l0

    def run_script():
        xw = torch.addmm(ref.bias_ih_l0 + ref.bias_hh_l0, x.reshape(B * T, I), ref.weight_ih_l0.t()).view(B, T, 4 * H)
        out = loop(list(xw.unbind(1)), ref.weight_hh_l0.t(), x.new_zeros(B, H), x.new_zeros(B, H))
        out.sum().backward()

    run_script()  # first call: scripting + profiling runs
    run_script()
    compile_s = time.perf_counter() - t0
    del b_all

    def on_torch_path():
        os.environ["LSTMCTL_KERNEL"] = "torch"
        try:
            hand(x)[0].sum().backward()
        finally:
            del os.environ["LSTMCTL_KERNEL"]

    fns = {
        "torch": lambda: ref(x)[0].sum().backward(),
        "hand": lambda: hand(x)[0].sum().backward(),
        "hand-torch": on_torch_path,
        "naive": lambda: naive(x).sum().backward(),
        "script": run_script,
    }
    # correctness first: the hand-built output equals nn.LSTM's
    with torch.no_grad():
        diff = (hand(x)[0] - ref(x)[0]).abs().max().item()
    for f in fns.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    mins = {k: min(v) * 1e3 for k, v in times.items()}
    return {
        "batch": B,
        "steps": T,
        "inputs": I,
        "units": H,
        "median_ms": med,
        "min_ms": mins,
        "ratio_vs_torch_median": {k: med[k] / med["torch"] for k in med},
        "ratio_vs_torch_min": {k: mins[k] / mins["torch"] for k in mins},
        "script_compile_s": compile_s,
        "max_abs_diff_hand_vs_torch": diff,
    }


def kernel_build_seconds() -> float | None:
    """What the first hand-built LSTM on a machine pays once: compiling the C kernel (then cached)."""
    import tempfile

    cc = kernel._compiler()
    if cc is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        kernel._build(cc, kernel.FLAG_SETS[0], Path(d) / "k.so")
        return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=40, help="timed runs per implementation and size")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (lstmctl uses 1 for small models)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "cells.json"))
    ap.add_argument("--sizes", default=None, help="e.g. 64x28x28x64,64x100x1x64 (batch x steps x inputs x units)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.pop("LSTMCTL_KERNEL", None)
    path = describe_kernel(HandLSTM(1, 1), torch.device("cpu"))
    build_s = kernel_build_seconds()
    sizes = SIZES if not args.sizes else [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    load_before = os.getloadavg()
    results = [bench_size(*s, args.repeats, args.warmup) for s in sizes]
    load_after = os.getloadavg()

    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s), "
          f"{args.repeats} repeats; load average {load_before[0]:.1f} -> {load_after[0]:.1f}")
    print(f"hand runs on: {path}; building the C kernel from scratch takes "
          + (f"{build_s:.2f} s (once per machine, then cached)" if build_s is not None else "- (no C compiler)"))
    head = (f"{'batch x steps x in x units':>27} | {'torch ms':>8} | {'hand ms':>8} | {'hand-torch ms':>13} | {'naive ms':>8} | "
            f"{'script ms':>9} | hand/torch | hand/torch (min) | hand-torch/torch | naive/torch | script compile s")
    print(head)
    print("-" * len(head))
    for r in results:
        m, q = r["median_ms"], r["ratio_vs_torch_median"]
        size = f"{r['batch']} x {r['steps']} x {r['inputs']} x {r['units']}"
        print(f"{size:>27} | {m['torch']:8.2f} | {m['hand']:8.2f} | {m['hand-torch']:13.2f} | {m['naive']:8.2f} | {m['script']:9.2f} | "
              f"{q['hand']:10.2f} | {r['ratio_vs_torch_min']['hand']:16.2f} | {q['hand-torch']:16.2f} | {q['naive']:11.2f} | "
              f"{r['script_compile_s']:.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "repeats": args.repeats,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "what": "forward + backward of one batch, loss = output.sum(), milliseconds",
        "hand_path": path,
        "kernel_build_s": build_s,
    }
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
