"""Multi-layer, optionally bidirectional recurrent modules built from the hand-written cells.

`HandLSTM` and `HandGRU` take nn.LSTM's / nn.GRU's constructor arguments (batch_first is always
True here), register the same parameters in the same order with the same names and shapes, and
initialise them the same way, so `load_state_dict` works in both directions and, from the same
seed, a HandLSTM starts with exactly the weights an nn.LSTM would.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from lstmctl.models import cells, kernel

VARIANTS = ("standard", "peephole", "coupled")


class _HandRNNBase(nn.Module):
    gates = 4

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0, bidirectional: bool = False):
        super().__init__()
        if num_layers < 1 or hidden_size < 1 or input_size < 1:
            raise ValueError("input_size, hidden_size and num_layers must be >= 1")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.dropout, self.bidirectional = float(dropout), bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        G = self.gates * hidden_size
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size * self.num_directions
            for suffix in self._suffixes(layer):
                self.register_parameter(f"weight_ih{suffix}", nn.Parameter(torch.empty(G, width)))
                self.register_parameter(f"weight_hh{suffix}", nn.Parameter(torch.empty(G, hidden_size)))
                self.register_parameter(f"bias_ih{suffix}", nn.Parameter(torch.empty(G)))
                self.register_parameter(f"bias_hh{suffix}", nn.Parameter(torch.empty(G)))
                self._extra_parameters(suffix)
        self.reset_parameters()

    def _suffixes(self, layer: int):
        return [f"_l{layer}"] + ([f"_l{layer}_reverse"] if self.bidirectional else [])

    def _extra_parameters(self, suffix: str) -> None:
        pass

    def reset_parameters(self) -> None:
        """As PyTorch does it: every parameter uniform in ±1/sqrt(hidden_size), in registration order."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            nn.init.uniform_(w, -bound, bound)

    def _weights(self, suffix: str) -> list[torch.Tensor]:
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") + self._extra_names
        return [getattr(self, n + suffix) for n in names]

    _extra_names: tuple[str, ...] = ()

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    def _zeros(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(self.num_layers * self.num_directions, x.shape[0], self.hidden_size)

    def _check_state(self, name: str, s: torch.Tensor, x: torch.Tensor) -> None:
        want = (self.num_layers * self.num_directions, x.shape[0], self.hidden_size)
        if tuple(s.shape) != want:
            raise RuntimeError(f"Expected {name} size {want}, got {tuple(s.shape)}")

    def _run(self, x: torch.Tensor, states: list[torch.Tensor]):
        """x (B, T, I) batch first; states: per kind (h, or h and c), each (L*D, B, H).

        Returns the output (B, T, D*H) and the final states, each (L*D, B, H).
        """
        if x.dim() != 3:
            raise ValueError(f"expected input of shape (batch, time, features), got {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.shape[-1]}")
        inp = x.transpose(0, 1).contiguous()  # time-major inside
        finals: list[list[torch.Tensor]] = [[] for _ in states]
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(self._suffixes(layer)):
                k = layer * self.num_directions + d
                seq = inp.flip(0) if d == 1 else inp
                out, *last = self._layer(seq, [s[k] for s in states], self._weights(suffix))
                outs.append(out.flip(0) if d == 1 else out)
                for f, s in zip(finals, last):
                    f.append(s)
            inp = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                inp = F.dropout(inp, self.dropout, training=True)
        return inp.transpose(0, 1), [torch.stack(f) for f in finals]


class HandLSTM(_HandRNNBase):
    """The hand-built LSTM: nn.LSTM's parameters and results, lstmctl's own gate code.

    variant: "standard" (bit-for-bit nn.LSTM's layout), "peephole" (adds weight_ci/weight_cf/
    weight_co{suffix}, each (hidden_size,), the cell-to-gate peephole weights), or "coupled"
    (input gate tied to the forget gate, i = 1 - f: three gates f, g, o, so the gate weights are
    (3*hidden_size, ·) and the state dict no longer fits nn.LSTM).
    forward(x, (h0, c0) or None) -> (output (B, T, D*H), (h_n, c_n) each (L*D, B, H)).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0, bidirectional=False, variant: str = "standard"):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        self.variant = variant
        self.gates = 3 if variant == "coupled" else 4
        self._extra_names = ("weight_ci", "weight_cf", "weight_co") if variant == "peephole" else ()
        super().__init__(input_size, hidden_size, num_layers, dropout, bidirectional)

    def _extra_parameters(self, suffix: str) -> None:
        for n in self._extra_names:
            self.register_parameter(n + suffix, nn.Parameter(torch.empty(self.hidden_size)))

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", variant={self.variant}" if self.variant != "standard" else "")

    def _layer(self, seq, state, w):
        h0, c0 = state
        if self.variant == "standard":
            return cells.lstm_layer(seq, h0, c0, *w)
        if self.variant == "peephole":
            return cells.peephole_layer(seq, h0, c0, *w)
        return cells.coupled_layer(seq, h0, c0, *w)

    def forward(self, x: torch.Tensor, state=None):
        if state is None:
            h0 = c0 = self._zeros(x)
        else:
            h0, c0 = state
            self._check_state("h0", h0, x)
            self._check_state("c0", c0, x)
        out, (h_n, c_n) = self._run(x, [h0, c0])
        return out, (h_n, c_n)


class HandGRU(_HandRNNBase):
    """The hand-built GRU: nn.GRU's parameters (gate order r, z, n) and results.

    forward(x, h0 or None) -> (output (B, T, D*H), h_n (L*D, B, H)).
    """

    gates = 3

    def _layer(self, seq, state, w):
        return cells.gru_layer(seq, state[0], *w)

    def forward(self, x: torch.Tensor, state=None):
        h0 = self._zeros(x) if state is None else state
        self._check_state("h0", h0, x)
        out, (h_n,) = self._run(x, [h0])
        return out, h_n


def describe_kernel(model: nn.Module, device) -> str | None:
    """What runs the model's hand-built LSTM layers, for run.json and the start of training:
    None if it has none (or only the variants, which are plain torch), else "c (<library>)" or
    "torch (<why>)". Builds the kernel if it is needed and not built yet; a wrong LSTMCTL_KERNEL
    fails here, so callers run it before they create a run directory."""
    if not any(isinstance(m, HandLSTM) and m.variant == "standard" for m in model.modules()):
        return None
    if getattr(device, "type", str(device)) != "cpu":
        return f"torch (the C loops are for the CPU; this run is on {device})"
    return kernel.summary()
