"""`lstm`: PyTorch's nn.LSTM (batch_first) with a linear head."""

from __future__ import annotations

from torch import nn

from lstmctl.data.base import Task
from lstmctl.models.base import RecurrentParams, SequenceModel, check_between_layer_dropout, init_recurrent
from lstmctl.registry import register_model


class LSTMParams(RecurrentParams):
    pass


@register_model("lstm", LSTMParams)
def build_lstm(p: LSTMParams, input_size: int, output_size: int, task: Task) -> nn.Module:
    """torch.nn.LSTM, batch first, with a linear head per step or on the final state."""
    check_between_layer_dropout(p)
    rnn = nn.LSTM(
        input_size,
        p.hidden_size,
        num_layers=p.num_layers,
        dropout=p.dropout if p.num_layers > 1 else 0.0,
        batch_first=True,
    )
    init_recurrent(rnn, p)
    return SequenceModel(rnn, p.hidden_size, output_size, task, bidirectional=False, pool=p.pool)
