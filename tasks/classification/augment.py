"""The paper's CIFAR augmentation (pad-and-crop, horizontal flip, Cutout) on
whole batches.

Plain PyTorch, vectorised over the batch: these run on the training device
inside the data preprocessor (the "batch path"). ``transforms.AlbuClsAugment``
is the same augmentation per image with albumentations on the CPU, with the
same distributions:
- crop: pad by ``padding`` zeros on every side, take an HxW window whose
  top-left offset is uniform over the (2 * padding + 1)^2 positions;
- flip: left-right with probability ``flip_prob``;
- Cutout (DeVries & Taylor 2017): centre uniform over all HxW pixels, a
  ``size`` x ``size`` square [c - size//2, c - size//2 + size) clipped at the
  border, set to ``fill`` (0 after normalisation, i.e. the dataset mean
  colour).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def random_crop(
    x: torch.Tensor, padding: int, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Zero-pad a (B, C, H, W) batch by ``padding`` and crop each image back at
    a random offset."""
    if padding <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(
        0, 2 * padding + 1, (b,), device=x.device, generator=generator
    )
    ox = torch.randint(
        0, 2 * padding + 1, (b,), device=x.device, generator=generator
    )
    rows = oy[:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = ox[:, None] + torch.arange(w, device=x.device)  # (B, W)
    bidx = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indices around a slice put the broadcast dims first: (B, H, W,
    # C).
    out = padded[bidx, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(
    x: torch.Tensor,
    prob: float = 0.5,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Flip each image of a (B, C, H, W) batch left-right with probability
    ``prob``."""
    if prob <= 0:
        return x
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < prob
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout_masks(
    batch: int,
    height: int,
    width: int,
    size: int,
    device=None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Boolean (B, H, W) masks, True inside each image's Cutout square."""
    cy = torch.randint(0, height, (batch,), device=device, generator=generator)
    cx = torch.randint(0, width, (batch,), device=device, generator=generator)
    ys = torch.arange(height, device=device)
    xs = torch.arange(width, device=device)
    top, left = cy - size // 2, cx - size // 2
    in_y = (ys[None] >= top[:, None]) & (ys[None] < top[:, None] + size)
    in_x = (xs[None] >= left[:, None]) & (xs[None] < left[:, None] + size)
    return in_y[:, :, None] & in_x[:, None, :]


def cutout(
    x: torch.Tensor,
    size: int,
    fill: float = 0.0,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Cutout one ``size`` x ``size`` square per image of a (B, C, H, W)
    batch."""
    if size <= 0:
        return x
    b, _, h, w = x.shape
    mask = cutout_masks(b, h, w, size, x.device, generator)
    return x.masked_fill(mask[:, None], fill)
