"""`python -m videonl COMMAND ...` is the `videonl` console command."""

import sys

from videonl.cli import main

sys.exit(main())
