"""What `lstmctl inspect` measures on a run's split, from traces of the model (lstmctl/inspection.py).

    inspect_opened(opened, split, sample) -> Inspection     everything the figures and --json show

Over a batch of the split (its first sequences, up to GRAD_BATCH):
- saturation: per sigmoid gate, layer and direction, the share of values below LOW or above HIGH
  (a saturated gate is a switch: its gradient σ' = σ(1 - σ) is nearly zero there);
- gradient flow: ‖∂L/∂h_t‖ for every step t, L the batch's training loss (the run's own loss
  function), h_t the (N, units) hidden state of a layer at step t; the gradient is the total one,
  through every later step, taken by autograd on the recomputed recurrence, so it works for nn.LSTM
  runs too. The norm is over the whole batch block. This pass runs in float64, so that a gradient
  that vanishes below float32's smallest numbers (a plain RNN's, over 100 steps) is still measured;
- units that follow the target: the Pearson correlation of each unit's hidden (and, LSTMs, cell)
  state with the quantity the task needs at that step (targets_over_time), across the sequences at
  each step and averaged over the steps (unit_fits); the TOP_UNITS units with the largest |r|.
And for one sequence (`sample`): every gate and state over time, drawn as heatmaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from lstmctl.data.base import IGNORE_INDEX, DataBundle, Split
from lstmctl.data.facts import AddingFacts, CopyFacts, CurveFacts, ImageFacts, SeriesFacts
from lstmctl.errors import UserError
from lstmctl.inspection import SIGMOID, STATES, Cell, Trace, cells_of, trace, trace_steps
from lstmctl.session import OpenedRun, loss_name, make_criterion

SPLITS = ("test", "val", "train")
GRAD_BATCH = 256  # sequences the statistics are taken over (fewer for very long sequences, see _batch_size)
LOW, HIGH = 0.05, 0.95  # a gate value below LOW or above HIGH counts as saturated
TOP_UNITS = 4
ACROSS = 8  # sequences it takes to correlate a unit with the target across sequences, step by step
_BUDGET = 4_000_000  # sequences x steps x units kept per trace: bounds the memory of the gradient pass


@dataclass
class Targets:
    """The quantity a unit could follow, at every step of every sequence of a split."""

    names: list[str]  # one per channel
    values: torch.Tensor  # (N, T, channels), float64
    valid: torch.Tensor  # (N, T) bool: steps where the target is defined


@dataclass
class Inspection:
    """Everything `lstmctl inspect` draws and prints for one run, split and sample."""

    split: str
    sample: int
    batch: int  # sequences the statistics are over
    loss: float  # the training loss of that batch
    cells: list[list[Cell]]
    x: np.ndarray  # the sample's input (T_in, features), as the model read it (a conv stem: T_in image rows pooled to T steps)
    input_names: list[str]
    values: dict[tuple[int, str, str], np.ndarray]  # the sample: (layer, direction, gate) -> (T, units)
    target_names: list[str]
    target: np.ndarray  # the sample's targets over time (T, channels)
    target_valid: np.ndarray  # (T,) bool
    saturation: list[dict]  # per layer, direction, sigmoid gate: mean, low, high, saturated
    gradient: dict[tuple[int, str], np.ndarray]  # (layer, direction) -> ‖∂L/∂h_t‖ for t = 0..T-1
    units: list[dict]  # the units that follow the target best: layer, direction, state, unit, target, channel, r, measured
    unit_lines: list[np.ndarray]  # per unit: its trace on the sample read as the target (T,), NaN where not defined

    @property
    def steps(self) -> int:
        """T, the steps the recurrent layers ran (a conv stem pools the input's rows into fewer)."""
        return len(next(iter(self.values.values())))

    @property
    def has_gates(self) -> bool:
        return any(g in SIGMOID for c in self.flat_cells for g in c.gates)

    @property
    def flat_cells(self) -> list[Cell]:
        return [c for layer in self.cells for c in layer]


def inspect_opened(opened: OpenedRun, split_name: str = "test", sample: int = 0, batch: int = GRAD_BATCH) -> Inspection:
    if split_name not in SPLITS:
        raise UserError(f"--split must be test, val or train, got {split_name!r}")
    data, model = opened.data, opened.model
    split = data.split(split_name)  # a split the run lacks: UserError
    n = len(split)
    if not 0 <= sample < n:
        raise UserError(f"--sample {sample} is out of range: the {split_name} split has {n} sequences (0 to {n - 1})")
    first = split.take(slice(0, _batch_size(opened, split, batch)))
    tr = trace(model, first.x)
    # in float64: a gradient that vanishes below float32's smallest numbers (~1e-45) stays a number, not 0
    criterion = make_criterion(loss_name(opened.cfg, data.task), data.task)
    loss, gradient = gradient_flow(trace(model, first.x, grad=True, dtype=torch.float64), criterion, first.y)
    one = trace(model, split.x[sample : sample + 1])
    values = {k: v[0].numpy() for k, v in one.values.items()}
    steps = tr.output.shape[1]  # the recurrent layers' time axis, which the targets follow
    mine = targets_over_time(data, split.take(slice(sample, sample + 1)), steps)
    units, lines = top_units(tr, targets_over_time(data, first, steps), values)
    return Inspection(
        split=split_name,
        sample=sample,
        batch=len(first),
        loss=loss,
        cells=tr.cells,
        x=split.x[sample].numpy(),
        input_names=input_names(data),
        values=values,
        target_names=mine.names,
        target=mine.values[0].numpy(),
        target_valid=mine.valid[0].numpy(),
        saturation=saturation(tr),
        gradient=gradient,
        units=units,
        unit_lines=[np.where(mine.valid[0].numpy(), line, np.nan) for line in lines],
    )


def _batch_size(opened: OpenedRun, split: Split, batch: int) -> int:
    T = max(split.x.shape[1], trace_steps(opened.model, split.x[:1]))
    width = sum(c.units for layer in cells_of(opened.model) for c in layer)
    return max(1, min(batch, len(split), _BUDGET // max(1, T * width)))


def gradient_flow(tr: Trace, loss_fn, y: torch.Tensor) -> tuple[float, dict[tuple[int, str], np.ndarray]]:
    """The batch's loss_fn(prediction, y), and ‖∂L/∂h_t‖ per layer and direction for every step t
    (of a trace made with grad=True)."""
    if y.is_floating_point():  # regression targets in the trace's precision (class ids stay integers)
        y = y.to(tr.prediction.dtype)
    loss = loss_fn(tr.prediction, y)
    keys = list(tr.steps)
    flat = [h for k in keys for h in tr.steps[k]]
    grads = torch.autograd.grad(loss, flat, allow_unused=True) if loss.requires_grad else [None] * len(flat)
    norms = np.array([0.0 if g is None else float(g.norm()) for g in grads])
    T = len(tr.steps[keys[0]])
    return float(loss.detach()), {k: norms[i * T : (i + 1) * T] for i, k in enumerate(keys)}


def saturation(tr: Trace) -> list[dict]:
    rows = []
    for (layer, direction, gate), v in tr.values.items():
        if gate not in SIGMOID:
            continue
        v = v.detach()
        low, high = float((v < LOW).double().mean()), float((v > HIGH).double().mean())
        rows.append({"layer": layer, "direction": direction, "gate": gate, "mean": float(v.double().mean()),
                     "low": low, "high": high, "saturated": low + high})
    return rows


def targets_over_time(data: DataBundle, split: Split, steps: int | None = None) -> Targets:
    """What a unit could follow at each of the `steps` steps the recurrent layers ran (default: the
    input's; a conv stem pools rows into fewer, and its per-sequence target is held over them):
    - adding: the running sum of the marked values so far (what the model must carry to the end);
    - classification: an indicator per class, 1 where the step's (or the sequence's) class is it,
      scored only where the target is defined (the copy task: the recall steps);
    - other regression: the target in its own units; a per-sequence target is held over every step.
    """
    x, y = split.x, split.y
    N, T = x.shape[0], steps or x.shape[1]
    every = torch.ones(N, T, dtype=torch.bool)
    if isinstance(data.facts, AddingFacts) and T == x.shape[1]:
        marker = x[..., data.facts.marker_channel]
        value = x[..., 1 - data.facts.marker_channel]  # two channels: the values and the markers
        return Targets(["running sum of the marked values"], torch.cumsum(value * marker, 1).double().unsqueeze(-1), every)
    if data.task.classification:
        labels = y if y.dim() == 2 else y[:, None].expand(N, T)
        names = class_names(data)
        return Targets([f"class {c}" for c in names], F.one_hot(labels.clamp(min=0), data.output_size).double(),
                       labels != IGNORE_INDEX)
    y = data.inverse_target(y).double()
    if y.dim() == 2:
        y = y[:, None, :].expand(N, T, y.shape[-1])
    names = list(data.target_names or [])
    if len(names) != y.shape[-1]:
        names = ["target"] if y.shape[-1] == 1 else [f"target {k}" for k in range(y.shape[-1])]
    return Targets(names, y, every)


def unit_fits(states: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """How well each unit of states (N, T, units) follows each target channel: (r (units, channels),
    slope and intercept (T, units, channels) of the least-squares line target ≈ intercept + slope ×
    unit, how). With ACROSS sequences or more, r is the Pearson correlation ACROSS THE SEQUENCES at
    each step (where the target is defined and varies), averaged over the steps: a unit that merely
    drifts with time does not count, and a code whose scale changes over the sequence (the adding
    task's, after the second marker) still does. With fewer sequences (one long curve) it is pooled
    over every (sequence, step) pair, one line for all steps. 0 (and NaN lines) where nothing varies."""
    a = states.detach().double()
    b = targets.values
    if a.shape[0] >= ACROSS:
        w = targets.valid.unsqueeze(-1).double()  # (N, T, 1)
        count = w.sum(0)  # (T, 1)
        ca = (a - (a * w).sum(0) / count.clamp(min=1)) * w
        cb = (b - (b * w).sum(0) / count.clamp(min=1)) * w
        cov = torch.einsum("nth,ntk->thk", ca, cb)
        va, vb = (ca * ca).sum(0)[:, :, None], (cb * cb).sum(0)[:, None, :]
        ok = (va * vb > 1e-24) & (count[:, :, None] >= 2)
        r_t = torch.where(ok, cov / (va * vb).clamp(min=1e-300).sqrt(), torch.nan)
        slope = torch.where(ok, cov / va.clamp(min=1e-300), torch.nan)
        mean_a = ((a * w).sum(0) / count.clamp(min=1))[:, :, None]
        mean_b = ((b * w).sum(0) / count.clamp(min=1))[:, None, :]
        r = torch.nan_to_num(torch.nanmean(r_t, dim=0), nan=0.0)
        return r, slope, mean_b - slope * mean_a, "per step, across sequences"
    keep = targets.valid.reshape(-1)
    fa, fb = a.reshape(-1, a.shape[-1])[keep], b.reshape(-1, b.shape[-1])[keep]
    ca, cb = fa - fa.mean(0), fb - fb.mean(0)
    va, vb = (ca * ca).sum(0)[:, None], (cb * cb).sum(0)[None, :]
    ok = va * vb > 1e-24
    r = torch.where(ok, (ca.t() @ cb) / (va * vb).clamp(min=1e-300).sqrt(), 0.0)
    slope = torch.where(ok, (ca.t() @ cb) / va.clamp(min=1e-300), torch.nan)
    intercept = fb.mean(0)[None, :] - slope * fa.mean(0)[:, None]
    T = a.shape[1]
    return r, slope.expand(T, -1, -1), intercept.expand(T, -1, -1), "pooled over steps"


def top_units(tr: Trace, targets: Targets, sample: dict, k: int = TOP_UNITS) -> tuple[list[dict], list[np.ndarray]]:
    """The k units (distinct layer, direction and unit) whose state follows a target channel best,
    and each one's trace on the sample read as the target through its fitted line(s): what the
    units figure draws. sample: the sample's values, (layer, direction, gate) -> (T, units)."""
    found = []
    for (layer, direction, gate), v in tr.values.items():
        if gate not in STATES:
            continue
        r, slope, intercept, how = unit_fits(v, targets)
        best = r.abs().argmax(dim=1)
        for unit in range(r.shape[0]):
            ch = int(best[unit])
            line = intercept[:, unit, ch].numpy() + slope[:, unit, ch].numpy() * sample[(layer, direction, gate)][:, unit]
            found.append(({"layer": layer, "direction": direction, "state": gate, "unit": unit,
                           "target": targets.names[ch], "channel": ch, "r": float(r[unit, ch]), "measured": how}, line))
    found.sort(key=lambda f: -abs(f[0]["r"]))
    chosen, seen = [], set()
    for u, line in found:
        if len(chosen) == k or u["r"] == 0:
            break
        if (u["layer"], u["direction"], u["unit"]) not in seen:
            seen.add((u["layer"], u["direction"], u["unit"]))
            chosen.append((u, line))
    return [u for u, _ in chosen], [line for _, line in chosen]


def class_names(data: DataBundle) -> list[str]:
    if isinstance(data.facts, (CopyFacts, ImageFacts)):
        return list(data.facts.class_names)
    names = list(data.target_names or [])
    return names if len(names) == data.output_size else [str(k) for k in range(data.output_size)]


def input_names(data: DataBundle) -> list[str]:
    f = data.facts
    if isinstance(f, AddingFacts):
        return ["marker", "value"] if f.marker_channel == 0 else ["value", "marker"]
    if isinstance(f, CopyFacts):
        names = list(f.input_names)
    elif isinstance(f, SeriesFacts):
        names = list(f.features)
    elif isinstance(f, CurveFacts):
        names = [f.input_label]
    else:
        names = []
    return names if len(names) == data.input_size else [f"input {k}" for k in range(data.input_size)]


def summary(insp: Inspection) -> dict:
    """The numbers of an inspection, JSON-ready (what --json prints besides the run and the figures)."""
    grad = []
    for (layer, direction), norms in insp.gradient.items():
        first, last = float(norms[0]), float(norms[-1])
        grad.append({"layer": layer, "direction": direction, "first": first, "last": last,
                     "first_over_last": first / last if last > 0 else None, "norms": [float(v) for v in norms]})
    return {
        "split": insp.split,
        "sample": insp.sample,
        "batch": insp.batch,
        "loss": insp.loss,
        "layers": [{"layer": c.layer, "direction": c.direction, "kind": c.kind, "units": c.units, "gates": list(c.gates)}
                   for c in insp.flat_cells],
        "saturation": insp.saturation,
        "gradient_flow": grad,
        "units": insp.units,
    }
