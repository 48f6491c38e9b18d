"""`python -m bbb_on_aws` runs the operator command, as the `bbb-on-aws` console script does."""

import sys

from bbb_on_aws.cli import main

sys.exit(main())
