"""``python -m mcastlab.servers up|status|down``."""

import sys

from mcastlab.servers import main

sys.exit(main())
