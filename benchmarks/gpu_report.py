"""Gather the runs of benchmarks/gpu_check.sh into gpu_check.json and
gpu_check.md (printed too).

    python benchmarks/gpu_report.py RUNS_DIR OUT_DIR --budget S --elapsed S
"""

import argparse
import json
from pathlib import Path


def load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def step_tables(steps: dict) -> list:
    """Per model, the methods' median ms (SAM%) at one batch, a column per
    configuration."""
    lines = []
    models = sorted({run['options']['model'] for run in steps.values()})
    for model in models:
        tags = [t for t in steps if steps[t]['options']['model'] == model]
        first = steps[tags[0]]
        batch = first['batches'][0]['batch_size']
        lines += [
            f'\n### {model}, batch {batch}: median step ms (SAM%)\n',
            '| method | '
            + ' | '.join(t[len(model) + 1 :] for t in tags)
            + ' |',
            '| --- |' + ' ---: |' * len(tags),
        ]
        methods = [r['method'] for r in first['batches'][0]['rows']]
        for method in methods:
            cells = []
            for t in tags:
                rows = {r['method']: r for r in steps[t]['batches'][0]['rows']}
                r = rows.get(method)
                cells.append(
                    f'{1000 * r["median_s"]:.1f} ({r["sam_pct"]:.0f}%)'
                    if r
                    else ''
                )
            lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
    return lines


def sweep_table(tag: str, run: dict) -> list:
    sizes = [b['batch_size'] for b in run['batches']]
    lines = [
        f'\n### {tag}: median step ms (SAM%) by batch size\n',
        '| method | ' + ' | '.join(str(k) for k in sizes) + ' |',
        '| --- |' + ' ---: |' * len(sizes),
    ]
    for i, row in enumerate(run['batches'][0]['rows']):
        cells = [
            f'{1000 * b["rows"][i]["median_s"]:.1f} '
            f'({b["rows"][i]["sam_pct"]:.0f}%)'
            for b in run['batches']
        ]
        lines.append(f'| {row["method"]} | ' + ' | '.join(cells) + ' |')
    return lines


def epoch_table(run: dict) -> list:
    o = run['options']
    lines = [
        f'\n### Epoch time through the Runner: {o["model"]}, '
        f'{run["rows"][0]["images"]} JPEGs, batch {o["batch_size"]}, '
        f'{o["workers"]} workers, {o["dtype"]}\n',
        '| method | epoch 0 (s) | steady epoch (s) | images/s | SAM% |',
        '| --- | ---: | ---: | ---: | ---: |',
    ]
    for r in run['rows']:
        pct = f'{r["sam_pct"]:.0f}%' if r['sam_pct'] else 'n/a'
        lines.append(
            f'| {r["method"]} | {r["epochs_s"][0]:.1f} | '
            f'{r["steady_epoch_s"]:.1f} | {r["images_per_s"]:.0f} | {pct} |'
        )
    return lines


def fastpath_table(run: dict) -> list:
    """The fast-path paper run: data preparation, epoch times, accuracy."""
    done = 'finished' if run['finished'] else 'cut short (partial)'
    lines = [
        f'\n### Fast path: {run["config"]} ({done})\n',
        f'{run["device"]}, torch {run["torch"]}, {run["dtype"]}, compile '
        f'{run["compile"]}, batch {run["batch_size"]}, '
        f'{run["train_images"]} training / {run["holdout_images"]} '
        'held-out images',
        '',
        '| epochs | pickles from JPEGs (s) | first epoch (s) | steady epoch '
        '(s) | training (s) | wall, this call (s) | held-out top-1 |',
        '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ]

    def f(v, spec='.1f'):
        return 'n/a' if v is None else format(v, spec)

    lines.append(
        f'| {run["epochs"]}/{run["max_epochs"]} | {f(run["data_s"])} | '
        f'{f(run["first_epoch_s"])} | {f(run["steady_epoch_s"], ".2f")} | '
        f'{f(run["train_s"])} | {f(run["wall_s"])} | '
        f'{f(run["holdout_top1"], ".2f")} |'
    )
    curve = ', '.join(f'{e}: {a:.2f}' for e, a in run['holdout_curve'])
    lines += ['', f'Held-out top-1 by epoch: {curve or "none yet"}']
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('runs', type=Path)
    ap.add_argument('out', type=Path)
    ap.add_argument('--budget', type=float, default=None)
    ap.add_argument('--elapsed', type=float, default=None)
    args = ap.parse_args()
    status = []
    tsv = args.runs / 'status.tsv'
    if tsv.is_file():
        for line in tsv.read_text().splitlines():
            tag, rc, secs = line.split('\t')
            status.append(dict(tag=tag, rc=rc, seconds=int(secs)))
    env = (
        (args.runs / 'env.txt').read_text()
        if (args.runs / 'env.txt').is_file()
        else ''
    )
    steps, sweeps = {}, {}
    for s in status:
        run = load(args.runs / f'step_{s["tag"]}.json')
        if run is None:
            continue
        (sweeps if len(run['batches']) > 1 else steps)[s['tag']] = run
    epoch = load(args.runs / 'epoch.json')
    fastpath = load(args.runs / 'fastpath.json')
    cudatests = args.runs / 'cudatests.txt'
    cudatests = (
        cudatests.read_text().strip().splitlines()
        if cudatests.is_file()
        else []
    )
    md = ['# GPU check', '', '## Environment', '', '```', env.strip(), '```']
    md += [
        '',
        '## Runs',
        '',
        '| run | exit | seconds |',
        '| --- | --- | ---: |',
    ]
    md += [f'| {s["tag"]} | {s["rc"]} | {s["seconds"]} |' for s in status]
    md += [
        '',
        f'Whole check: {args.elapsed} s of a {args.budget} s budget; exit '
        '124 = stopped by its time limit, skipped = no budget left.',
    ]
    if steps:
        md += ['', '## Step times (synthetic 32x32 tensors)']
        md += step_tables(steps)
    for tag, run in sweeps.items():
        md += sweep_table(tag, run)
    if epoch:
        md += epoch_table(epoch)
    if cudatests:
        md += ['', '## tests/cuda', '', '```', *cudatests[-15:], '```']
    if fastpath:
        md += fastpath_table(fastpath)
    text = '\n'.join(md) + '\n'
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'gpu_check.md').write_text(text)
    (args.out / 'gpu_check.json').write_text(
        json.dumps(
            dict(
                env=env,
                status=status,
                budget_s=args.budget,
                elapsed_s=args.elapsed,
                steps=steps,
                sweeps=sweeps,
                epoch=epoch,
                cudatests=cudatests,
                fastpath=fastpath,
            ),
            indent=1,
        )
    )
    print(text)


if __name__ == '__main__':
    main()
