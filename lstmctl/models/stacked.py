"""`stacked_lstm`: LSTM layers of different widths, Keras-style, each followed by dropout."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from torch import nn

from lstmctl.data.base import Task
from lstmctl.models.base import RecurrentParams, SequenceModel, init_recurrent
from lstmctl.models.layers import HandLSTM
from lstmctl.registry import register_model


class StackedLSTMParams(RecurrentParams):
    hidden_sizes: list[int] | None = Field(
        None,
        description="units of each layer, first to last, e.g. [100, 50]; "
        "null = [hidden_size] * num_layers (when set, hidden_size and num_layers are not used)",
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout after each layer, the last one included (Keras style)")
    cell: Literal["torch", "hand"] = Field("torch", description="torch: nn.LSTM layers; hand: hand-built LSTM layers")

    @field_validator("hidden_sizes")
    @classmethod
    def _sizes(cls, v):
        if v is not None and not 1 <= len(v) <= 64:
            raise ValueError("must list 1 to 64 layer widths")
        if v is not None and any(not 1 <= h <= 65536 for h in v):
            raise ValueError("every layer width must be between 1 and 65536")
        return v

    def widths(self) -> list[int]:
        return list(self.hidden_sizes) if self.hidden_sizes is not None else [self.hidden_size] * self.num_layers


class StackedLSTM(nn.Module):
    """Layers of possibly different widths; state = one (h, c) per layer, each (1, B, H_k)."""

    def __init__(self, input_size: int, widths: list[int], dropout: float, cell: str):
        super().__init__()
        layers = []
        for h in widths:
            layers.append(HandLSTM(input_size, h) if cell == "hand" else nn.LSTM(input_size, h, batch_first=True))
            input_size = h
        self.layers = nn.ModuleList(layers)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x, state=None):
        if state is not None and len(state) != len(self.layers):
            raise RuntimeError(f"expected a state per layer ({len(self.layers)}), got {len(state)}")
        finals = []
        for k, layer in enumerate(self.layers):
            x, s = layer(x, None if state is None else state[k])
            x = self.drop(x)
            finals.append(s)
        return x, tuple(finals)


@register_model("stacked_lstm", StackedLSTMParams)
def build_stacked_lstm(p: StackedLSTMParams, input_size: int, output_size: int, task: Task) -> nn.Module:
    """LSTM layers of the widths in hidden_sizes, dropout after each, then a linear head."""
    widths = p.widths()
    rnn = StackedLSTM(input_size, widths, p.dropout, p.cell)
    init_recurrent(rnn, p)
    return SequenceModel(rnn, widths[-1], output_size, task, bidirectional=False, pool=p.pool)
