"""``python -m volcengine_live_cli``: the same as the ``volcengine-live`` command."""

import sys

from .command import main

sys.exit(main())
