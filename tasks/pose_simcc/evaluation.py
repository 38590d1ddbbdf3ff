"""PCKh table in the layout of the paper's Table 4 (MPII, threshold 0.5)."""

from pathlib import Path

from mmengine.hooks import Hook

from .registry import HOOKS

#: Column name -> key in mmpose ``MpiiPCKAccuracy``'s metric dict.
PCKH_COLUMNS = {
    'Head': 'Head PCK',
    'Shoulder': 'Shoulder PCK',
    'Elbow': 'Elbow PCK',
    'Wrist': 'Wrist PCK',
    'Hip': 'Hip PCK',
    'Knee': 'Knee PCK',
    'Ankle': 'Ankle PCK',
    'Mean': 'PCK',
    'Mean@0.1': 'PCK@0.1',
}


def _lookup(metrics, key):
    # Evaluators may prefix keys ('mpii/PCK'); match on the name after the
    # prefix.
    for name, value in metrics.items():
        if name == key or name.rsplit('/', 1)[-1] == key:
            return float(value)
    raise KeyError(
        f'metric {key!r} not found in {sorted(metrics)}; the PCKh table needs '
        "the evaluator dict(type='MpiiPCKAccuracy') (norm_item='head')"
    )


def pckh_row(metrics):
    """Return {column: value} for the Table-4 columns from MpiiPCKAccuracy
    output."""
    return {col: _lookup(metrics, key) for col, key in PCKH_COLUMNS.items()}


def format_pckh_table(metrics, name='model'):
    """Markdown table: Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean,
    Mean@0.1.

    ``metrics`` is the dict ``MpiiPCKAccuracy`` returns (or a dict of such
    dicts keyed by row name, to compare several runs in one table).
    """
    rows = (
        metrics
        if all(isinstance(v, dict) for v in metrics.values())
        else {name: metrics}
    )
    head = '| method | ' + ' | '.join(PCKH_COLUMNS) + ' |'
    rule = '| --- ' * (len(PCKH_COLUMNS) + 1) + '|'
    lines = [head, rule]
    for row_name, row_metrics in rows.items():
        row = pckh_row(row_metrics)
        lines.append(
            f'| {row_name} | '
            + ' | '.join(f'{v:.2f}' for v in row.values())
            + ' |'
        )
    return '\n'.join(lines)


def _run_name(runner):
    filename = getattr(runner.cfg, 'filename', None)
    return Path(filename).stem if filename else runner.experiment_name


@HOOKS.register_module()
class PCKhTableHook(Hook):
    """Logs the PCKh table after each validation and test run."""

    priority = 'LOW'

    def __init__(self, name=None):
        self.name = name

    def _log(self, runner, metrics, mode):
        if not metrics:
            return
        try:
            table = format_pckh_table(metrics, self.name or _run_name(runner))
        except KeyError as err:
            runner.logger.warning(f'PCKhTableHook: {err}')
            return
        runner.logger.info(f'{mode} PCKh@0.5 (MPII):\n{table}')

    def after_val_epoch(self, runner, metrics=None):
        self._log(runner, metrics, 'val')

    def after_test_epoch(self, runner, metrics=None):
        self._log(runner, metrics, 'test')
