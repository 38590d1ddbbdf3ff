"""Median training-step time of every method in ``timing.method_steps``.

Models (the classification package's own constructors): ResNet-18 with the
CIFAR stem (11,173,962 parameters at 10 classes), WRN-28-10, and the narrow
ResNet-20 (width 8) of the tests. 32x32 synthetic tensors, so data loading
is excluded. Methods are timed round-robin; SAM% = SAM's time / the
method's. ``--batch-sizes`` sweeps the batch and ends with one table, a
column per batch, from which the batch where AUSAM's saving appears can be
read off.

    python benchmarks/step_time.py                 # CPU
    python benchmarks/step_time.py --device cuda --dtype bfloat16 \\
        --channels-last --compile --batch-sizes 64,128,256,512
    taskset -c 0 python benchmarks/step_time.py --model resnet20-w8 \\
        --threads 1 --methods SGD,SAM,AUSAM-1.0,AUSAM-0.5 --repeats 7
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from timing import device_name, method_steps, report, time_round_robin

from tasks.classification.classifier import raise_recompile_limit
from tasks.classification.models import (
    cifar_resnet,
    resnet18,
    wide_resnet28_10,
)

RECOMPILE_LIMIT = 64
MODELS = {
    'resnet18': lambda: resnet18(num_classes=10),
    'wrn28-10': lambda: wide_resnet28_10(num_classes=10),
    'resnet20-w8': lambda: cifar_resnet(depth=20, width=8, num_classes=10),
}
TITLES = {
    'resnet18': 'ResNet-18 (CIFAR stem)',
    'wrn28-10': 'WRN-28-10',
    'resnet20-w8': 'ResNet-20 (width 8)',
}


def make_closure(model, x, y, device, dtype):
    """``closure(pos, with_outputs)`` of the step API: the forward under
    autocast when ``dtype`` is not float32, losses and logits in float32."""
    cast = dtype != torch.float32

    def closure(pos=None, with_outputs=False):
        xb, yb = (
            (x, y) if pos is None else (x[pos.to(device)], y[pos.to(device)])
        )
        with torch.autocast(device.type, dtype=dtype, enabled=cast):
            logits = model(xb)
        logits = logits.float()
        losses = {'loss': F.cross_entropy(logits, yb, reduction='none')}
        return (losses, logits) if with_outputs else losses

    return closure


def partial_rows(times: dict) -> list:
    """Rows of the methods timed so far (SAM% once SAM has a time)."""
    done = {m: t for m, t in times.items() if t}
    sam = statistics.median(done['SAM']) if 'SAM' in done else None
    return [
        dict(
            method=m,
            median_s=statistics.median(t),
            sam_pct=100 * sam / statistics.median(t) if sam else None,
            times_s=t,
        )
        for m, t in done.items()
    ]


def time_batch(args, k: int, device, dtype, fmt, save=None) -> dict:
    """Round-robin step times of every method at batch size ``k``;
    ``save(partial_batch)`` after every step (warm-up included)."""
    torch.manual_seed(0)
    model = MODELS[args.model]().to(device, memory_format=fmt).train()
    if args.compile:
        # Only the network: the step's Python has data-dependent control
        # flow (selection, skips) that should stay eager.
        model.compile(mode=args.compile_mode, backend=args.compile_backend)
    x = torch.randn(k, 3, 32, 32, device=device).to(memory_format=fmt)
    y = torch.randint(0, 10, (k,), device=device)
    closure = make_closure(model, x, y, device, dtype)
    steps = method_steps(
        model,
        'SGD',
        lambda: torch.optim.SGD(
            model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4
        ),
        closure,
        torch.arange(k),
        [float(a) for a in args.alphas.split(',')],
        dataset_size=4 * k,
        outputs_closure=closure,
    )
    if args.methods:
        keep = args.methods.split(',')
        unknown = sorted(set(keep) - set(steps))
        if unknown:
            raise SystemExit(
                f'--methods: unknown {unknown}; known: {sorted(steps)}'
            )
        steps = {m: s for m, s in steps.items() if m in keep}
    t0 = time.perf_counter()
    # Each warm-up call's seconds: the first includes the method's compile.
    warmup_s = {m: [] for m in steps}
    timed = {m: [] for m in steps}

    def on_step(method, rnd, seconds):
        (warmup_s if rnd < args.warmup else timed)[method].append(seconds)
        if save is not None:
            save(
                dict(
                    batch_size=k,
                    rows=partial_rows(timed),
                    warmup_s=warmup_s,
                    wall_s=time.perf_counter() - t0,
                    complete=False,
                )
            )

    times = time_round_robin(
        steps, args.warmup, args.steps, device, on_step=on_step
    )
    dev = device_name(device)
    options = ', '.join(
        [str(dtype).replace('torch.', '')]
        + (['channels_last'] if args.channels_last else [])
        + (
            [f'compile ({args.compile_mode or "default"})']
            if args.compile
            else []
        )
    )
    out = Path(args.out)
    rows = report(
        times,
        f'{TITLES[args.model]}, batch {k}, 32x32, {options}, {dev}, torch '
        f'{torch.__version__}, median of {args.steps} steps',
        str(out.with_name(f'{out.stem}_b{k}{out.suffix}')),
        benchmark='step_time',
        device=dev,
        batch_size=k,
        steps=args.steps,
    )
    return dict(
        batch_size=k,
        rows=rows,
        warmup_s=warmup_s,
        complete=True,
        wall_s=time.perf_counter() - t0,
        peak_mem_gib=(
            torch.cuda.max_memory_allocated(device) / 2**30
            if device.type == 'cuda'
            else None
        ),
    )


def sweep_table(results) -> None:
    """Median step time and SAM% of each method, one column per batch."""
    sizes = [r['batch_size'] for r in results]
    print(f'\n{len(sizes)} batch sizes: median step (ms) / SAM%\n')
    print('| method | ' + ' | '.join(f'batch {k}' for k in sizes) + ' |')
    print('| --- |' + ' ---: |' * len(sizes))
    for i, row in enumerate(results[0]['rows']):
        cells = [
            f'{1000 * r["rows"][i]["median_s"]:.1f} / '
            f'{r["rows"][i]["sam_pct"]:.0f}%'
            for r in results
        ]
        print(f'| {row["method"]} | ' + ' | '.join(cells) + ' |')


def repeat_table(results) -> None:
    """Per batch size: each method's median step and SAM% over the
    repeats (the median of the repeats' medians, and their range)."""
    for r in results:
        reps = r['repeats']
        print(
            f'\nbatch {r["batch_size"]}, {len(reps)} repeats: median step '
            '(ms) and SAM%, median [min, max] over the repeats\n'
        )
        print('| method | median step (ms) | SAM% | SAM% range |')
        print('| --- | ---: | ---: | --- |')
        summary = {}
        for i, row in enumerate(reps[0]):
            ms = [1000 * rep[i]['median_s'] for rep in reps]
            pct = [rep[i]['sam_pct'] for rep in reps]
            summary[row['method']] = dict(
                median_ms=statistics.median(ms),
                sam_pct=statistics.median(pct),
                sam_pct_min=min(pct),
                sam_pct_max=max(pct),
            )
            print(
                f'| {row["method"]} | {statistics.median(ms):.1f} | '
                f'{statistics.median(pct):.1f}% | '
                f'[{min(pct):.1f}, {max(pct):.1f}] |'
            )
        r['repeat_summary'] = summary


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]),
    )
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--model', choices=list(MODELS), default='resnet18')
    ap.add_argument(
        '--batch-sizes',
        default='128',
        help='comma-separated batch sizes, timed one after another',
    )
    ap.add_argument(
        '--batch-size',
        type=int,
        default=None,
        help='one batch size (same as --batch-sizes K)',
    )
    ap.add_argument(
        '--dtype',
        choices=['float32', 'bfloat16'],
        default='float32',
        help='autocast dtype of the forward passes',
    )
    ap.add_argument(
        '--compile',
        action='store_true',
        help="torch.compile the network's forward (nn.Module.compile)",
    )
    ap.add_argument(
        '--compile-mode',
        default=None,
        help="torch.compile mode, e.g. 'max-autotune-no-cudagraphs'",
    )
    ap.add_argument(
        '--compile-backend',
        default='inductor',
        help="torch.compile backend ('aot_eager': quick CPU smoke runs)",
    )
    ap.add_argument('--steps', type=int, default=7, help='timed steps each')
    ap.add_argument(
        '--repeats',
        type=int,
        default=1,
        help='time each batch size this many times, models rebuilt each '
        'time; ends with the median and range of SAM%% over the repeats',
    )
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--alphas', default='0.4,0.5,0.6,0.7,1.0')
    ap.add_argument(
        '--methods',
        default='',
        help='comma-separated subset of the method rows (default: all)',
    )
    ap.add_argument(
        '--threads',
        type=int,
        default=0,
        help='torch CPU threads (0: leave default)',
    )
    ap.add_argument('--channels-last', action='store_true')
    ap.add_argument('--out', default='work_dirs/benchmarks/step_time.json')
    args = ap.parse_args(argv)
    sizes = (
        [args.batch_size]
        if args.batch_size
        else [int(k) for k in args.batch_sizes.split(',')]
    )
    if min(sizes) < 2:
        ap.error('batch sizes must be >= 2')
    args.sizes = sizes
    return args


def write_json(args, device, results, complete) -> None:
    """The JSON of every batch so far; rewritten after every step, so a
    run cut by a time limit leaves what it measured (``complete`` false,
    a batch's ``complete`` false for the one cut short)."""
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in vars(args).items() if k != 'sizes'}
    text = json.dumps(
        dict(
            benchmark='step_time',
            complete=complete,
            torch=torch.__version__,
            device=device_name(device),
            options=meta,
            batches=results,
            median_ms={
                str(r['batch_size']): {
                    row['method']: 1000 * statistics.median(row['times_s'])
                    for row in r['rows']
                }
                for r in results
            },
        ),
        indent=2,
    )
    tmp = out.with_suffix('.tmp')
    tmp.write_text(text)
    tmp.replace(out)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == 'cuda':
        # ESAM's subset size depends on the data, so cuDNN tunes again for
        # each new size, inside its timed steps too: ESAM's row is a noisy
        # upper bound on a GPU.
        torch.backends.cudnn.benchmark = True
    if args.compile:
        # Each method's passes (and BatchNorm's momentum in SAM's second
        # pass, each subset size) are separate graphs of the one network:
        # 7 for SGD, SAM and AUSAM-0.5 alone; past dynamo's default limit
        # of 8 the rest would run eager and be timed as compiled.
        raise_recompile_limit(RECOMPILE_LIMIT)
    dtype = getattr(torch, args.dtype)
    fmt = (
        torch.channels_last if args.channels_last else torch.contiguous_format
    )
    results = []

    def save(batch):
        write_json(args, device, results + [batch], complete=False)

    for k in args.sizes:
        results.append(time_batch(args, k, device, dtype, fmt, save))
        write_json(args, device, results, complete=False)
    for _ in range(1, args.repeats):
        for r, k in zip(results, args.sizes):
            again = time_batch(args, k, device, dtype, fmt)
            r.setdefault('repeats', [r['rows']]).append(again['rows'])
    if args.repeats > 1:
        repeat_table(results)
    if len(results) > 1:
        sweep_table(results)
    write_json(args, device, results, complete=True)
    print(f'\nwrote {args.out}')


if __name__ == '__main__':
    main()
