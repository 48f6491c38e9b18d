"""Relay tests share `relay_testkit` (request builders, fake relay sockets, a real-socket TURN client)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
