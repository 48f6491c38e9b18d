"""`python -m relay -c FILE`: the same as the `bbb-turn-relay` console script."""

from __future__ import annotations

from relay.process.cli import main

raise SystemExit(main())
