"""``python -m volcengine_live_cli.report``: the same as ``volcengine-live report``."""

import sys

from . import main

sys.exit(main(sys.argv[1:]))
