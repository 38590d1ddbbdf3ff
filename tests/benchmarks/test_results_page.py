"""docs/results.md: the committed page is what benchmarks/results_page.py
writes from the committed JSON, its numbers are those of the study report,
and one of them equals a computation from the raw cell JSON."""

import importlib.util
import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'benchmarks'))  # the study package, common


def _load(name):
    spec = importlib.util.spec_from_file_location(
        name, ROOT / 'benchmarks' / f'{name}.py'
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


results_page = _load('results_page')
study = results_page.study
PAGE = ROOT / 'docs' / 'results.md'
CELLS = ROOT / 'benchmarks' / 'results' / 'study' / 'cpu-noise20'


def section(md: str, heading: str) -> str:
    """The text of the section under the heading, to the next '## '."""
    start = md.index(heading + '\n')
    end = md.find('\n## ', start + len(heading))
    return md[start : end if end != -1 else len(md)]


def table_row(md: str, header_start: str, first_cell: str) -> list:
    lines = md.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith(header_start))
    for ln in lines[i + 2 :]:
        if not ln.startswith('|'):
            break
        cells = [c.strip() for c in ln.strip('|').split('|')]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f'no row {first_cell!r} under {header_start!r}')


def test_committed_page_is_current():
    assert PAGE.read_text() == results_page.render(), (
        f'docs/results.md is stale: run `{results_page.COMMAND}`'
    )


def test_check_fails_on_a_stale_page_and_names_the_command(
    tmp_path, monkeypatch, capsys
):
    stale = tmp_path / 'results.md'
    stale.write_text(PAGE.read_text().replace('33.24 ± 1.41', '33.25 ± 1.41'))
    monkeypatch.setattr(results_page, 'PAGE', stale)
    monkeypatch.setattr(results_page, 'rel', lambda p: str(p))
    assert results_page.main(['--check']) == 1
    assert results_page.COMMAND in capsys.readouterr().out
    stale.write_text(results_page.render())
    assert results_page.main(['--check']) == 0


def test_headline_numbers_equal_the_raw_cell_json():
    """Independent of the study package: the mean and sample std of AUSAM-0.5's
    held-out accuracy, and SAM - SGD's paired mean and SE, from the cell
    files themselves."""
    acc = {}
    for path in sorted(CELLS.glob('*_seed*.json')):
        cell = json.loads(path.read_text())
        acc.setdefault(cell['method'], {})[cell['seed']] = cell['holdout_top1']
    ausam = [acc['AUSAM-0.5'][s] for s in range(10)]
    mean = sum(ausam) / len(ausam)
    std = math.sqrt(sum((a - mean) ** 2 for a in ausam) / (len(ausam) - 1))
    diffs = [acc['SAM'][s] - acc['SGD'][s] for s in range(10)]
    d_mean = sum(diffs) / 10
    d_se = math.sqrt(sum((d - d_mean) ** 2 for d in diffs) / 9 / 10)

    md = section(
        PAGE.read_text(), '## The headline study: `cpu-noise20`, 10 seeds'
    )
    row = table_row(md, '| method | seeds | held-out', 'AUSAM-0.5')
    assert row[1] == '10'
    assert row[2] == f'{mean:.2f} ± {std:.2f}' == '33.24 ± 1.41'
    row = table_row(md, '| comparison |', 'SAM − SGD')
    assert row[1:4] == ['10', f'{d_mean:+.2f}', f'{d_se:.2f}']
    assert row[2:4] == ['+1.35', '0.33']


def test_study_tables_are_those_of_the_study_report(tmp_path):
    """The page's cpu-noise20 tables are line for line what
    `benchmarks/study --preset cpu-noise20 --report` writes."""
    preset = study.PRESETS['cpu-noise20']
    report = study.report('cpu-noise20', preset, CELLS, tmp_path)
    page = section(
        PAGE.read_text(), '## The headline study: `cpu-noise20`, 10 seeds'
    )
    table_lines = [ln for ln in report.splitlines() if ln.startswith('|')]
    assert len(table_lines) > 120
    for line in table_lines:
        assert line in page, line


def test_step_time_table_equals_the_json():
    data = json.loads(
        (
            ROOT / 'benchmarks' / 'results' / 'step_time_methods_cpu.json'
        ).read_text()
    )
    rows = {r['method']: r for r in data['batches'][0]['rows']}
    sam = statistics.median(rows['SAM']['times_s'])
    ausam = statistics.median(rows['AUSAM-0.5']['times_s'])
    md = section(PAGE.read_text(), '## CPU step time')
    row = table_row(md, '| method | median step (ms) | SAM% |', 'AUSAM-0.5')
    assert row[1:] == [f'{1000 * ausam:.1f}', f'{100 * sam / ausam:.0f}%']
    assert row[1:] == ['2600.3', '224%']
