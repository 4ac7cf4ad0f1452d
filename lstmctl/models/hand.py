"""`lstm_cell`: the hand-built LSTM (see cells.py and layers.py) with a linear head."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from lstmctl.data.base import Task
from lstmctl.models.base import RecurrentParams, SequenceModel, check_between_layer_dropout, init_recurrent
from lstmctl.models.layers import HandLSTM
from lstmctl.registry import register_model


class LSTMCellParams(RecurrentParams):
    variant: Literal["standard", "peephole", "coupled"] = Field(
        "standard",
        description="standard: nn.LSTM's equations; peephole: gates also see the cell state; coupled: i = 1 - f",
    )
    bidirectional: bool = Field(False, description="also read the sequence backwards; outputs are concatenated")


@register_model("lstm_cell", LSTMCellParams)
def build_lstm_cell(p: LSTMCellParams, input_size: int, output_size: int, task: Task) -> nn.Module:
    """The hand-built LSTM: nn.LSTM's parameter layout and results, gate equations in lstmctl's code."""
    check_between_layer_dropout(p)
    rnn = HandLSTM(input_size, p.hidden_size, p.num_layers, p.dropout, p.bidirectional, variant=p.variant)
    if p.variant == "coupled":  # three gates f, g, o: the forget gate is chunk 0
        init_recurrent(rnn, p, gates=3, forget_gate=0)
    else:
        init_recurrent(rnn, p)
    width = p.hidden_size * (2 if p.bidirectional else 1)
    return SequenceModel(rnn, width, output_size, task, bidirectional=p.bidirectional, pool=p.pool)
