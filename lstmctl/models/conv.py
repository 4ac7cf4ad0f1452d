"""model.conv: a small convolutional stem in front of any recurrent model, for images read row by row.

A recurrent layer that reads an image row by row sees each row as one flat vector: it has to learn
from scratch that neighbouring pixels belong together, and the vertical neighbours of a pixel come
one step later. One 3×3 convolution (ReLU) and 2×2 max pooling before it give every step local edge
and texture features of its own rows; the recurrent layer then reads one step per pair of rows.
On Fashion-MNIST this is what lifts the row LSTM past 0.91 test accuracy (docs/performance.md).

The stem sees a batch (N, T, F) whose features are whole image rows of `width` pixels (F = k·width
for k rows per step), rebuilds the (T·k)-row images, and returns (N, T·k // 2, channels · width // 2):
one step per pooled row (an odd last row or column is dropped by the pooling, as in max_pool2d).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from lstmctl.errors import UserError
from lstmctl.schema import Strict


class ConvParams(Strict):
    """model.conv: the convolutional stem's shape."""

    channels: int = Field(..., ge=1, le=1024, description="feature maps of the 3×3 convolution, e.g. 8 or 16")
    width: int = Field(28, ge=2, le=65536, description="pixels per image row: each step's features are whole rows this wide")


class ConvRows(nn.Module):
    """Image rows -> 3×3 convolution, ReLU, 2×2 max pooling -> one step per pooled row."""

    def __init__(self, in_features: int, p: ConvParams):
        super().__init__()
        if in_features % p.width:
            raise ValueError(
                f"conv: each step has {in_features} features, not whole rows of width {p.width}; "
                "set model.conv.width to the image's row width"
            )
        self.width = p.width
        self.rows_per_step = in_features // p.width
        self.conv = nn.Conv2d(1, p.channels, kernel_size=3, padding=1)
        self.out_features = p.channels * (p.width // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, steps, _ = x.shape
        if steps * self.rows_per_step < 2:
            raise UserError(f"model.conv pools pairs of image rows; this input has {steps * self.rows_per_step} row(s): give at least 2")
        images = x.reshape(n, 1, steps * self.rows_per_step, self.width)
        # ReLU after the pooling: max then ReLU equals ReLU then max (both are monotone), values and
        # gradients alike, on a quarter of the numbers
        maps = F.relu(max_pool_2x2(self.conv(images)))  # (N, channels, rows // 2, width // 2)
        return maps.permute(0, 2, 1, 3).reshape(n, maps.shape[2], -1)  # row-major: a step is one pooled row


def max_pool_2x2(maps: torch.Tensor) -> torch.Tensor:
    """2×2 max pooling, odd edges dropped. Without a gradient to take (validation, eval, predict) it is
    the maximum of four strided views: the same numbers as max_pool2d, about twice as fast on a CPU,
    which keeps validation under 5% of a Fashion-MNIST epoch (benchmarks/bench_fashion.py --overhead).
    Training keeps max_pool2d, whose backward is the faster one."""
    if torch.is_grad_enabled() and maps.requires_grad:
        return F.max_pool2d(maps, 2)
    m = maps[..., : maps.shape[-2] // 2 * 2, : maps.shape[-1] // 2 * 2]
    return torch.maximum(torch.maximum(m[..., 0::2, 0::2], m[..., 0::2, 1::2]), torch.maximum(m[..., 1::2, 0::2], m[..., 1::2, 1::2]))
