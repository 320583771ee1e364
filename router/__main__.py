"""`python -m router` is the `ai-router` command."""

import sys

from router.cli import main

sys.exit(main())
