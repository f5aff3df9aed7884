"""PEP 562 lazy names for the loaders packages: a launch imports only the submodules it uses."""

from __future__ import annotations

from collections.abc import Callable


def lazy_getattr(package: str, where: dict[str, str], namespace: dict[str, object]) -> Callable[[str], object]:
    """A module __getattr__ for `package` that imports each name from its submodule where[name] on first use."""
    def __getattr__(name: str) -> object:
        sub = where.get(name)
        if sub is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        # __import__ with a fromlist returns the submodule itself, as importlib.import_module would; importing
        # importlib (and the warnings module it imports) would cost every launch about 0.45 ms
        value = getattr(__import__(f"{package}.{sub}", fromlist=(name,)), name)
        namespace[name] = value
        return value
    return __getattr__
