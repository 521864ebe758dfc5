"""``python -m studies.cli``: the ``disent-study`` command line."""

import sys

from studies.cli import main

sys.exit(main())
