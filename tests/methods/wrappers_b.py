"""Shared checks for the ESAM / MSAM / MESA wrappers: build, train a few
steps, resume from a saved state."""

import copy
import io

import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS

from ..core.toy import ToyDataset, ToyNet, batch

LR = 0.1


@MODELS.register_module()
class ToyNetWithOutputs(ToyNet):
    """ToyNet plus the 'loss_and_outputs' mode (the logits)."""

    sam_outputs_mode = True

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode != 'loss_and_outputs':
            return super().forward(inputs, data_samples, mode)
        logits = self.logits(inputs)
        labels = torch.stack([s.label for s in data_samples])
        return {
            'loss_cls': F.cross_entropy(logits, labels, reduction='none'),
            'acc': (logits.argmax(1) == labels).float().mean(),
            'outputs': logits,
        }


def toy_outputs(seed=0, **kw):
    torch.manual_seed(seed)
    return ToyNetWithOutputs(**kw)


def toy(seed=0, **kw):
    torch.manual_seed(seed)
    return ToyNet(**kw)


def wrapper(model, type, optimizer=None, **kw):
    cfg = dict(type=type, optimizer=optimizer or dict(type='SGD', lr=LR), **kw)
    return build_optim_wrapper(model, cfg)


def train(model, ow, steps, start=0, size=16, dataset=None):
    """``steps`` train steps on consecutive batches of a 64-sample set."""
    ds = dataset or ToyDataset(64)
    logs = []
    for s in range(start, start + steps):
        lo = (s * size) % len(ds)
        logs.append(model.train_step(batch(ds, range(lo, lo + size)), ow))
    return logs


def round_trip(obj):
    """What a checkpoint gives back: torch.save then torch.load."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def assert_resume_is_bit_identical(type, k=3, make_model=toy, **kw):
    """2k steps in one go == k steps, save, fresh model and wrapper, load,
    k more steps: same weights and buffers, bit for bit."""
    opt = dict(type='SGD', lr=LR, momentum=0.9, weight_decay=5e-4)
    full = make_model()
    ow_full = wrapper(full, type, optimizer=copy.deepcopy(opt), **kw)
    train(full, ow_full, 2 * k)

    half = make_model()
    ow_half = wrapper(half, type, optimizer=copy.deepcopy(opt), **kw)
    train(half, ow_half, k)
    saved = round_trip(
        {'model': half.state_dict(), 'optim': ow_half.state_dict()}
    )
    resumed = make_model(seed=1)  # different init: all must come back
    resumed.load_state_dict(saved['model'])
    ow_res = wrapper(resumed, type, optimizer=copy.deepcopy(opt), **kw)
    ow_res.load_state_dict(saved['optim'])
    train(resumed, ow_res, k, start=k)
    a, b = full.state_dict(), resumed.state_dict()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    return ow_full, ow_res


def assert_precisions_run(type, make_model=toy, **kw):
    """fp16 (with loss scaling) and bf16 train and stay close to fp32."""
    results = {}
    for dtype in (None, 'float16', 'bfloat16'):
        model = make_model()
        ow = wrapper(model, type, dtype=dtype, **kw)
        logs = train(model, ow, 3)
        assert all(torch.isfinite(log['loss']) for log in logs), dtype
        assert (ow.loss_scaler is not None) == (dtype == 'float16')
        results[dtype] = torch.cat(
            [p.detach().flatten() for p in model.parameters()]
        )
    for dtype in ('float16', 'bfloat16'):
        assert torch.allclose(results[dtype], results[None], atol=0.05), dtype
    return results
