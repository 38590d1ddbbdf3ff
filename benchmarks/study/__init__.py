"""A study: methods x seeds through the real mmengine Runner, and its report.

Each cell (one method, one seed) is the classification task's config (the
preset's base config + the method's ``optim_wrapper`` + the seed), trained by
``Runner.train()`` in its own process, then evaluated on the training images
without augmentation. Its result is one JSON file, written atomically;
finished cells are skipped, so a rerun resumes (an interrupted cell resumes
from its last checkpoint). ``--report`` turns the cells into
``docs/study/<preset>.md`` and ``.png``.

    # the CPU study (the regime where SAM beats SGD), one cell per core
    .venv/bin/python benchmarks/study --preset cpu-noise20 --cpus 0,1
    .venv/bin/python benchmarks/study --preset cpu-noise20 --report
    # the first, clean-label regime, all cells one after the other on core 1
    taskset -c 1 .venv/bin/python benchmarks/study --preset cpu
    # the paper's Table 2 ResNet-18 row, one process per GPU
    python benchmarks/study --preset gpu-paper --devices cuda:0,cuda:1
    # its smoke test: two epochs of one cell on the CPU
    python benchmarks/study --preset gpu-paper --methods SAM --seeds 0 \\
        --epochs 2 --limit-train 250 --limit-holdout 100 --device cpu \\
        --out work_dirs/study-smoke
"""

# One job per module: presets, methods, data (the split), cell (one run),
# noise (the flipped labels), launch (the matrix), stats, report, plot, cli.
from .cell import cell_config, cell_name, run_cell  # noqa: F401
from .cli import main, resolve_preset  # noqa: F401
from .data import prepare_data  # noqa: F401
from .methods import (  # noqa: F401
    CHEAP_BASELINES,
    METHODS,
    STUDY_METHODS,
    TABLE5_METHODS,
    RunFraction,
    resolve_spec,
)
from .presets import PRESETS  # noqa: F401
from .report import (  # noqa: F401
    comparisons,
    diagnostics_tables,
    fmt,
    noise_table,
    report,
    table5,
    tally,
)
from .stats import load_cells, paired, summarize, t_interval  # noqa: F401
