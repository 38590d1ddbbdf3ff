"""The markdown report of a study's cells."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from common import REPO

from .cell import cell_name
from .methods import CHEAP_BASELINES, TABLE5_METHODS
from .plot import plot
from .stats import load_cells, paired, summarize

COMPARISONS = [
    ('SAM', 'SGD'),
    ('AUSAM-0.5', 'SAM'),
    ('AUSAM-0.5', 'SGD'),
    ('AUSAM-0.5', 'SAM+Random-0.5'),
    ('AUSAM-0.5-EMA', 'AUSAM-0.5'),
    *(('AUSAM-0.5', b) for b in CHEAP_BASELINES),
    ('AUSAM-0.5', 'LookSAM-5'),
    ('AUSAM-0.5', 'MSAM'),
    ('SAM-rho0.1', 'SGD'),
    ('SAM-rho0.2', 'SGD'),
    # Table 5 and the selection variants (issue 21).
    ('SGD+Info', 'SGD'),
    ('SAM+Info', 'SAM'),
    ('SAM+Info-first', 'SAM'),
    ('SAM+Info', 'AUSAM-0.5'),
    ('SAM+Info', 'SAM+Random-0.5'),
    ('SAM+Info-first', 'SAM+Info'),
    ('G-RST', 'SAM'),
    ('G-RST', 'RST-0.5'),
    ('AUSAM-0.5-IW', 'SAM+Random-0.5'),
    ('AUSAM-0.5-fresh', 'SAM+Random-0.5'),
    ('AUSAM-0.5-IW', 'AUSAM-0.5'),
    ('AUSAM-0.5-fresh', 'AUSAM-0.5'),
]

# The paper's Table 5 rows (CIFAR-100, ResNet-18: top-1, SAM%), beside ours.
PAPER_TABLE5 = {
    'SGD': (79.79, 177),
    'SAM': (81.24, 100),
    'SGD+Info': (79.21, 197),
    'SAM+Info-first': (79.68, 137),
    'SAM+Info': (79.57, 140),
    'SAM+Random-0.5': (80.56, 120),
}
TABLE5_ROWS = ['SGD', 'SAM', 'AUSAM-0.5', 'SAM+Random-0.5', *TABLE5_METHODS]


def table5(cells: list) -> list:
    """Table 5's shape: held-out top-1 ± its standard error over seeds, and
    SAM% = SAM's mean training wall time / the method's (every epoch, data
    loading included, no evaluation)."""
    by = {}
    for c in cells:
        by.setdefault(c['method'], []).append(c)
    if not any(m in by for m in TABLE5_METHODS) or 'SAM' not in by:
        return []
    sam_s = statistics.mean(c['train_s'] for c in by['SAM'])
    lines = [
        '## Table 5 shape',
        '',
        "SAM+Info-first is the paper's SAM+Info* (InfoBatch on L(w), which "
        'sets the perturbation); SAM+Info weighs L(w + eps), whose gradient '
        "updates the weights. The paper's columns are its CIFAR-100 "
        'ResNet-18 numbers, for orientation only: a different data set, '
        'model and length.',
        '',
        '| method | seeds | held-out top-1 (%) ± SE | SAM% | trained '
        'samples / epoch | paper top-1 | paper SAM% |',
        '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ]
    for m in TABLE5_ROWS:
        cs = by.get(m)
        if not cs:
            continue
        acc = [c['holdout_top1'] for c in cs]
        se = (
            statistics.stdev(acc) / math.sqrt(len(acc))
            if len(acc) > 1
            else math.nan
        )
        samples = [
            statistics.mean(c['epoch_samples'])
            for c in cs
            if c.get('epoch_samples')
        ]
        paper = PAPER_TABLE5.get(m)
        per_epoch = statistics.mean(samples) if samples else None
        lines.append(
            f'| {m} | {len(cs)} | {statistics.mean(acc):.2f} ± {fmt(se)} | '
            f'{100 * sam_s / statistics.mean(c["train_s"] for c in cs):.0f}% '
            f'| {fmt(per_epoch, ".0f", "")} '
            f'| {paper[0] if paper else ""} | '
            f'{f"{paper[1]}%" if paper else ""} |'
        )
    return lines + ['']


def comparisons(cells: list) -> list:
    """The study's questions as paired differences over common seeds, and
    whether SGD fits its training set (>= 99% on every seed)."""
    lines = [
        '| comparison | seeds | mean difference (points) | SE | 95% CI | '
        '\\|mean\\| > 2 SE | wall time a / b |',
        '| --- | ---: | ---: | ---: | --- | --- | ---: |',
    ]
    train_s = {}
    for c in cells:
        train_s.setdefault(c['method'], []).append(c['train_s'])
    for a, b in COMPARISONS:
        mean, se, half, n = paired(cells, a, b)
        if not n:
            continue
        ratio = statistics.mean(train_s[a]) / statistics.mean(train_s[b])
        ci = (
            'n/a'
            if math.isnan(half)
            else f'[{mean - half:+.2f}, {mean + half:+.2f}]'
        )
        big = (
            'n/a'
            if math.isnan(se)
            else ('yes' if abs(mean) > 2 * se else 'no')
        )
        lines.append(
            f'| {a} − {b} | {n} | {mean:+.2f} | {fmt(se)} | {ci} | {big} '
            f'| {ratio:.2f} |'
        )
    sgd = [c['train_top1'] for c in cells if c['method'] == 'SGD']
    if sgd:
        lines += [
            '',
            f'SGD training-set top-1: min {min(sgd):.2f}% over {len(sgd)} '
            f'seed(s) ({"meets" if min(sgd) >= 99 else "misses"} the >= 99% '
            'condition).',
        ]
    return lines


NOISE_COLUMNS = [
    ('flipped_fitted_pct', 'flipped labels fitted (%)'),
    ('flipped_corrected_pct', 'flipped images given their true label (%)'),
    ('clean_train_top1', 'unflipped training images (%)'),
    (
        'flipped_share_of_top_half_pct',
        "flipped share of the table's top half (%)",
    ),
    ('flipped_mean_rank_pct', "flipped images' mean score rank (%)"),
]


def noise_table(cells: list, methods: list) -> list:
    """Means over seeds of each cell's ``label_noise`` summary (cells of a
    preset with flipped training labels)."""
    noisy = [c for c in cells if c.get('label_noise')]
    if not noisy:
        return []
    share = noisy[0]['preset_settings'].get('label_noise', 0.0)
    lines = [
        '## The flipped labels',
        '',
        f'{100 * share:.0f}% of the training labels were flipped to another '
        'class (the same images in every cell). After training, each run '
        'predicts the unaugmented training images; for a method with a score '
        'table (AUSAM; SAM+Random keeps one too, but its draws are uniform, '
        'so its columns show what the scores say without driving the '
        "selection; InfoBatch's scores are the latest losses: high is "
        'kept, below the mean may be pruned) the last two columns place '
        'the flipped images in it '
        '(rank 1% = the highest scores; a table blind to them gives a '
        f'{100 * share:.0f}% share and a mean rank near 50%). Means over the '
        'seeds that recorded the summary.',
        '',
        '| method | seeds | ' + ' | '.join(t for _, t in NOISE_COLUMNS) + ' |',
        '| --- | ---: |' + ' ---: |' * len(NOISE_COLUMNS),
    ]
    for m in methods:
        got = [c['label_noise'] for c in noisy if c['method'] == m]
        if not got:
            continue
        vals = []
        for key, _ in NOISE_COLUMNS:
            xs = [g[key] for g in got if key in g]
            vals.append(f'{statistics.mean(xs):.1f}' if xs else '')
        lines.append(f'| {m} | {len(got)} | ' + ' | '.join(vals) + ' |')
    return lines + ['']


DIAGNOSTICS = [
    ('grad_norm_mean', 'mean ‖∇l_i‖'),
    ('dlp_spearman', 'DLP vs ‖∇l_i‖ (Spearman)'),
    ('dlp_pearson', 'DLP vs ‖∇l_i‖ (Pearson)'),
    ('adlp_spearman', 'ADLP vs ‖∇l_i‖ (Spearman)'),
    ('adlp_loss_spearman', 'ADLP vs loss (Spearman)'),
    ('err_adlp_w', 'error ADLP, w'),
    ('err_uniform_w', 'error uniform, w'),
    ('err_adlp_eps', 'error ADLP, w+eps'),
    ('err_uniform_eps', 'error uniform, w+eps'),
    ('coverage_never_frac', 'never selected'),
]


def diagnostics_tables(cells: list) -> list:
    """Per-epoch SelectionDiagnosticsHook values of the cells that ran it
    (``--diagnostics``), and their means over the diagnosed epochs."""
    lines = []
    for c in cells:
        rows = c.get('diagnostics')
        if not rows:
            continue
        lines += [
            f'## Selection diagnostics: {c["method"]}, seed {c["seed"]}',
            '',
            'SelectionDiagnosticsHook on a fixed probe of 256 training '
            'samples (docs/diagnostics.md); errors are '
            '‖g_S − g_B‖ / ‖g_B‖ averaged over the draws. Plot: '
            f'`{cell_name(c["method"], c["seed"])}.png` beside the cell JSON.',
            '',
            '| epoch | ' + ' | '.join(h for _, h in DIAGNOSTICS) + ' |',
            '| ---: |' + ' ---: |' * len(DIAGNOSTICS),
        ]
        for r in rows + [None]:
            if r is None:  # the mean row, over the epochs that have a value
                vals = [
                    [x[f'diag/{k}'] for x in rows if f'diag/{k}' in x]
                    for k, _ in DIAGNOSTICS
                ]
                vals = [statistics.mean(v) if v else None for v in vals]
                head = 'mean'
            else:
                vals = [r.get(f'diag/{k}') for k, _ in DIAGNOSTICS]
                head = str(r['epoch'])
            lines.append(
                f'| {head} | ' + ' | '.join(fmt(v, '.3f') for v in vals) + ' |'
            )
        lines.append('')
    return lines


def fmt(v, spec='.2f', none='n/a'):
    return (
        none
        if v is None or (isinstance(v, float) and math.isnan(v))
        else (format(v, spec))
    )


def report(
    preset_name: str, preset: dict, out: Path, docs: Path, command: str = ''
) -> str:
    """The markdown report and plot of the cells in ``out`` whose seed is
    among the preset's (``--seeds`` picks others), as ``docs/<name>.md``."""
    cells = [c for c in load_cells(out) if c['seed'] in preset['seeds']]
    if not cells:
        raise SystemExit(
            f'no cell results for seeds {preset["seeds"]} in {out}'
        )
    rows = summarize(cells, preset['methods'])
    first = cells[0]
    command = command or f'benchmarks/study --preset {preset_name} --report'
    lines = [
        f'# Study `{preset_name}`',
        '',
        f'Generated by `{command}` '
        f'from the {len(cells)} cell JSONs in `{rel(out)}` '
        f'(seeds {", ".join(map(str, sorted({c["seed"] for c in cells})))}).',
        '',
        f'- Base config: `{preset["config"]}`; '
        f'{first["train_images"]} training / {first["holdout_images"]} '
        f'held-out images; {first["epochs"]} epochs.',
        f'- Machine: {first["machine"].get("gpu") or first["machine"]["cpu"]}'
        f' ({first["machine"]["cpus_visible"]} CPUs, cells pinned to '
        f'{tally(str(c["machine"]["cpu_affinity"]) for c in cells)}), '
        f'torch {first["torch"]}, '
        f'{first["machine"]["torch_threads"]} torch thread(s); '
        f'commits {tally(c["git_commit"][:12] for c in cells)}.',
        '- Held-out top-1 is the final evaluation; Δ SAM is the mean paired '
        'difference to SAM over the seeds both ran, ± the half-width of its '
        '95% t-interval (SE: its standard error). Wall time is training only '
        '(the sum of the training epochs, no evaluation); SAM% = SAM wall '
        "time / the method's.",
        '',
        '| method | seeds | held-out top-1 (%) | Δ SAM (95% CI) | SE | '
        'training-set top-1 (%) | wall time (s) | SAM% |',
        '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ]
    for r in rows:
        delta = (
            '0 (reference)'
            if r['method'] == 'SAM'
            else f'{fmt(r["diff_sam"], "+.2f")} ± {fmt(r["diff_sam_ci"])}'
        )
        lines.append(
            f'| {r["method"]} | {r["n"]} | {r["holdout_mean"]:.2f} ± '
            f'{r["holdout_std"]:.2f} | {delta} | '
            f'{"" if r["method"] == "SAM" else fmt(r["diff_sam_se"])} | '
            f'{r["train_mean"]:.2f} | {r["train_s"]:.0f} | '
            f'{fmt(r["sam_pct"], ".0f")}% |'
        )
    lines += [
        '',
        '(± after the held-out mean: the sample standard deviation over '
        'seeds.)',
        '',
        '## Every seed',
        '',
        '| method | seed | held-out top-1 (%) | training-set top-1 (%) | '
        'training (s) | cell total (s) | s / epoch (median) | finished |',
        '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ]
    order = {r['method']: i for i, r in enumerate(rows)}
    for c in sorted(cells, key=lambda c: (order[c['method']], c['seed'])):
        lines.append(
            f'| {c["method"]} | {c["seed"]} | {c["holdout_top1"]:.2f} | '
            f'{c["train_top1"]:.2f} | {c["train_s"]:.0f} | '
            f'{c["total_s"]:.0f} | {statistics.median(c["epoch_s"]):.2f} | '
            f'{c["finished"]} |'
        )
    lines += ['', '## Paired comparisons', '']
    lines += comparisons(cells)
    lines += ['', f'![accuracy against wall time]({preset_name}.png)', '']
    lines += table5(cells)
    lines += noise_table(cells, [r['method'] for r in rows])
    lines += diagnostics_tables(cells)
    text = '\n'.join(lines)
    docs.mkdir(parents=True, exist_ok=True)
    (docs / f'{preset_name}.md').write_text(text)
    plot(cells, rows, docs / f'{preset_name}.png', preset_name)
    return text


def tally(values) -> str:
    """Each distinct value with how many cells had it, e.g. the commits or
    the CPU sets the cells ran on."""
    count = {}
    for v in values:
        count[v] = count.get(v, 0) + 1
    return ', '.join(f'{k} ({n} cells)' for k, n in count.items())


def rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)
