"""What every model shares: a recurrent backbone, a head chosen by the task, initialisation."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from lstmctl.schema import Strict
from lstmctl.data.base import Task
from lstmctl.models.conv import ConvParams, ConvRows


class RecurrentParams(Strict):
    """Parameters common to every recurrent model."""

    hidden_size: int = Field(16, ge=1, le=65536, description="units per layer")
    num_layers: int = Field(1, ge=1, le=64, description="stacked recurrent layers")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout between layers (needs num_layers > 1)")
    init: Literal["default", "normal", "xavier", "orthogonal"] = Field(
        "default", description="weight initialisation (default: PyTorch's uniform)"
    )
    std: float = Field(0.1, gt=0, description="init: normal only, the standard deviation")
    forget_bias: float | None = Field(None, description="LSTM only: initial forget-gate bias, e.g. 1.0")
    pool: Literal["last", "mean", "max"] = Field(
        "last",
        description="per-sequence tasks: what the head reads: the final state (last), or the mean or the "
        "maximum over every step's outputs (each step then gets gradient straight from the loss)",
    )
    conv: ConvParams | None = Field(
        None, description="images read row by row: a 3×3 convolution and 2×2 max pooling in front of the recurrent "
        "layers, e.g. {channels: 8} (see models/conv.py); null = the rows go straight in",
    )


class SequenceModel(nn.Module):
    """backbone (returns output, state) + a linear head per step or on the final state.

    Per-sequence tasks read the final state (pool: last): for a bidirectional backbone, the forward
    half at the last step and the backward half at step 0 (the backward direction's state after the
    whole input); or the mean or maximum of every step's outputs (pool: mean | max).
    """

    def __init__(self, backbone: nn.Module, out_features: int, output_size: int, task: Task, bidirectional: bool,
                 pool: str = "last"):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(out_features, output_size)
        self.per_step = Task(task).per_step
        self.bidirectional = bidirectional
        self.pool = pool
        self.stem: nn.Module | None = None  # model.conv: set by build_with_stem

    def summarize(self, out: torch.Tensor) -> torch.Tensor:
        """What the head reads of the backbone's (N, T, features) outputs: per step, or pooled per sequence."""
        if self.per_step:
            return out
        if self.pool == "mean":
            return out.mean(dim=1)
        if self.pool == "max":
            return out.amax(dim=1)
        if self.bidirectional:
            half = out.shape[-1] // 2
            return torch.cat([out[:, -1, :half], out[:, 0, half:]], dim=-1)
        return out[:, -1]

    def forward(self, x: torch.Tensor, state=None):
        if self.stem is not None:
            x = self.stem(x)
        out, state = self.backbone(x, state)
        return self.head(self.summarize(out)), state


def build_with_stem(builder, p, input_size: int, output_size: int, task: Task) -> nn.Module:
    """The registered builder's model; with model.conv, behind a convolutional stem whose features its
    recurrent layers read instead of the raw rows."""
    conv = getattr(p, "conv", None)  # a plugin's parameters may not have it, or mean something else by it
    if not isinstance(conv, ConvParams):
        return builder(p, input_size, output_size, task)
    if Task(task).per_step:
        raise ValueError(
            "conv pools pairs of rows into one step, so it fits per-sequence tasks only (one output per sequence); "
            "remove model.conv"
        )
    stem = ConvRows(input_size, conv)
    model = builder(p, stem.out_features, output_size, task)
    if not isinstance(model, SequenceModel):
        raise ValueError(f"conv needs a model built as a SequenceModel; this one is a {type(model).__name__}")
    model.stem = stem
    return model


def init_recurrent(module: nn.Module, p: RecurrentParams, gates: int = 4, forget_gate: int | None = 1) -> None:
    """Initialise weight_ih*/weight_hh* (and peephole) weights; set the forget-gate bias.

    Parameter names follow nn.LSTM/nn.GRU, so this works for PyTorch's and the hand-built cells.
    Gate order i, f, g, o: the forget gate is chunk 1 of the bias.
    """
    with torch.no_grad():
        for name, w in module.named_parameters():
            if not name.split(".")[-1].startswith("weight_"):
                continue
            if p.init == "normal":
                nn.init.normal_(w, 0.0, p.std)
            elif p.init == "xavier" and w.dim() == 2:
                for blk in w.chunk(gates, 0) if w.shape[0] % gates == 0 else [w]:
                    nn.init.xavier_uniform_(blk)
            elif p.init == "orthogonal" and w.dim() == 2:
                for blk in w.chunk(gates, 0) if w.shape[0] % gates == 0 else [w]:
                    nn.init.orthogonal_(blk)
        if p.forget_bias is not None and forget_gate is not None:
            for name, b in module.named_parameters():
                leaf = name.split(".")[-1]
                if leaf.startswith("bias_ih") or leaf.startswith("bias_hh"):
                    h = b.shape[0] // gates
                    b[forget_gate * h : (forget_gate + 1) * h] = p.forget_bias if leaf.startswith("bias_ih") else 0.0


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def check_between_layer_dropout(p: RecurrentParams) -> None:
    """Dropout that acts between stacked layers has nothing to act on with one layer: say so."""
    if p.dropout > 0 and p.num_layers < 2:
        raise ValueError(
            f"dropout={p.dropout} acts between layers and needs num_layers >= 2; "
            "set model.num_layers to 2 or more, or model.dropout to 0"
        )


def check_no_forget_bias(p: RecurrentParams, family: str) -> None:
    if p.forget_bias is not None:
        raise ValueError(f"forget_bias applies to LSTM models only ({family} has no forget gate); remove model.forget_bias")
