"""Test a checkpoint: python tools/test.py CONFIG CHECKPOINT [flags]."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ausam_tasks.engine.dist import close_process_group  # noqa: E402
from ausam_tasks.tools.test import main  # noqa: E402

if __name__ == '__main__':
    main()
    close_process_group()
