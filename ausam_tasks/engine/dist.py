"""Distributed set-up that mmengine 0.10.7 gets wrong on CPU-only machines."""

import os

import torch
import torch.distributed as dist


def init_cpu_process_group(launcher: str) -> bool:
    """For ``--launcher pytorch`` without a GPU, start the gloo process group
    ourselves: mmengine's init_dist calls torch.cuda.set_device, which fails
    on a machine without CUDA devices. Returns True if it did."""
    if launcher != 'pytorch' or torch.cuda.is_available():
        return False
    if dist.is_initialized():
        return False
    if 'RANK' not in os.environ:
        raise RuntimeError(
            '--launcher pytorch needs torchrun (RANK, '
            'WORLD_SIZE and MASTER_ADDR are not set)'
        )
    dist.init_process_group(backend='gloo')
    return True


def close_process_group() -> None:
    """At the normal end of a distributed run: wait for every rank, then
    close the process group. A rank that exits while another still uses
    the group can abort that one ('terminate called without an active
    exception'), failing a run that has finished."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
