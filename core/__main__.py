"""``python -m core``: the command-line interface (see core/cli/main.py)."""

import sys

from core.cli.main import main

sys.exit(main())
