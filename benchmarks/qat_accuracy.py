"""CPU-sized W4A4 quantization-aware training on real CIFAR-10 images.

A short full-precision pre-train, then W4A4 fine-tuning from that checkpoint
with SGD, SAM and AUSAM (paper Table 6, scaled down). Plain PyTorch (no
mmengine): the model comes from tasks.classification, quantization from
tasks.qat, SAM/AUSAM from ausam_tasks.sam.

Data: the first ``--train-per-class + --val-per-class`` JPEGs of each class
in the CIFAR-10 JPEG archive of tools/data_root.py (extracted once into
data/, decoded once into work_dirs/), split per class with a fixed seed.

Reports full-precision accuracy, W4A4 accuracy right after calibration (no
fine-tuning), W4A4 accuracy per method (fake-quant and the integer-weight
model), fine-tuning wall time and SAM% (SAM's time / the method's time), as
a markdown table and JSON.

Example (the recorded CPU run):
    nice python benchmarks/qat_accuracy.py --out work_dirs/qat_accuracy.json
"""

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import REPO, cifar10_folder, normalize

from ausam_tasks.sam import AUSAM, SAM
from tasks.classification.augment import random_crop, random_flip
from tasks.classification.data_prep import (
    CIFAR10_CLASSES,
)
from tasks.classification.models import cifar_resnet, mobilenet_v1, resnet18
from tasks.qat import calibrate, convert_to_integer, quantize_model


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument(
        '--arch',
        default='resnet20',
        choices=['resnet20', 'resnet18', 'mobilenet_v1'],
    )
    p.add_argument(
        '--width',
        type=float,
        default=8,
        help='resnet20: base width (16 = original); '
        'mobilenet_v1: width multiplier',
    )
    p.add_argument('--train-per-class', type=int, default=500)
    p.add_argument('--val-per-class', type=int, default=100)
    p.add_argument('--fp-epochs', type=int, default=12)
    p.add_argument('--fp-lr', type=float, default=0.1)
    p.add_argument('--qat-epochs', type=int, default=5)
    p.add_argument('--qat-lr', type=float, default=0.01)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--w-bits', type=int, default=4)
    p.add_argument('--a-bits', type=int, default=4)
    p.add_argument('--quantizer', default='minmax', choices=['minmax', 'lsq'])
    p.add_argument('--calib-batches', type=int, default=8)
    p.add_argument('--rho', type=float, default=0.05)
    p.add_argument('--alpha', type=float, default=0.5)
    p.add_argument('--init-epochs', type=int, default=1)
    p.add_argument('--warmup-epochs', type=float, default=1)
    p.add_argument('--methods', default='sgd,sam,ausam')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch CPU threads (the machine is shared)',
    )
    p.add_argument('--device', default='cpu')
    p.add_argument('--out', default='work_dirs/qat_accuracy.json')
    return p.parse_args()


# ----------------------------------------------------------------- data
def load_images(per_class: int):
    """(N, 3, 32, 32) uint8 images and labels of the first ``per_class``
    files of each class, decoded once and cached."""
    cache = REPO / 'work_dirs' / 'qat_bench' / f'cifar10_{per_class}pc.npz'
    if cache.is_file():
        d = np.load(cache)
        return torch.from_numpy(d['x']), torch.from_numpy(d['y'])
    import cv2

    root = cifar10_folder(per_class)
    xs, ys = [], []
    for label, name in enumerate(CIFAR10_CLASSES):
        files = sorted((root / name).glob('*.jpg'))[:per_class]
        for f in files:
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise OSError(f'cannot decode image {f}')
            xs.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB).transpose(2, 0, 1))
            ys.append(label)
    x, y = np.stack(xs), np.array(ys, dtype=np.int64)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, x=x, y=y)
    return torch.from_numpy(x), torch.from_numpy(y)


def split(x, y, train_per_class, val_per_class, seed):
    g = torch.Generator().manual_seed(seed)
    tr, va = [], []
    for c in range(10):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        tr.append(idx[:train_per_class])
        va.append(idx[train_per_class : train_per_class + val_per_class])
    tr, va = torch.cat(tr), torch.cat(va)
    return (x[tr], y[tr]), (x[va], y[va])


def batches(x, y, batch_size, gen, augment):
    """Shuffled, augmented, normalised batches with their dataset indices."""
    perm = torch.randperm(len(x), generator=gen)
    for i in range(0, len(x) - batch_size + 1, batch_size):  # drop last
        idx = perm[i : i + batch_size]
        xb = normalize(x[idx])
        if augment:
            xb = random_flip(random_crop(xb, 4, gen), 0.5, gen)
        yield xb, y[idx], idx


@torch.no_grad()
def accuracy(model, x, y, batch_size=500):
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        xb = normalize(x[i : i + batch_size])
        out = model(xb.to(torch.float64) if _is_double(model) else xb)
        correct += int((out.argmax(1) == y[i : i + batch_size]).sum())
    return 100.0 * correct / len(x)


def _is_double(model):
    return any(b.dtype == torch.float64 for b in model.buffers())


# ---------------------------------------------------------------- train
def build_model(args):
    if args.arch == 'resnet20':
        return cifar_resnet(20, int(args.width), num_classes=10)
    if args.arch == 'mobilenet_v1':
        return mobilenet_v1(10, args.width, first_stride=1)
    return resnet18(num_classes=10)


def cosine(opt, base_lr, step, total):
    for g in opt.param_groups:
        g['lr'] = 0.5 * base_lr * (1 + math.cos(math.pi * step / total))


def train(model, data, epochs, lr, method, args, log_prefix):
    """Train in place; returns the wall time of the training steps."""
    x, y = data
    base = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4
    )
    if method == 'sam':
        opt = SAM(base, rho=args.rho)
    elif method == 'ausam':
        opt = AUSAM(
            base,
            rho=args.rho,
            alpha=args.alpha,
            s_min=0.1,
            s_max=0.5,
            warmup_epochs=args.warmup_epochs,
            init_epochs=args.init_epochs,
            selector='adlp',
            num_samples=len(x),
            seed=args.seed,
        )
    steps_per_epoch = len(x) // args.batch_size
    total = epochs * steps_per_epoch
    gen = torch.Generator().manual_seed(args.seed + 1)
    step, elapsed, used = 0, 0.0, 0
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        losses = []
        for xb, yb, idx in batches(x, y, args.batch_size, gen, True):
            cosine(base, lr, step, total)
            if method == 'sgd':
                loss = F.cross_entropy(model(xb), yb)
                base.zero_grad(set_to_none=True)
                loss.backward()
                base.step()
                losses.append(loss.item())
                used += len(yb)
            else:
                # model=model below: the core runs the second pass (at
                # w + eps) with BatchNorm statistics and activation ranges
                # frozen (each quantizer's sam_second_pass()).
                def closure(pos, xb=xb, yb=yb):
                    xs, ys = (xb, yb) if pos is None else (xb[pos], yb[pos])
                    return {
                        'loss': F.cross_entropy(
                            model(xs), ys, reduction='none'
                        )
                    }

                if method == 'sam':
                    res = opt.step(closure, model=model)
                else:
                    res = opt.step(closure, idx, epoch=epoch, model=model)
                losses.append(res.loss_before.mean().item())
                used += (
                    len(yb) if res.positions is None else len(res.positions)
                )
            step += 1
        dt = time.perf_counter() - t0
        elapsed += dt
        print(
            f'{log_prefix} epoch {epoch + 1}/{epochs}: loss '
            f'{np.mean(losses):.3f}, {dt:.1f} s',
            flush=True,
        )
    return elapsed, used / max(total * args.batch_size, 1)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x, y = load_images(args.train_per_class + args.val_per_class)
    train_set, val_set = split(
        x, y, args.train_per_class, args.val_per_class, args.seed
    )
    print(
        f'data: {len(train_set[0])} train / {len(val_set[0])} val images '
        f'(CIFAR-10 JPEGs), model {args.arch} width {args.width}',
        flush=True,
    )

    t0 = time.perf_counter()
    fp = build_model(args)
    fp_time, _ = train(
        fp, train_set, args.fp_epochs, args.fp_lr, 'sgd', args, 'fp32'
    )
    fp_acc = accuracy(fp, *val_set)
    print(f'full precision: {fp_acc:.2f}% ({fp_time:.0f} s)', flush=True)

    def quantized_copy():
        torch.manual_seed(args.seed)
        q = quantize_model(
            copy.deepcopy(fp),
            args.w_bits,
            args.a_bits,
            quantizer=args.quantizer,
        )
        gen = torch.Generator().manual_seed(args.seed + 2)
        calib = (
            xb for xb, _, _ in batches(*train_set, args.batch_size, gen, False)
        )
        calibrate(q, calib, num_batches=args.calib_batches)
        return q

    ptq_acc = accuracy(quantized_copy(), *val_set)
    print(
        f'W{args.w_bits}A{args.a_bits} after calibration only: {ptq_acc:.2f}%',
        flush=True,
    )

    results = {}
    for method in args.methods.split(','):
        q = quantized_copy()
        secs, frac = train(
            q,
            train_set,
            args.qat_epochs,
            args.qat_lr,
            method,
            args,
            f'W{args.w_bits}A{args.a_bits} {method}',
        )
        acc = accuracy(q, *val_set)
        int_acc = accuracy(convert_to_integer(q).double(), *val_set)
        results[method] = dict(
            acc=acc, int_acc=int_acc, time_s=secs, trained_fraction=frac
        )
        print(
            f'{method}: {acc:.2f}% (integer model {int_acc:.2f}%), '
            f'{secs:.0f} s',
            flush=True,
        )

    sam_time = results.get('sam', {}).get('time_s')
    for r in results.values():
        r['sam_pct'] = 100.0 * sam_time / r['time_s'] if sam_time else None
    bits = f'W{args.w_bits}A{args.a_bits}'
    lines = [
        f'| method | {bits} acc (%) | integer-model acc (%) | fine-tune time '
        f'(s)'
        ' | SAM% | samples trained on |',
        '| --- | --- | --- | --- | --- | --- |',
    ]
    for m, r in results.items():
        pct = f'{r["sam_pct"]:.0f}%' if r['sam_pct'] else 'n/a'
        lines.append(
            f'| {m} | {r["acc"]:.2f} | {r["int_acc"]:.2f} | '
            f'{r["time_s"]:.0f} | {pct} | '
            f'{100 * r["trained_fraction"]:.0f}% |'
        )
    print(
        f'\nfull precision: {fp_acc:.2f}%  |  {bits} after calibration '
        f'only: {ptq_acc:.2f}%\n'
    )
    print('\n'.join(lines))
    out = dict(
        args=vars(args),
        fp_acc=fp_acc,
        fp_train_time_s=fp_time,
        ptq_acc=ptq_acc,
        results=results,
        total_time_s=time.perf_counter() - t0,
        torch=torch.__version__,
        date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f'\nwrote {args.out}')


if __name__ == '__main__':
    main()
