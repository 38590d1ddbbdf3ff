"""The command line: run a preset's missing cells, one cell (``--cell``,
what ``launch`` starts), or the report (``--report``)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from common import REPO

from . import __doc__ as DOC
from .cell import cell_name, run_cell
from .data import prepare_data
from .launch import launch
from .methods import METHODS
from .presets import PRESETS
from .report import report


def resolve_preset(args) -> dict:
    preset = dict(PRESETS[args.preset])
    if args.epochs is not None:
        preset['epochs'] = args.epochs
        preset['val_interval'] = min(preset['val_interval'], args.epochs)
    if args.limit_train is not None:
        if args.limit_train % 10:
            raise SystemExit('--limit-train must be a multiple of 10 classes')
        preset['train_per_class'] = args.limit_train // 10
    if args.limit_holdout is not None:
        if args.limit_holdout % 10:
            raise SystemExit(
                '--limit-holdout must be a multiple of 10 classes'
            )
        preset['holdout_per_class'] = args.limit_holdout // 10
    if args.diagnostics is not None:
        if args.diagnostics < 1:
            raise SystemExit('--diagnostics takes an epoch interval >= 1')
        preset['diagnostics'] = args.diagnostics
    if args.label_noise is not None:
        if not 0.0 <= args.label_noise < 1.0:
            raise SystemExit('--label-noise takes a fraction in [0, 1)')
        preset['label_noise'] = args.label_noise
    if args.methods:
        preset['methods'] = args.methods
    if args.seeds:
        preset['seeds'] = args.seeds
    unknown = [m for m in preset['methods'] if m not in METHODS]
    if unknown:
        raise SystemExit(
            f'unknown method(s) {unknown}; known: {", ".join(METHODS)}'
        )
    return preset


def main(argv=None):
    p = argparse.ArgumentParser(
        description=DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument('--preset', choices=sorted(PRESETS), default='cpu-noise20')
    p.add_argument('--methods', nargs='+', help="default: the preset's")
    p.add_argument('--seeds', nargs='+', type=int)
    p.add_argument('--epochs', type=int, help='override (smoke runs)')
    p.add_argument(
        '--limit-train',
        type=int,
        help='use this many training images (a multiple of 10; smoke runs)',
    )
    p.add_argument(
        '--limit-holdout',
        type=int,
        help='hold out this many images (a multiple of 10; smoke runs)',
    )
    p.add_argument(
        '--out',
        type=Path,
        help='cell JSON folder (default benchmarks/results/study/<preset>)',
    )
    p.add_argument(
        '--docs',
        type=Path,
        default=REPO / 'docs' / 'study',
        help='where --report writes <preset>.md and .png',
    )
    p.add_argument('--jobs', type=int, default=1, help='parallel cells')
    p.add_argument(
        '--cpus', help='pin one cell per CPU id, e.g. 1 or 2,3 (sets jobs)'
    )
    p.add_argument(
        '--devices', help='one cell per GPU, e.g. cuda:0,cuda:1 (sets jobs)'
    )
    p.add_argument('--device', help="'cpu' hides the GPUs from the cells")
    p.add_argument(
        '--diagnostics',
        type=int,
        metavar='EPOCHS',
        help='add SelectionDiagnosticsHook every EPOCHS epochs; cells go to '
        'benchmarks/results/study/<preset>-diagnostics (wall times are not '
        "comparable with the preset's)",
    )
    p.add_argument(
        '--label-noise',
        type=float,
        metavar='FRACTION',
        help="override the preset's share of flipped training labels "
        '(0 = clean; smoke runs)',
    )
    p.add_argument('--report', action='store_true')
    p.add_argument(
        '--cell', nargs=2, metavar=('METHOD', 'SEED'), help=argparse.SUPPRESS
    )
    args = p.parse_args(argv)
    preset = resolve_preset(args)
    folder = args.preset + ('-diagnostics' if args.diagnostics else '')
    if args.label_noise is not None:  # not the preset's cells
        folder += f'-noise{100 * args.label_noise:g}'
    out = args.out or REPO / 'benchmarks' / 'results' / 'study' / folder
    out.mkdir(parents=True, exist_ok=True)
    if args.cell:
        run_cell(args.preset, preset, args.cell[0], int(args.cell[1]), out)
        return
    if args.report:
        # A report over other seeds than the preset's gets its own name.
        name = folder
        if args.seeds:
            name += f'-seeds{min(args.seeds)}-{max(args.seeds)}'
        given = sys.argv[1:] if argv is None else argv
        command = ' '.join(['benchmarks/study', *map(shlex.quote, given)])
        print(report(name, preset, out, args.docs, command))
        return
    # Seed-major order: every method's seed 0, then seed 1, ...
    cells = [
        (m, s)
        for s in preset['seeds']
        for m in preset['methods']
        if not (out / f'{cell_name(m, s)}.json').is_file()
    ]
    print(f'{len(cells)} cell(s) to run into {out}', flush=True)
    # Prepare the data once, before processes race for it.
    prepare_data(
        preset['train_per_class'],
        preset['holdout_per_class'],
        preset.get('label_noise', 0.0),
    )
    launch(args, args.preset, cells, out)
