"""The host contract's numbers and names: ports, tags, DNS prefixes, metric names (docs/host-contract.md).

The values live in lambdas/common/contract.py, so that the lifecycle Lambda asset (the `lambdas/` folder)
ships the very same module its handlers import; the settings, the constructs and the user-data renderer
import it from here.
"""

from lambdas.common.contract import *  # noqa: F403
from lambdas.common.contract import __all__  # noqa: F401
