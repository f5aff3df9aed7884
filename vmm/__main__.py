"""`python -m vmm` is the `pyvmm` command."""

from .cli import entry

entry()
