"""Inside a recurrent model: every gate and state over time, recomputed from the model's own weights.

    cells_of(model)            per layer, one Cell per direction: its equations (kind) and weights
    trace(model, x, grad=...)  run those equations over x (N, T, F): every gate and state, per step,
                               in the sequences' own time order, and the model's prediction
    gate_arrays(model, data, x) the same as numpy arrays keyed (layer, direction, gate), for the API

nn.LSTM, nn.GRU and nn.RNN run their gates inside one fused kernel and return only h (and c), so
the gates are recomputed here with the hand-built cells' equations (lstmctl/models/cells.py) from the
weights the model holds, on the CPU, in the model's dtype. tests/test_inspect.py proves the
recomputed states and outputs equal the model's own for every family, so a figure drawn from a
trace is a picture of the real model. The weights are read detached: the model is never modified,
and gradients taken through a trace (gradient flow, lstmctl/inspection_stats.py) reach no parameter.

Gate names, in the order the figures draw them:
    lstm, peephole: input, forget, output (sigmoid), candidate g (tanh), cell c, hidden h
    coupled:        forget, output, candidate, cell, hidden   (its input gate is 1 - forget)
    gru:            reset, update (sigmoid), candidate n (tanh), hidden
    rnn:            hidden
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lstmctl.data.base import DataBundle
from lstmctl.errors import UserError
from lstmctl.models.base import SequenceModel
from lstmctl.models.layers import HandGRU, HandLSTM
from lstmctl.models.stacked import StackedLSTM

DIRECTIONS = ("forward", "backward")
GATES = {
    "lstm": ("input", "forget", "output", "candidate", "cell", "hidden"),
    "peephole": ("input", "forget", "output", "candidate", "cell", "hidden"),
    "coupled": ("forget", "output", "candidate", "cell", "hidden"),
    "gru": ("reset", "update", "candidate", "hidden"),
    "rnn": ("hidden",),
}
SIGMOID = ("input", "forget", "output", "reset", "update")  # the gates proper: values in (0, 1)
STATES = ("cell", "hidden")  # what a unit carries from step to step


@dataclass(frozen=True)
class Cell:
    """One recurrent layer in one direction: which equations it runs and the weights it runs them with."""

    kind: str  # a key of GATES
    layer: int  # 0 = the layer that reads the input
    direction: str  # "forward" or "backward"
    weights: tuple[torch.Tensor, ...]  # w_ih, w_hh, b_ih, b_hh (+ w_ci, w_cf, w_co for peephole), detached
    act: Callable[[torch.Tensor], torch.Tensor] = torch.tanh  # rnn: tanh or relu

    @property
    def units(self) -> int:
        return int(self.weights[1].shape[1])

    @property
    def gates(self) -> tuple[str, ...]:
        return GATES[self.kind]


def cells_of(model: nn.Module) -> list[list[Cell]]:
    """The model's recurrent layers, bottom first, each a list of its directions' cells."""
    if not isinstance(model, SequenceModel):
        raise UserError(
            f"lstmctl inspect reads models built as a recurrent backbone and a head; this one is a {type(model).__name__}"
        )
    backbone = model.backbone
    parts = list(backbone.layers) if isinstance(backbone, StackedLSTM) else [backbone]
    layers: list[list[Cell]] = []
    for part in parts:
        kind, act = _kind(part)
        directions = 2 if part.bidirectional else 1
        for k in range(part.num_layers):
            layers.append([
                Cell(kind, len(layers), DIRECTIONS[d], _weights(part, f"_l{k}" + ("_reverse" if d else ""), kind), act)
                for d in range(directions)
            ])
    return layers


def _kind(module: nn.Module) -> tuple[str, Callable]:
    if isinstance(module, HandLSTM):
        return ("lstm" if module.variant == "standard" else module.variant), torch.tanh
    if isinstance(module, HandGRU):
        return "gru", torch.tanh
    if isinstance(module, (nn.LSTM, nn.GRU, nn.RNN)):
        if not module.batch_first:
            raise UserError(
                f"lstmctl inspect needs batch_first recurrent layers; this model's {type(module).__name__} is time-major"
            )
        if isinstance(module, nn.LSTM):
            if module.proj_size:
                raise UserError("lstmctl inspect does not handle an nn.LSTM with proj_size (projected hidden states)")
            return "lstm", torch.tanh
        if isinstance(module, nn.GRU):
            return "gru", torch.tanh
        return "rnn", (torch.relu if module.nonlinearity == "relu" else torch.tanh)
    raise UserError(
        f"lstmctl inspect knows nn.LSTM, nn.GRU, nn.RNN and lstmctl's hand-built layers; "
        f"this model's recurrent part is a {type(module).__name__}, which has no gates it can recompute"
    )


def _weights(module: nn.Module, suffix: str, kind: str) -> tuple[torch.Tensor, ...]:
    w_ih, w_hh = getattr(module, "weight_ih" + suffix), getattr(module, "weight_hh" + suffix)
    biases = []
    for name in ("bias_ih", "bias_hh"):  # a layer built with bias=False has none: zeros do the same
        b = getattr(module, name + suffix, None)
        biases.append(w_hh.new_zeros(w_hh.shape[0]) if b is None else b)
    extra = [getattr(module, n + suffix) for n in ("weight_ci", "weight_cf", "weight_co")] if kind == "peephole" else []
    return tuple(w.detach() for w in (w_ih, w_hh, *biases, *extra))


# ---------------------------------------------------------------- one step of each kind of cell
# Each takes (cell, x_t W_ih^T + b_ih, h_{t-1}, c_{t-1}) and returns every gate of the step; the
# equations are cells.py's, written per step so that every intermediate value is kept.


def _lstm_step(cell: Cell, xw, h, c) -> dict[str, torch.Tensor]:
    w_hh, b_hh = cell.weights[1], cell.weights[3]
    i, f, g, o = (xw + (h @ w_hh.t() + b_hh)).chunk(4, dim=1)
    if cell.kind == "peephole":  # the input and forget gates see the previous cell
        w_ci, w_cf, w_co = cell.weights[4:]
        i, f = i + w_ci * c, f + w_cf * c
    i, f, g = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g)
    c = f * c + i * g
    if cell.kind == "peephole":  # the output gate sees the new one
        o = o + w_co * c
    o = torch.sigmoid(o)
    return {"input": i, "forget": f, "output": o, "candidate": g, "cell": c, "hidden": o * torch.tanh(c)}


def _coupled_step(cell: Cell, xw, h, c) -> dict[str, torch.Tensor]:
    w_hh, b_hh = cell.weights[1], cell.weights[3]
    f, g, o = (xw + (h @ w_hh.t() + b_hh)).chunk(3, dim=1)
    f, g, o = torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = g + f * (c - g)  # f c + (1 - f) g
    return {"forget": f, "output": o, "candidate": g, "cell": c, "hidden": o * torch.tanh(c)}


def _gru_step(cell: Cell, xw, h, c) -> dict[str, torch.Tensor]:
    w_hh, b_hh = cell.weights[1], cell.weights[3]
    H = w_hh.shape[1]
    hw = h @ w_hh.t() + b_hh
    r = torch.sigmoid(xw[:, :H] + hw[:, :H])
    z = torch.sigmoid(xw[:, H : 2 * H] + hw[:, H : 2 * H])
    n = torch.tanh(xw[:, 2 * H :] + r * hw[:, 2 * H :])
    return {"reset": r, "update": z, "candidate": n, "hidden": n + z * (h - n)}


def _rnn_step(cell: Cell, xw, h, c) -> dict[str, torch.Tensor]:
    return {"hidden": cell.act(xw + (h @ cell.weights[1].t() + cell.weights[3]))}


STEP = {"lstm": _lstm_step, "peephole": _lstm_step, "coupled": _coupled_step, "gru": _gru_step, "rnn": _rnn_step}


# ---------------------------------------------------------------- a whole model over a batch


@dataclass
class Trace:
    """What every cell of a model did over a batch of sequences, in the sequences' own time order."""

    cells: list[list[Cell]]
    values: dict[tuple[int, str, str], torch.Tensor]  # (layer, direction, gate) -> (N, T, units)
    steps: dict[tuple[int, str], list[torch.Tensor]]  # (layer, direction) -> h_t (N, units) for t = 0..T-1
    output: torch.Tensor  # the last layer's outputs (N, T, directions * units): what the head reads
    prediction: torch.Tensor  # the model's output for the batch, the head applied as the model applies it

    def final(self, state: str = "hidden") -> list[torch.Tensor]:
        """The final h (or c), (N, units), of every layer and direction in nn.LSTM's order (layer by
        layer, forward first); a backward direction ends at step 0, after reading the whole input."""
        return [self.values[(c.layer, c.direction, state)][:, -1 if c.direction == "forward" else 0]
                for layer in self.cells for c in layer]


def trace(model: nn.Module, x: torch.Tensor, *, grad: bool = False, dtype: torch.dtype | None = None) -> Trace:
    """Run the model's recurrence with its own weights over x (N, T, F), every sequence from a zero
    state, as eval mode does (no dropout). grad: keep the graph, for gradients w.r.t. the states.
    dtype: compute in another precision than the model's (the gradient flow uses float64)."""
    cells = cells_of(model)
    if dtype is not None:
        cells = [[replace(c, weights=tuple(w.to(dtype) for w in c.weights)) for c in layer] for layer in cells]
    values: dict[tuple[int, str, str], torch.Tensor] = {}
    steps: dict[tuple[int, str], list[torch.Tensor]] = {}
    x = recurrent_input(model, x)
    with torch.set_grad_enabled(grad):
        inp = x.to(cells[0][0].weights[0].dtype).transpose(0, 1)  # (T, N, F): time-major inside
        if grad:  # the weights are detached: through the input, every h_t is in the graph
            inp = inp.detach().requires_grad_()
        for layer in cells:
            outs = []
            for cell in layer:
                seq = inp.flip(0) if cell.direction == "backward" else inp
                per_step = _run(cell, seq)
                for gate, got in per_step.items():
                    if cell.direction == "backward":  # back to the sequence's own order
                        got = got[::-1]
                    values[(cell.layer, cell.direction, gate)] = torch.stack(got, dim=1)
                steps[(cell.layer, cell.direction)] = per_step["hidden"][:: -1 if cell.direction == "backward" else 1]
                outs.append(values[(cell.layer, cell.direction, "hidden")].transpose(0, 1))
            inp = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
        output = inp.transpose(0, 1)
        prediction = _head(model, output)
    return Trace(cells, values, steps, output, prediction)


def recurrent_input(model: SequenceModel, x: torch.Tensor) -> torch.Tensor:
    """What the recurrent layers read for x (N, T_in, F): x itself, or a conv stem's features (model.conv),
    which pool the input's image rows into fewer steps."""
    if model.stem is None:
        return x
    with torch.no_grad():
        return model.stem(x.to(next(model.stem.parameters()).dtype))


def trace_steps(model: SequenceModel, x: torch.Tensor) -> int:
    """How many steps the recurrent layers run for inputs like x."""
    return recurrent_input(model, x[:1]).shape[1]


def _run(cell: Cell, seq: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """One cell over a time-major sequence (T, N, F): per gate, its value at every step."""
    T, N, _ = seq.shape
    h = c = seq.new_zeros(N, cell.units)
    xw = seq @ cell.weights[0].t() + cell.weights[2]  # the input side of every step in one product
    step = STEP[cell.kind]
    out: dict[str, list[torch.Tensor]] = {g: [] for g in cell.gates}
    for t in range(T):
        now = step(cell, xw[t], h, c)
        h, c = now["hidden"], now.get("cell", c)
        for g in cell.gates:
            out[g].append(now[g])
    return out


def _head(model: SequenceModel, output: torch.Tensor) -> torch.Tensor:
    """The head as SequenceModel.forward applies it (SequenceModel.summarize: per step, the final state
    or a pool over the steps). Its weights are read detached, in the trace's dtype."""
    output = model.summarize(output)
    head = model.head
    bias = None if head.bias is None else head.bias.detach().to(output.dtype)
    return F.linear(output, head.weight.detach().to(output.dtype), bias)


def gate_arrays(model: nn.Module, data: DataBundle, x) -> dict[tuple[int, str, str], np.ndarray]:
    """Run.inspect: every gate and state for raw inputs x, (time, units) arrays for one sequence
    (T, F), (N, time, units) for a batch (N, T, F). Inputs are scaled as the run scaled its
    training inputs (as Run.predict does)."""
    t = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    one = t.dim() == 2
    if one:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[-1] != data.input_size or t.shape[1] == 0:
        raise UserError(
            f"input must be shaped (sequences, steps, {data.input_size}) or (steps, {data.input_size}), got {tuple(np.shape(x))}"
        )
    if not torch.isfinite(t).all():
        raise UserError("input contains NaN or infinite values")
    tr = trace(model, data.scale_inputs(t))
    return {key: (v[0] if one else v).numpy() for key, v in tr.values.items()}
