"""Settings shared by every test: keep the CDK toolchain quiet and offline."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The CDK's Node is package.json's Node 22 LTS (as scripts/env.sh sets it), whoever started pytest.
os.environ["PATH"] = f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")
os.environ.setdefault("CDK_DISABLE_VERSION_CHECK", "1")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
