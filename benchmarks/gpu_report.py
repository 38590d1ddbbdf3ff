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


def pct(row) -> str:
    """SAM% of a row; 'n/a' while SAM has no time (a run cut short)."""
    return 'n/a' if row.get('sam_pct') is None else f'{row["sam_pct"]:.0f}%'


def headline(steps: dict, methods=('SAM', 'AUSAM-0.5')) -> list:
    """The issue's target: per model, SAM's and AUSAM-0.5's bf16 step at
    the check's batch, eager and compiled (the fastest run of each kind),
    and SAM% of the best of both."""
    best = {}  # (model, method, kind) -> (median_s, tag)
    batches = set()
    for tag, run in steps.items():
        o = run['options']
        if o['dtype'] != 'bfloat16':
            continue
        batch = run['batches'][0]
        batches.add(batch['batch_size'])
        kind = 'compiled' if o['compile'] else 'eager'
        for row in batch['rows']:
            key = (o['model'], row['method'], kind)
            if row['method'] in methods and (
                key not in best or row['median_s'] < best[key][0]
            ):
                best[key] = (row['median_s'], tag)
    if not best:
        return []
    lines = [
        '\n## Headline: SAM vs AUSAM-0.5, bf16, batch '
        + ', '.join(str(b) for b in sorted(batches))
        + ' (median step ms; fastest run of each kind)\n',
        '| model | SAM eager | SAM compiled | AUSAM-0.5 eager | AUSAM-0.5 '
        'compiled | SAM% (best of eager/compiled) |',
        '| --- | ---: | ---: | ---: | ---: | ---: |',
    ]
    for model in sorted({k[0] for k in best}):
        cells, fastest = [], {}
        for method in methods:
            for kind in ('eager', 'compiled'):
                hit = best.get((model, method, kind))
                cells.append(f'{1000 * hit[0]:.1f}' if hit else 'n/a')
                if hit:
                    fastest[method] = min(fastest.get(method, hit[0]), hit[0])
        ratio = (
            f'{100 * fastest[methods[0]] / fastest[methods[1]]:.0f}%'
            if len(fastest) == 2
            else 'n/a'
        )
        lines.append(f'| {model} | ' + ' | '.join(cells) + f' | {ratio} |')
    return lines


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
        cut = [t for t in tags if steps[t].get('complete') is False]
        if cut:
            lines[1:1] = [
                f'Cut short by the time limit (steps timed so far): '
                f'{", ".join(cut)}\n'
            ]
        methods = []  # every method of any run, in order of appearance
        for t in tags:
            for r in steps[t]['batches'][0]['rows']:
                if r['method'] not in methods:
                    methods.append(r['method'])
        for method in methods:
            cells = []
            for t in tags:
                rows = {r['method']: r for r in steps[t]['batches'][0]['rows']}
                r = rows.get(method)
                cells.append(
                    f'{1000 * r["median_s"]:.1f} ({pct(r)})' if r else ''
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
    for row in run['batches'][0]['rows']:
        cells = []
        for b in run['batches']:
            r = {x['method']: x for x in b['rows']}.get(row['method'])
            cells.append(f'{1000 * r["median_s"]:.1f} ({pct(r)})' if r else '')
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
    schedule = run.get('schedule_epochs', run['max_epochs'])
    if not run['finished']:
        done = 'cut short by the time limit (partial)'
    elif run['epochs'] < schedule:
        done = f'stopped after {run["epochs"]} of {schedule} epochs'
    else:
        done = 'finished'
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
        f'| {run["epochs"]}/{schedule} | {f(run["data_s"])} | '
        f'{f(run["first_epoch_s"])} | {f(run["steady_epoch_s"], ".2f")} | '
        f'{f(run["train_s"])} | {f(run["wall_s"])} | '
        f'{f(run["holdout_top1"], ".2f")} |'
    )
    curve = ', '.join(f'{e}: {a:.2f}' for e, a in run['holdout_curve'])
    lines += ['', f'Held-out top-1 by epoch: {curve or "none yet"}']
    if run.get('extrapolated_s') is not None and run['epochs'] < schedule:
        src = run['extrapolated_from']
        lines += [
            '',
            f'**Extrapolated, not measured:** all {schedule} epochs would '
            f'take about {run["extrapolated_s"]:.0f} s '
            f'({run["extrapolated_s"] / 60:.1f} min) of training and '
            f'{src["schedule_validations"]} validations: the first epoch + '
            f'the median steady epoch x {schedule - 1} + the mean of '
            f'{src["validations"]} measured validation(s) x '
            f'{src["schedule_validations"]}, from {src["epochs"]} epochs run',
        ]
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
        sweep = ',' in str(run['options']['batch_sizes'])
        (sweeps if sweep else steps)[s['tag']] = run
    epoch = load(args.runs / 'epoch.json')
    fastpath = load(args.runs / 'fastpath.json')
    tests = {}  # part -> the tail of its output
    for part in ('nosync', 'cudagraphs'):
        path = args.runs / f'{part}.txt'
        if path.is_file():
            tests[part] = path.read_text().strip().splitlines()
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
    md += headline(steps)
    if epoch:
        md += epoch_table(epoch)
    for part, title in (
        ('nosync', 'python3 -m tests.cuda.no_sync (host syncs)'),
        ('cudagraphs', 'tests/cuda/test_cudagraphs.py'),
    ):
        if part in tests:
            md += ['', f'## {title}', '', '```', *tests[part][-15:], '```']
    if fastpath:
        md += fastpath_table(fastpath)
    if steps:
        md += ['', '## Step times (synthetic 32x32 tensors)']
        md += step_tables(steps)
    for tag, run in sweeps.items():
        md += sweep_table(tag, run)
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
                tests=tests,
                fastpath=fastpath,
            ),
            indent=1,
        )
    )
    print(text)


if __name__ == '__main__':
    main()
