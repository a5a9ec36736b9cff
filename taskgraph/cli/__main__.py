"""``python -m taskgraph.cli`` (as when the CLI was one module)."""

import sys

from taskgraph.cli import main

sys.exit(main())
