"""`gru`: a gated recurrent unit, PyTorch's nn.GRU or the hand-built one."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from lstmctl.data.base import Task
from lstmctl.models.base import (
    RecurrentParams,
    SequenceModel,
    check_between_layer_dropout,
    check_no_forget_bias,
    init_recurrent,
)
from lstmctl.models.layers import HandGRU
from lstmctl.registry import register_model


class GRUParams(RecurrentParams):
    cell: Literal["torch", "hand"] = Field(
        "torch", description="torch: nn.GRU; hand: the hand-built GRU (same numbers, plain autograd)"
    )
    bidirectional: bool = Field(False, description="also read the sequence backwards; outputs are concatenated")


@register_model("gru", GRUParams)
def build_gru(p: GRUParams, input_size: int, output_size: int, task: Task) -> nn.Module:
    """GRU (gates r, z, n) with a linear head per step or on the final state."""
    check_between_layer_dropout(p)
    check_no_forget_bias(p, "gru")
    if p.cell == "hand":
        rnn = HandGRU(input_size, p.hidden_size, p.num_layers, p.dropout, p.bidirectional)
    else:
        rnn = nn.GRU(input_size, p.hidden_size, p.num_layers, dropout=p.dropout, bidirectional=p.bidirectional, batch_first=True)
    init_recurrent(rnn, p, gates=3, forget_gate=None)
    width = p.hidden_size * (2 if p.bidirectional else 1)
    return SequenceModel(rnn, width, output_size, task, bidirectional=p.bidirectional, pool=p.pool)
