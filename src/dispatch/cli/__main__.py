"""``python -m dispatch.cli``: the ``dispatch`` command (how the supervisor
starts service instances with the interpreter it runs on)."""

import sys

from dispatch.cli import main

sys.exit(main())
