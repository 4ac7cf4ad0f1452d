"""Image augmentation for the row-by-row image datasets (data.hflip, data.shift).

The dataset hands the trainer a transform of a training batch (DataBundle.augment); the trainer
applies it to training batches only, with a generator seeded per (seed, epoch, step, rank)
(train/setup.py batch_generator), so augmented runs stay reproducible and resume exactly.
"""

from __future__ import annotations

import torch


def augmenter(hflip: bool, shift: int, background: float, image_shape: tuple[int, int] = (28, 28)):
    """The training-batch transform of data.hflip / data.shift (None when both are off).

    A batch is (B, steps, features), one or more image rows per step: it is viewed as (B, rows,
    columns) images, mirroring reverses each row, a shift crops a window of the image padded with
    `background` (a blank pixel in the normalised units) at a random offset.
    """
    if not hflip and shift == 0:
        return None

    def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        batch_shape = x.shape
        b, (rows, cols) = len(x), image_shape
        x = x.reshape(b, rows, cols)
        if hflip:
            flip = torch.rand(b, generator=g) < 0.5
            x = torch.where(flip.to(x.device)[:, None, None], x.flip(-1), x)
        if shift:
            padded = torch.nn.functional.pad(x, (shift, shift, shift, shift), value=background)
            dy = torch.randint(0, 2 * shift + 1, (b,), generator=g).to(x.device)
            dx = torch.randint(0, 2 * shift + 1, (b,), generator=g).to(x.device)
            r = dy[:, None] + torch.arange(rows, device=x.device)  # (B, rows): the rows each image keeps
            c = dx[:, None] + torch.arange(cols, device=x.device)
            x = padded[torch.arange(b, device=x.device)[:, None, None], r[:, :, None], c[:, None, :]]
        return x.reshape(batch_shape)

    return augment
