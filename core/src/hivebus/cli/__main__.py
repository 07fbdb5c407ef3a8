"""``python -m hivebus.cli``: the same as the ``hivebus`` command."""

import sys

from . import main

sys.exit(main())
