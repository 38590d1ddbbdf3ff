"""Reference trajectories: 20 fp32 CPU steps of every method on a fixed toy
problem, with hashed weights and the logged values of each step.

``python -m tests.methods.trajectory`` (re)writes trajectories.json; the
test compares a fresh run with the committed file bit for bit. It was
recorded before the step protocol was restructured (issue 18), so the
restructured engine must reproduce every method exactly."""

import hashlib
import json
from pathlib import Path

import torch
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper

from tests.core.toy import ToyDataset, batch

from .wrappers_b import toy_outputs

FILE = Path(__file__).with_name('trajectories.json')
STEPS, BATCH, DATASET = 20, 16, 64  # 4 steps an epoch, 5 epochs
SGD = dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4)
# Settings that reach each method's every kind of step within 20 steps.
METHODS = {
    'SAM': dict(type='SAMOptimWrapper', rho=0.1),
    'ASAM': dict(type='SAMOptimWrapper', rho=0.5, adaptive=True),
    'AUSAM': dict(
        type='AUSAMOptimWrapper', alpha=0.5, warmup_epochs=2, seed=3
    ),
    'AUSAM-uniform': dict(
        type='AUSAMOptimWrapper', alpha=0.5, selector='uniform'
    ),
    'AUSAM-topk': dict(
        type='AUSAMOptimWrapper', alpha=0.5, selector='topk_loss'
    ),
    'AUSAM-EMA': dict(
        type='AUSAMOptimWrapper',
        alpha=0.25,
        score_average='ema',
        num_samples=DATASET,
    ),
    'KSAM': dict(type='KSAMOptimWrapper', alpha=0.5),
    'LookSAM': dict(type='LookSAMOptimWrapper', k=3, alpha=0.7),
    'ESAM': dict(type='ESAMOptimWrapper', beta=0.6, gamma=0.5, seed=2),
    'MSAM': dict(type='MSAMOptimWrapper', rho=0.3),
    'RST': dict(type='RSTOptimWrapper', p_start=0.5, seed=1),
    'RST-linear': dict(
        type='RSTOptimWrapper', p_start=0.2, p_end=0.9, schedule='linear'
    ),
    'LatePhaseSAM': dict(type='LatePhaseSAMOptimWrapper', start_epoch=2),
    'MESA': dict(type='MESAOptimWrapper', decay=0.9, start_epoch=1),
    'SAF': dict(
        type='SAFOptimWrapper', lag=1, start_epoch=2, num_samples=DATASET
    ),
}


def weights_hash(model) -> str:
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def run(name: str) -> list:
    """Per step: {'weights': hash, 'log': {key: float.hex()}}."""
    model = toy_outputs(seed=0)
    ow = build_optim_wrapper(model, dict(METHODS[name], optimizer=dict(SGD)))
    ds = ToyDataset(DATASET, seed=5)
    order = torch.randperm(DATASET, generator=torch.Generator().manual_seed(7))
    hub = MessageHub.get_instance(f'trajectory-{name}')
    epochs = STEPS * BATCH // DATASET
    hub.update_info('max_epochs', epochs)
    hub.update_info('max_iters', STEPS)
    out = []
    for t in range(STEPS):
        hub.update_info('iter', t)
        hub.update_info('epoch', t * BATCH // DATASET)
        lo = (t * BATCH) % DATASET
        log = model.train_step(batch(ds, order[lo : lo + BATCH].tolist()), ow)
        out.append(
            dict(
                weights=weights_hash(model),
                log={k: float(v).hex() for k, v in sorted(log.items())},
            )
        )
    return out


def record() -> dict:
    return {name: run(name) for name in METHODS}


if __name__ == '__main__':
    torch.set_num_threads(1)  # as the tests run (tests/conftest.py)
    FILE.write_text(json.dumps(record(), indent=1) + '\n')
    print(f'wrote {FILE}')
