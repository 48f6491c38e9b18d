"""The operator command `bbb-on-aws` (probe, status, drain, cost): the CLI side of the project.

It reads the settings model (cdk.json through the app's loader), the contract names and the instance-type
catalogue; nothing in the app, stacks, constructs or runtime code imports it.
"""

import sys
from pathlib import Path

# The project is installed editable (scripts/install.sh: pip install -e .), which maps only this package; the
# command also reads modules beside it in the working tree (stacks/settings, lambdas/common/names.py) and its
# cdk.json, so the repository root must be importable wherever the command is started from.
REPOSITORY = Path(__file__).resolve().parent.parent
if str(REPOSITORY) not in sys.path:
    sys.path.append(str(REPOSITORY))
