"""Steps per second of an nn.LSTM training step at 1 vs N torch threads: the data behind train.threads=auto.

    python benchmarks/bench_threads.py                # a few sizes, 1 vs all threads, medians of 5
    python benchmarks/bench_threads.py --out t.json

Each case times forward + backward + Adam step on random data (batch, seq_len, hidden). One thread wins
when the work per step is small (thread hand-offs cost more than they save); more threads win once the
matrix products are large. lstmctl's auto rule (lstmctl.train.setup.pick_threads) is checked against this.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch import nn

CASES = [  # (name, batch, seq_len, hidden)
    ("sin2cos: h16, 1x100", 1, 100, 16),
    ("h32, 32x50", 32, 50, 32),
    ("h64, 32x50", 32, 50, 64),
    ("h128, 32x50", 32, 50, 128),
    ("h128, 256x50", 256, 50, 128),
    ("h256, 64x28 (MNIST rows)", 64, 28, 256),
]


def step_time(batch: int, seq: int, hidden: int, threads: int, steps: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    lstm, head = nn.LSTM(1 if hidden <= 16 else 28, hidden, batch_first=True), nn.Linear(hidden, 1)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    x = torch.randn(batch, seq, lstm.input_size)
    y = torch.randn(batch, seq, 1)

    def step():
        opt.zero_grad(set_to_none=True)
        out, _ = lstm(x)
        loss = nn.functional.mse_loss(head(out), y)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget-s", type=float, default=0.3, help="target seconds per measurement")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "threads.json")
    a = ap.parse_args()
    all_threads = torch.get_num_threads()
    counts = sorted({1, all_threads})
    rows = []
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, threads compared: {counts}, load {os.getloadavg()[0]:.1f}")
    print(f"{'case':28} {'params':>8} " + " ".join(f"{f'{c} thr ms':>10}" for c in counts) + f" {'best':>6}")
    for name, batch, seq, hidden in CASES:
        probe = step_time(batch, seq, hidden, 1, 2)
        steps = max(3, int(a.budget_s / max(probe, 1e-6)))
        times = {c: [] for c in counts}
        for _ in range(a.repeats):  # interleaved: a busy neighbour hurts both alike
            for c in counts:
                times[c].append(step_time(batch, seq, hidden, c, steps))
        med = {c: statistics.median(v) for c, v in times.items()}
        lstm = nn.LSTM(1 if hidden <= 16 else 28, hidden)
        n_params = sum(p.numel() for p in lstm.parameters()) + hidden + 1
        best = min(med, key=med.get)
        rows.append({"case": name, "batch": batch, "seq_len": seq, "hidden": hidden, "params": n_params,
                     "step_ms": {str(c): med[c] * 1000 for c in counts}, "best_threads": best})
        print(f"{name:28} {n_params:8d} " + " ".join(f"{med[c] * 1000:10.3f}" for c in counts) + f" {best:6d}")
    torch.set_num_threads(all_threads)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"rows": rows, "cores": os.cpu_count(), "torch": torch.__version__}, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
