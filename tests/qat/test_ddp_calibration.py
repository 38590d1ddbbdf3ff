"""Under data parallelism every rank ends calibration with rank 0's quantizer
state (2 gloo processes on CPU)."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tasks.classification.models import cifar_resnet
from tasks.qat import calibrate, quantize_model, quantizers
from tasks.qat.engine import _broadcast_quantizer_state


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = quantize_model(cifar_resnet(8, 4), 4, 4, quantizer='lsq')
        torch.manual_seed(100 + rank)  # each rank sees different data
        # rank 1's inputs are all positive: its first layer would pick
        # 'unsigned'
        x = torch.randn(4, 3, 32, 32) + (10 if rank else 0)
        calibrate(model, [x])
        _broadcast_quantizer_state(model)
        state = {
            k: v for k, v in model.state_dict().items() if '_quantizer.' in k
        }
        caches = [(q._sign, q._initialized) for q in quantizers(model)]
        torch.save((state, caches), os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_calibration_state_is_rank_0s_on_every_rank(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2)
    s0, c0 = torch.load(tmp_path / 'rank0.pt')
    s1, c1 = torch.load(tmp_path / 'rank1.pt')
    assert s0.keys() == s1.keys()
    for k in s0:
        assert torch.equal(s0[k], s1[k]), k
    assert c0 == c1
    assert c0[1][0] == 1  # first layer's input: signed (rank 0's data)
