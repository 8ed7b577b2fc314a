"""Lets `python -m bridge` run the CLI."""

import sys

from bridge.cli import main

sys.exit(main())
