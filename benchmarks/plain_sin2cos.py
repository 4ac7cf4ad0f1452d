"""The sine -> cosine tutorial as a plain PyTorch script: what people write without lstmctl.

An nn.LSTM(1 -> 16) reads sin(t) one value at a time and a linear layer maps each hidden state to
cos(t). Adam (lr 0.01), MSE on the whole training half every epoch, stop once the training loss falls
below 1e-4 (at most 5000 epochs). Same data, model, initialisation order and seed as
`lstmctl train configs/sin2cos.yaml`, so both take the same number of epochs.

    python benchmarks/plain_sin2cos.py            # prints epochs, final loss, test MSE and time
    python benchmarks/plain_sin2cos.py --json     # one JSON line (used by bench_train.py)
"""

from __future__ import annotations

import argparse
import json
import math
import time

T0 = time.perf_counter()  # before importing torch: the subprocess benchmark counts import time too

import torch  # noqa: E402
from torch import nn  # noqa: E402


def make_data(points: int = 200, t_end: float = 12 * math.pi, train_fraction: float = 0.5):
    t = torch.linspace(0.0, t_end, points, dtype=torch.float64)
    x, y = torch.sin(t), torch.cos(t)
    n = int(round(points * train_fraction))
    as_seq = lambda v: v[:, None].float().unsqueeze(0)  # (1 sequence, steps, 1 feature)  # noqa: E731
    return as_seq(x[:n]), as_seq(y[:n]), as_seq(x[n:]), as_seq(y[n:])


class Net(nn.Module):
    def __init__(self, hidden: int = 16):
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out)


def train(seed: int = 0, epochs: int = 5000, stop_at: float = 1e-4, hidden: int = 16, threads: int | None = None) -> dict:
    """Train and return epochs, losses and the seconds spent in the loop."""
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = make_data()
    model = Net(hidden)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.MSELoss()
    start = time.perf_counter()
    epoch, loss_value = 0, math.inf
    for epoch in range(1, epochs + 1):
        opt.zero_grad()
        loss = loss_fn(model(x_train), y_train)
        loss.backward()
        opt.step()
        loss_value = loss.item()
        if loss_value < stop_at:
            break
    loop_s = time.perf_counter() - start
    with torch.no_grad():
        test_mse = loss_fn(model(x_test), y_test).item()
    return {"epochs": epoch, "final_loss": loss_value, "test_mse": test_mse, "loop_s": loop_s, "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's own choice)")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    a = ap.parse_args()
    r = train(a.seed, a.epochs, threads=a.threads)
    r["total_s"] = time.perf_counter() - T0  # from before `import torch`
    if a.json:
        print(json.dumps(r))
    else:
        print(f"epochs {r['epochs']}, final training loss {r['final_loss']:.3g}, test MSE {r['test_mse']:.3g}")
        print(f"training loop {r['loop_s']:.2f} s, whole script {r['total_s']:.2f} s (after interpreter start), {r['threads']} threads")


if __name__ == "__main__":
    main()
