"""Write docs/results.md, the one page of measured results, from the JSON
committed under benchmarks/results/ (nothing else is read).

    .venv/bin/python benchmarks/results_page.py          # write the page
    .venv/bin/python benchmarks/results_page.py --check  # exit 1 if stale

The study tables use the statistics of ``benchmarks/study/`` (its
``summarize``, ``comparisons``, ``paired``, ``noise_table`` and
``diagnostics_tables``), so they are the numbers of its ``--report``. The
output depends only on the JSON: no time of generation is written.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import study  # noqa: E402  (benchmarks/study/)

REPO = HERE.parent
RESULTS = REPO / 'benchmarks' / 'results'
PAGE = REPO / 'docs' / 'results.md'
COMMAND = '.venv/bin/python benchmarks/results_page.py'

# The study folders on the page, headline first: (cell folder under
# benchmarks/results/study/, anchor title, seeds or None for all, the
# commands that ran and reported it, a sentence on what it is).
HEADLINE = dict(
    folder='cpu-noise20',
    title='The headline study: `cpu-noise20`, 10 seeds',
    seeds=list(range(10)),
    commands=[
        'benchmarks/study --preset cpu-noise20 --cpus 0,1',
        'benchmarks/study --preset cpu-noise20 --report',
    ],
    what='The one CPU regime found where SAM beats SGD by more than 2 SE: '
    '20% of the training labels flipped (symmetric, the same images in '
    'every cell; held-out labels clean), no augmentation.',
)
OTHERS = [
    dict(
        folder='cpu',
        title='`cpu`: clean labels, augmentation, 150 epochs',
        seeds=None,
        commands=[
            'benchmarks/study --preset cpu --cpus 1',
            'benchmarks/study --preset cpu --methods LookSAM-5 MSAM --seeds 0',
        ],
        what='The first full matrix. SGD fits its training set, SAM does '
        'not beat SGD. LookSAM-5 (alpha 0.7) and MSAM (rho 3) ran one seed '
        'and did not fit this network.',
    ),
    dict(
        folder='cpu-noaug',
        plot=False,
        title='`cpu-noaug`: clean labels, no augmentation, 50 epochs',
        seeds=None,
        commands=['benchmarks/study --preset cpu-noaug --methods SGD SAM'],
        what='The `cpu-noise20` regime without the flipped labels; SGD and '
        'SAM only.',
    ),
    dict(
        folder='cpu-probe',
        plot=False,
        title='`cpu-probe`: the `cpu` regime with SAM at rho 0.1 and 0.2',
        seeds=None,
        commands=['benchmarks/study --preset cpu-probe --cpus 0'],
        what='Does a larger radius make SAM beat SGD in the `cpu` regime? '
        'Its wall times are not usable: it shared a core with test runs.',
    ),
    dict(
        folder='cpu-100e',
        plot=False,
        title='`cpu-100e`: the `cpu` regime at 100 epochs',
        seeds=None,
        commands=['benchmarks/study --preset cpu-100e'],
        what='The first regime tried; SGD stayed below 99% training-set '
        'accuracy, so the epochs were raised to 150 (`cpu`).',
    ),
    dict(
        folder='cpu-original',
        title='`cpu-original`: the first run of five `cpu` methods',
        seeds=None,
        commands=[
            'benchmarks/study --preset cpu --methods SGD SAM AUSAM-0.5 '
            'SAM+Random-0.5 AUSAM-0.5-EMA'
        ],
        what='Kept for the record: these 25 cells ran on commits that are '
        'not on `main` and did not reproduce exactly; the `cpu` table above '
        'has their rerun.',
    ),
    dict(
        folder='cpu-noise20-probe',
        title='`cpu-noise20-probe`: SGD and SAM before the matrix',
        seeds=None,
        commands=['benchmarks/study --preset cpu-noise20 --methods SGD SAM'],
        what='Seeds 0-2 of SGD and SAM, run before the `cpu-noise20` matrix; '
        'the matrix reran them from scratch with identical results.',
    ),
]
DIAGNOSTICS = [
    dict(
        folder='cpu-noise20-diagnostics',
        title='Selection diagnostics in `cpu-noise20`',
        commands=[
            'benchmarks/study --preset cpu-noise20 --diagnostics 5 '
            '--methods AUSAM-0.5 AUSAM-0.5-EMA --seeds 0 --cpus 0,1',
        ],
    ),
    dict(
        folder='cpu-diagnostics',
        title='Selection diagnostics in `cpu`',
        commands=[
            'benchmarks/study --preset cpu --diagnostics 10 '
            '--methods AUSAM-0.5 AUSAM-0.5-EMA --seeds 0',
        ],
    ),
]
# The regimes tried for the study, in that order: (folder, seeds, the SAM
# method compared with SGD).
REGIMES = [
    ('cpu-100e', None, 'SAM'),
    ('cpu', None, 'SAM'),
    ('cpu-probe', None, 'SAM-rho0.1'),
    ('cpu-probe', None, 'SAM-rho0.2'),
    ('cpu-noaug', None, 'SAM'),
    ('cpu-noise20', [0, 1, 2, 3, 4], 'SAM'),
    ('cpu-noise20', None, 'SAM'),
]
# The committed step-time JSONs: (file, title, command, setting).
STEP_TIMES = [
    (
        'step_time_methods_cpu.json',
        'Every method of the step engine: ResNet-18 (CIFAR stem)',
        'taskset -c 0 .venv/bin/python benchmarks/step_time.py --threads 1 '
        '--steps 5 --warmup 1 --out benchmarks/results/'
        'step_time_methods_cpu.json',
        '32x32 synthetic tensors (no data loading), SGD momentum 0.9 as '
        'the base, rho 0.05; one round-robin run of every row of '
        '`benchmarks/timing.py::method_steps`. AUSAM and K-SAM in their '
        'steady state (every sample scored); LookSAM-5 and RST-0.5 timed '
        'over whole cycles and reported per step; ESAM at beta 0.6, gamma '
        '0.5; MESA and SAF include their teacher forward / output table.',
    ),
    (
        'step_time_resnet20-w8_cpu.json',
        'AUSAM-1.0 against SAM where fixed costs weigh most: ResNet-20 '
        'width 8',
        'taskset -c 0 .venv/bin/python benchmarks/step_time.py --model '
        'resnet20-w8 --batch-sizes 128 --methods SGD,SAM,AUSAM-1.0,'
        'AUSAM-0.5 --alphas 0.5,1.0 --threads 1 --warmup 3 --steps 20 '
        '--repeats 7 --out benchmarks/results/step_time_resnet20-w8_cpu.json',
        '32x32 synthetic tensors, SGD momentum 0.9, rho 0.05, AUSAM in its '
        'steady state. Each repeat rebuilds the models and times the '
        "methods in turn; the table gives the median of the repeats' "
        'median steps and the range of SAM% over the repeats. The core was '
        "shared, so absolute times are 2-3 times the idle machine's.",
    ),
]


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def cells_of(folder: str, seeds=None) -> list:
    cells = study.load_cells(RESULTS / 'study' / folder)
    if seeds is not None:
        cells = [c for c in cells if c['seed'] in seeds]
    return cells


def seed_list(cells: list) -> str:
    seeds = sorted({c['seed'] for c in cells})
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f'{seeds[0]}-{seeds[-1]}'
    return ', '.join(map(str, seeds))


def method_order(cells: list) -> list:
    return [r['method'] for r in study.summarize(cells, study.STUDY_METHODS)]


def setting(cells: list, folder: str, commands: list) -> list:
    """The lines that say where a study table comes from."""
    first = cells[0]
    ps = first['preset_settings']
    noise = ps.get('label_noise') or 0.0
    m = first['machine']
    cmd = '; '.join(f'`{c}`' for c in commands)
    return [
        f'- Command: {cmd}. Cells: `{rel(RESULTS / "study" / folder)}/` '
        f'({len(cells)} cells, seeds {seed_list(cells)}).',
        f'- Setting: `{ps["config"]}`; {first["train_images"]} training / '
        f'{first["holdout_images"]} held-out CIFAR-10 images; '
        f'{first["epochs"]} epochs; '
        + (
            f'{100 * noise:.0f}% of the training labels flipped.'
            if noise
            else 'clean labels.'
        ),
        f'- Machine: {m.get("gpu") or m["cpu"]} ({m["cpus_visible"]} CPUs, '
        'cells pinned to '
        f'{study.tally(str(c["machine"]["cpu_affinity"]) for c in cells)}), '
        f'torch {first["torch"]}, {m["torch_threads"]} torch thread(s); '
        f'commits {study.tally(c["git_commit"][:12] for c in cells)}.',
    ]


def summary_table(cells: list) -> list:
    """The per-method table of ``benchmarks/study --report`` (without its SAM
    columns where SAM did not run)."""
    rows = study.summarize(cells, study.STUDY_METHODS)
    if not any(r['method'] == 'SAM' for r in rows):
        lines = [
            '| method | seeds | held-out top-1 (%) | training-set top-1 (%) '
            '| wall time (s) |',
            '| --- | ---: | ---: | ---: | ---: |',
        ]
        for r in rows:
            lines.append(
                f'| {r["method"]} | {r["n"]} | {r["holdout_mean"]:.2f} ± '
                f'{r["holdout_std"]:.2f} | {r["train_mean"]:.2f} | '
                f'{r["train_s"]:.0f} |'
            )
        return lines
    lines = [
        '| method | seeds | held-out top-1 (%) | Δ SAM (95% CI) | SE | '
        'training-set top-1 (%) | wall time (s) | SAM% |',
        '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ]
    for r in rows:
        sam = r['method'] == 'SAM'
        delta = (
            '0 (reference)'
            if sam
            else f'{study.fmt(r["diff_sam"], "+.2f")} ± '
            f'{study.fmt(r["diff_sam_ci"])}'
        )
        lines.append(
            f'| {r["method"]} | {r["n"]} | {r["holdout_mean"]:.2f} ± '
            f'{r["holdout_std"]:.2f} | {delta} | '
            f'{"" if sam else study.fmt(r["diff_sam_se"])} | '
            f'{r["train_mean"]:.2f} | {r["train_s"]:.0f} | '
            f'{study.fmt(r["sam_pct"], ".0f")}% |'
        )
    return lines


def every_seed(cells: list) -> list:
    """The per-cell table of ``benchmarks/study --report``, folded away."""
    order = {m: i for i, m in enumerate(method_order(cells))}
    lines = [
        '<details><summary>Every seed</summary>',
        '',
        '| method | seed | held-out top-1 (%) | training-set top-1 (%) | '
        'training (s) | cell total (s) | s / epoch (median) | finished |',
        '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ]
    for c in sorted(cells, key=lambda c: (order[c['method']], c['seed'])):
        lines.append(
            f'| {c["method"]} | {c["seed"]} | {c["holdout_top1"]:.2f} | '
            f'{c["train_top1"]:.2f} | {c["train_s"]:.0f} | '
            f'{c["total_s"]:.0f} | {statistics.median(c["epoch_s"]):.2f} | '
            f'{c["finished"]} |'
        )
    return lines + ['', '</details>', '']


def study_section(spec: dict, level: str = '##') -> list:
    cells = cells_of(spec['folder'], spec['seeds'])
    lines = [f'{level} {spec["title"]}', '', spec['what'], '']
    lines += setting(cells, spec['folder'], spec['commands'])
    lines += [
        '',
        'Held-out top-1 after the last epoch, mean ± sample std over seeds; '
        'Δ SAM: mean paired difference to SAM over the seeds both ran ± the '
        'half-width of its 95% t-interval (SE: its standard error). Wall '
        "time: training epochs only; SAM% = SAM wall time / the method's.",
        '',
    ]
    lines += summary_table(cells) + ['']
    lines += study.comparisons(cells) + ['']
    plot = REPO / 'docs' / 'study' / f'{spec["folder"]}.png'
    if spec.get('plot', True) and plot.is_file():
        lines += [
            f'![accuracy against wall time](study/{plot.name})',
            '',
        ]
    lines += every_seed(cells)
    return lines


def headline() -> list:
    lines = study_section(HEADLINE)
    cells = cells_of(HEADLINE['folder'], HEADLINE['seeds'])
    # The methods added with Table 5 ran all 10 seeds after this report.
    first5 = [
        c
        for c in cells
        if c['seed'] < 5 and c['method'] not in study.TABLE5_METHODS
    ]
    lines += [
        '### The first 5 seeds alone',
        '',
        'The comparisons over seeds 0-4, as reported before seeds 5-9 ran '
        '(`benchmarks/study --preset cpu-noise20 --seeds 0 1 2 3 4 '
        '--report`).',
        '',
    ]
    lines += study.comparisons(first5) + ['']
    lines += [
        '### Table 5 and the selection question',
        '',
        "The methods of the paper's Table 5 (InfoBatch with SGD and SAM), "
        'G-RST, and two AUSAM variants that test why its selection does '
        "not beat a uniform draw (importance-weighted: Theorem 4's "
        'importance-sampling weights; fresh: the latest DLP as the '
        "score), in the same cells' setting. Plain answers: "
        '[benchmarks.md](benchmarks.md#table-5-and-the-selection-question-'
        'issue-21).',
        '',
    ]
    lines += study.table5(cells)[2:]  # without its heading
    noise = study.noise_table(cells, method_order(cells))
    # noise_table starts with its own '## ' heading.
    lines += ['### What each method did with the flipped labels'] + noise[1:]
    return lines


def regimes() -> list:
    lines = [
        '## The regimes tried',
        '',
        'The study needs a regime where (1) SGD fits its training set '
        '(>= 99% on every seed) and (2) SAM beats SGD on held-out data by '
        'more than twice the SE of the paired seed differences. In the '
        'order tried (settings in the sections below; ResNet-20 width 16, '
        '2,000 CIFAR-10 training images at 16x16, 5,000 held out):',
        '',
        '| cells | seeds | SAM | SGD training-set top-1 (%) | '
        'SAM − SGD (points) | SE | (1) | (2) |',
        '| --- | --- | --- | ---: | ---: | ---: | --- | --- |',
    ]
    for folder, seeds, sam in REGIMES:
        cells = cells_of(folder, seeds)
        mean, se, _, n = study.paired(cells, sam, 'SGD')
        sgd = [c['train_top1'] for c in cells if c['method'] == 'SGD']
        big = 'n/a' if se != se else ('yes' if abs(mean) > 2 * se else 'no')
        fit = f'{min(sgd):.2f}'
        if max(sgd) != min(sgd):
            fit += f'-{max(sgd):.2f}'
        lines.append(
            f'| `{folder}` | {seed_list(cells)} | {sam} | '
            f'{fit} | {mean:+.2f} | '
            f'{study.fmt(se)} | {"yes" if min(sgd) >= 99 else "no"} | '
            f'{big if min(sgd) >= 99 else "—"} |'
        )
    return lines + ['']


def diagnostics_section(spec: dict) -> list:
    cells = cells_of(spec['folder'])
    lines = [f'### {spec["title"]}', '']
    lines += setting(cells, spec['folder'], spec['commands'])
    lines += [
        '',
        'The hook does not change training: these cells train as the '
        "matrix's cells of the same seed.",
        '',
    ]
    for line in study.diagnostics_tables(cells):
        # Its tables start with '## Selection diagnostics: ...'.
        lines.append('#### ' + line[3:] if line.startswith('## ') else line)
    for c in cells:
        png = f'{spec["folder"]}_{c["method"]}.png'
        if (REPO / 'docs' / 'study' / png).is_file():
            lines += [f'![{c["method"]} selection diagnostics](study/{png})']
    return lines + ['']


def step_time_section() -> list:
    lines = [
        '## CPU step time',
        '',
        'One training step on synthetic tensors (no data loading), batch '
        '128, fp32, one torch thread pinned to one core of an AMD EPYC '
        "(2 vCPUs); SAM% = SAM's step time / the method's (higher is "
        'faster). Machine, date and what each run shared the machine '
        'with: [benchmarks.md](benchmarks.md).',
        '',
    ]
    for name, title, command, what in STEP_TIMES:
        data = json.loads((RESULTS / name).read_text())
        opt = data['options']
        lines += [
            f'### {title}',
            '',
            f'- Command: `{command}`.',
            f'- Setting: {what}',
            f'- JSON: `{rel(RESULTS / name)}` (torch {data["torch"]}, '
            f'{data["device"]}, {opt["warmup"]} warm-up and '
            f'{opt["steps"]} timed steps'
            + (f', {opt["repeats"]} repeats' if opt.get('repeats') else '')
            + ').',
            '',
        ]
        for batch in data['batches']:
            summary = batch.get('repeat_summary')
            if summary:
                lines += [
                    '| method | median step (ms) | SAM% | SAM% range over '
                    f'{len(batch["repeats"])} repeats |',
                    '| --- | ---: | ---: | --- |',
                ]
                for m, s in summary.items():
                    rng = (
                        ''
                        if m == 'SAM'
                        else f'[{s["sam_pct_min"]:.1f}, '
                        f'{s["sam_pct_max"]:.1f}]'
                    )
                    lines.append(
                        f'| {m} | {s["median_ms"]:.1f} | '
                        f'{s["sam_pct"]:.1f}% | {rng} |'
                    )
            else:
                lines += [
                    '| method | median step (ms) | SAM% |',
                    '| --- | ---: | ---: |',
                ]
                for r in batch['rows']:
                    lines.append(
                        f'| {r["method"]} | {1000 * r["median_s"]:.1f} | '
                        f'{r["sam_pct"]:.0f}% |'
                    )
            lines.append('')
    return lines


def gpu_section() -> list:
    gpu = [
        p.name
        for p in sorted(RESULTS.glob('*.json'))
        if json.loads(p.read_text()).get('options', {}).get('device', 'cpu')
        != 'cpu'
    ]
    lines = ['## GPU', '']
    if gpu:
        lines += ['GPU JSONs: ' + ', '.join(f'`{g}`' for g in gpu), '']
    else:
        lines += [
            '**Not measured yet.** No GPU result is committed under '
            '`benchmarks/results/`. The check that measures it is ready: '
            '`benchmarks/gpu_check.sh`, run as in '
            '[benchmarks/GPU_CHECK.md](../benchmarks/GPU_CHECK.md); how to '
            'train on a GPU: [gpu.md](gpu.md).',
            '',
        ]
    return lines


def render() -> str:
    lines = [
        '# Results',
        '',
        f'Generated by `{COMMAND}` from the JSON committed under '
        '`benchmarks/results/`; do not edit by hand (`--check` fails when '
        'this page is stale). How each benchmark runs and what it '
        'measures: [benchmarks.md](benchmarks.md).',
        '',
        '- [The headline study: `cpu-noise20`, 10 seeds]'
        '(#the-headline-study-cpu-noise20-10-seeds)',
        '- [The regimes tried](#the-regimes-tried)',
        '- [Other study runs](#other-study-runs)',
        '- [Selection diagnostics](#selection-diagnostics)',
        '- [CPU step time](#cpu-step-time)',
        '- [GPU](#gpu)',
        '- [Results without a committed JSON]'
        '(#results-without-a-committed-json)',
        '',
        'All study cells: ResNet-20 (width 16) on a fixed split of the '
        'CIFAR-10 training JPEGs, batch 128, SGD lr 0.1, momentum 0.9, '
        'weight decay 5e-4, cosine, SAM rho 0.05; method settings in '
        '`benchmarks/study/methods.py` (`METHODS`). Each cell is one '
        'method and one seed trained by the mmengine Runner.',
        '',
    ]
    lines += headline()
    lines += regimes()
    lines += ['## Other study runs', '']
    for spec in OTHERS:
        lines += study_section(spec, level='###')
    lines += [
        '## Selection diagnostics',
        '',
        '`SelectionDiagnosticsHook` every N epochs in one extra cell each of '
        'AUSAM-0.5, AUSAM-0.5-EMA, AUSAM-0.5-IW and AUSAM-0.5-fresh (seed '
        '0; the last two in cpu-noise20 only); what the columns mean: '
        '[diagnostics.md](diagnostics.md).',
        '',
    ]
    for spec in DIAGNOSTICS:
        lines += diagnostics_section(spec)
    lines += step_time_section()
    lines += gpu_section()
    lines += [
        '## Results without a committed JSON',
        '',
        'The first ResNet-18 step-time table, the epoch time with data '
        'loading, the pose step time, the QAT fine-tuning and the two early '
        'accuracy runs wrote their JSON to `work_dirs/`, which is not '
        'committed. Their tables stay beside their commands in '
        '[benchmarks.md](benchmarks.md).',
        '',
    ]
    while lines[-1] == '':
        lines.pop()
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        '--check',
        action='store_true',
        help='write nothing; exit 1 when docs/results.md differs',
    )
    args = p.parse_args(argv)
    text = render()
    if args.check:
        old = PAGE.read_text() if PAGE.is_file() else ''
        if old != text:
            print(
                f'{rel(PAGE)} is stale (it differs from what the committed '
                f'JSON gives): run `{COMMAND}` and commit the page.'
            )
            return 1
        print(f'{rel(PAGE)} is up to date.')
        return 0
    PAGE.write_text(text)
    print(f'wrote {rel(PAGE)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
