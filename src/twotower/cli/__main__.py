"""`python -m twotower.cli ...`, the same as the `twotower` command."""

import sys

from twotower.cli import main

sys.exit(main())
