"""`rnn`: the plain (Elman) recurrent network, nn.RNN, the baseline the LSTM literature compares against."""

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
from lstmctl.registry import register_model


class RNNParams(RecurrentParams):
    nonlinearity: Literal["tanh", "relu"] = Field("tanh", description="h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)")
    bidirectional: bool = Field(False, description="also read the sequence backwards; outputs are concatenated")


@register_model("rnn", RNNParams)
def build_rnn(p: RNNParams, input_size: int, output_size: int, task: Task) -> nn.Module:
    """torch.nn.RNN (tanh by default) with a linear head per step or on the final state."""
    check_between_layer_dropout(p)
    check_no_forget_bias(p, "rnn")
    rnn = nn.RNN(
        input_size,
        p.hidden_size,
        p.num_layers,
        nonlinearity=p.nonlinearity,
        dropout=p.dropout,
        bidirectional=p.bidirectional,
        batch_first=True,
    )
    init_recurrent(rnn, p, gates=1, forget_gate=None)
    width = p.hidden_size * (2 if p.bidirectional else 1)
    return SequenceModel(rnn, width, output_size, task, bidirectional=p.bidirectional, pool=p.pool)
