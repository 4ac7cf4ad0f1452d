"""`bilstm`: a bidirectional LSTM of any depth, PyTorch's or the hand-built one."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from lstmctl.data.base import Task
from lstmctl.models.base import RecurrentParams, SequenceModel, check_between_layer_dropout, init_recurrent
from lstmctl.models.layers import HandLSTM
from lstmctl.registry import register_model


class BiLSTMParams(RecurrentParams):
    cell: Literal["torch", "hand"] = Field("torch", description="torch: nn.LSTM; hand: the hand-built LSTM (same numbers)")


@register_model("bilstm", BiLSTMParams)
def build_bilstm(p: BiLSTMParams, input_size: int, output_size: int, task: Task) -> nn.Module:
    """Bidirectional LSTM; a per-sequence head sees the forward last step and the backward step 0."""
    check_between_layer_dropout(p)
    if p.cell == "hand":
        rnn = HandLSTM(input_size, p.hidden_size, p.num_layers, p.dropout, bidirectional=True)
    else:
        rnn = nn.LSTM(input_size, p.hidden_size, p.num_layers, dropout=p.dropout, bidirectional=True, batch_first=True)
    init_recurrent(rnn, p)
    return SequenceModel(rnn, 2 * p.hidden_size, output_size, task, bidirectional=True, pool=p.pool)
