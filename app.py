#!/usr/bin/env python3
"""Entry point of the CDK app (`npx cdk synth`, or `python app.py` alone with the same result)."""

import sys

from cdk_json import CdkJsonError
from settings import ConfigError
from stacks.deployment import build_app


def main() -> int:
    try:
        app, _ = build_app()
    except ConfigError as error:
        print(f"Configuration error (cdk.json) — nothing was synthesized.\n{error}", file=sys.stderr)
        return 1
    except CdkJsonError as error:
        print(f"cdk.json cannot be read — nothing was synthesized.\n{error}", file=sys.stderr)
        return 1
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
