"""The operator command's tests reuse the relay's test kit (an in-process relay on loopback)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent / "relay"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
