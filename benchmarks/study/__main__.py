"""python benchmarks/study ...: the study's command line (``cli.py``)."""

import sys
from pathlib import Path

# benchmarks/ (common.py) and the package's parent on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study.cli import main  # noqa: E402

main()
