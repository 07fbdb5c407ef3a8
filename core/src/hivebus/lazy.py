"""Names a package exports but imports on first use (PEP 562).

A process imports what it uses: an agent that needs ``hivebus.Agent`` never loads the core, and
``hivebus up`` never loads the legacy facade (tests/test_imports.py pins both).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, modules: Mapping[str, str], exported: Iterable[str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: each name in ``modules`` is read
    from its module (absolute, or relative to ``package``) when first asked for."""
    listed = sorted(exported)

    def __getattr__(name: str) -> object:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    def __dir__() -> list[str]:
        return listed

    return __getattr__, __dir__
