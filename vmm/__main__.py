"""`python -m vmm` is the `pyvmm` command."""

import sys

from .cli import main

sys.exit(main())
