"""Plot what SelectionDiagnosticsHook logged in a work dir into one PNG."""

import argparse
import glob
import json
import os
import os.path as osp
from typing import Dict, List, Optional


def load_scalars(work_dir: str) -> List[Dict[str, float]]:
    """The ``diag/`` lines of every run's ``vis_data/scalars.json`` under
    ``work_dir`` (a resumed run adds a timestamp folder), by epoch; a later
    run's line replaces an earlier one of the same epoch."""
    by_epoch = {}
    paths = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    )
    for path in paths:
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if any(k.startswith('diag/') for k in rec):
                    by_epoch[rec['epoch']] = rec
    return [by_epoch[e] for e in sorted(by_epoch)]


def latest_arrays(work_dir: str) -> Optional[dict]:
    """The per-sample record of the last diagnosed epoch, if saved."""
    paths = glob.glob(osp.join(work_dir, '*', 'diagnostics', 'epoch_*.json'))
    if not paths:
        return None

    def epoch(p):
        return int(osp.basename(p)[len('epoch_') : -len('.json')]), p

    with open(max(paths, key=epoch)) as f:
        return json.load(f)


def plot(work_dir: str, out: Optional[str] = None) -> str:
    """Correlations and subset-gradient errors per epoch, then the last
    diagnosed epoch's DLP / rho against gradient norms and its coverage
    histogram. Returns the PNG path."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = load_scalars(work_dir)
    if not rows:
        raise FileNotFoundError(
            f'no diag/ scalars under {work_dir}/*/vis_data/scalars.json: '
            'was the run trained with custom_hooks=[dict(type='
            "'SelectionDiagnosticsHook')]?"
        )
    arrays = latest_arrays(work_dir)
    epochs = [r['epoch'] for r in rows]
    fig, ax = plt.subplots(2, 2, figsize=(11, 8))

    a = ax[0, 0]
    for key, label in (
        ('dlp_spearman', 'DLP vs grad norm (Spearman)'),
        ('dlp_pearson', 'DLP vs grad norm (Pearson)'),
        ('adlp_spearman', 'ADLP vs grad norm (Spearman)'),
        ('adlp_loss_spearman', 'ADLP vs loss (Spearman)'),
    ):
        ys = [r.get('diag/' + key) for r in rows]
        if any(y is not None for y in ys):
            a.plot(
                epochs,
                [float('nan') if y is None else y for y in ys],
                marker='o',
                label=label,
            )
    a.axhline(0, color='grey', lw=0.5)
    a.set(
        xlabel='epoch',
        ylabel='correlation',
        ylim=(-1.05, 1.05),
        title='Lemma 1: do the scores rank gradient norms?',
    )
    a.legend(fontsize=8)

    a = ax[0, 1]
    for kind, color in (('adlp', 'C0'), ('uniform', 'C1')):
        for where, style in (('w', '-'), ('eps', '--')):
            key = f'diag/err_{kind}_{where}'
            if key not in rows[-1]:
                continue
            ys = [r[key] for r in rows]
            sd = [r.get(key + '_std', 0.0) for r in rows]
            a.plot(
                epochs,
                ys,
                style,
                color=color,
                marker='o',
                label=f'{kind} at {"w" if where == "w" else "w + eps"}',
            )
            a.fill_between(
                epochs,
                [y - s for y, s in zip(ys, sd)],
                [y + s for y, s in zip(ys, sd)],
                color=color,
                alpha=0.1,
            )
    a.set(
        xlabel='epoch',
        ylabel='||g_S - g_B|| / ||g_B||',
        title='Theorem 4: subset gradient error',
    )
    a.legend(fontsize=8)

    a = ax[1, 0]
    if arrays is not None:
        rho = arrays.get('rho') or 1.0
        norm = arrays['grad_norm']
        dlp = [d / rho for d in arrays['dlp']]
        a.scatter(norm, dlp, s=8, alpha=0.6, label='one step: DLP / rho')
        hi = max(max(norm), max(dlp))
        a.plot([0, hi], [0, hi], color='grey', lw=0.5, label='y = x')
        s = arrays['scalars']
        a.set(
            xlabel='||grad l_i(w)||',
            ylabel='DLP_i / rho',
            title=f'epoch {arrays["epoch"]}: Spearman '
            f'{s.get("diag/dlp_spearman", float("nan")):.2f}',
        )
        a.legend(fontsize=8)
    else:
        a.set_axis_off()

    a = ax[1, 1]
    hist = (arrays or {}).get('coverage_hist')
    if hist:
        a.bar(range(len(hist)), hist)
        never = arrays['scalars'].get('diag/coverage_never_frac', 0.0)
        a.set(
            xlabel='times selected after epoch '
            f'{arrays.get("coverage_since_epoch")}',
            ylabel='samples',
            title=f'epoch {arrays["epoch"]}: coverage, '
            f'{100 * never:.1f}% never selected',
        )
    else:
        a.set_axis_off()
        a.text(
            0.5,
            0.5,
            'no coverage (no AUSAM score table, or still in '
            'the scoring epochs)',
            ha='center',
            fontsize=8,
        )

    for a in ax[0]:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f'selection diagnostics: {osp.abspath(work_dir)}', fontsize=9)
    fig.tight_layout()
    out = out or osp.join(work_dir, 'diagnostics.png')
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('work_dir', help='work dir of a run with the hook')
    p.add_argument('--out', help='PNG path (default WORK_DIR/diagnostics.png)')
    args = p.parse_args(argv)
    if not os.path.isdir(args.work_dir):
        raise FileNotFoundError(f'work dir {args.work_dir!r} does not exist')
    print(plot(args.work_dir, args.out))


if __name__ == '__main__':
    main()
