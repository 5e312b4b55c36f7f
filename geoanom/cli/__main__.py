"""``python -m geoanom.cli``: the ``geoanom`` command."""

import sys

from . import main

sys.exit(main())
