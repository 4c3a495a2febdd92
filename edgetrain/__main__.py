"""`python -m edgetrain`: the `edgetrain` command."""

import sys

from edgetrain.app.cli import main

sys.exit(main())
