"""Test helpers (gradcheck, corpus, error_programs, ...) import by their plain module
names whether or not `tests` is a package."""

import sys
from pathlib import Path

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
