"""`python -m homesec` is the `homesec` command."""

import sys

from homesec.cli import main

sys.exit(main())
