"""Export a checkpoint's weights: python tools/export_weights.py IN OUT."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ausam_tasks.tools.export_weights import main  # noqa: E402

if __name__ == '__main__':
    main()
