"""Plot a run's selection diagnostics: python tools/plot_diagnostics.py
WORK_DIR [--out PNG] (see docs/diagnostics.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ausam_tasks.tools.plot_diagnostics import main  # noqa: E402

if __name__ == '__main__':
    main()
