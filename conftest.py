"""Loads pyvmm's pytest plugin (vmm/pytest_plugin.py) for this repository's tests when pytest has not already.

An installed pyvmm (`pip install -e .`) registers the plugin through its `pytest11` entry point and pytest
loads it before this file; a plain checkout has no entry point, so it is named here. Loading it twice would
register the same options twice.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points


def _autoloaded() -> bool:
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(ep.name == "pyvmm" and ep.value == "vmm.pytest_plugin" for ep in entry_points(group="pytest11"))


pytest_plugins = [] if _autoloaded() else ["vmm.pytest_plugin"]
