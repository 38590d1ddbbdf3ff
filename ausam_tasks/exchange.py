"""Per-sample state shared across data-parallel ranks: every rank sends
its (index, value) rows and keeps all ranks' rows, so tables stay equal."""

import torch
import torch.distributed as dist


def distributed() -> bool:
    return (
        dist.is_available()
        and dist.is_initialized()
        and dist.get_world_size() > 1
    )


def gather_scores(idx: torch.Tensor, dlp: torch.Tensor, width: int) -> tuple:
    """All ranks' (index, DLP) pairs, so every rank keeps the same table.

    Every rank sends ``width`` columns (the same on all ranks), its pairs
    first and then padding, and gets back ``(idx, dlp, weight)`` with
    weight 0 on padding (index 0, DLP 0): the exchange stays on the device
    the table lives on (the GPU under NCCL) and needs no host read."""
    if not distributed():
        return idx, dlp, None
    n = idx.numel()
    if n > width:
        raise RuntimeError(
            f'rank {dist.get_rank()} scored {n} samples in one step, more '
            f'than the {width} of the first step: every rank must start '
            'with a full batch (the largest it will ever see)'
        )
    # Indices are exact in float64 up to 2**53.
    packed = torch.zeros(3, width, dtype=torch.float64, device=idx.device)
    packed[0, :n] = idx.double()
    packed[1, :n] = dlp.detach().double()
    packed[2, :n] = 1.0
    parts = [torch.empty_like(packed) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, packed)
    allp = torch.cat(parts, dim=1)
    return allp[0].round().long(), allp[1], allp[2].long()


def gather_rows(idx: torch.Tensor, rows: torch.Tensor):
    """All ranks' (index, row) pairs, rows of any per-sample shape (host
    tensors; sent through the process group's device)."""
    if not distributed():
        return idx, rows
    device = (
        torch.device('cuda', torch.cuda.current_device())
        if dist.get_backend() == 'nccl'
        else torch.device('cpu')
    )
    shape = rows.shape[1:]
    flat = rows.reshape(len(rows), -1)
    n = torch.tensor([len(idx)], device=device)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    width = int(max(s.item() for s in sizes))
    # Indices are exact in float64 up to 2**53.
    packed = torch.zeros(width, 1 + flat.shape[1], dtype=torch.float64)
    packed[: len(idx), 0] = idx.double()
    packed[: len(idx), 1:] = flat.double().cpu()
    packed = packed.to(device)
    parts = [torch.empty_like(packed) for _ in sizes]
    dist.all_gather(parts, packed)
    allp = torch.cat(
        [p[: int(s.item())].cpu() for p, s in zip(parts, sizes, strict=True)]
    )
    return allp[:, 0].round().long(), allp[:, 1:].float().reshape(-1, *shape)
