"""Hand the heap that start-up freed back to the operating system.

Start-up imports a few hundred modules (compiling those that have no cached bytecode) and
builds every validator; what that work frees stays in the C heap, counted in the process's
RSS, until the C library is asked to return it. glibc returns it on ``malloc_trim``; elsewhere
(musl, macOS, Windows) this does nothing. Live data is untouched: only free pages go.
"""

from __future__ import annotations

import ctypes
import logging
import sys

__all__ = ["release_free_heap"]

log = logging.getLogger("hivebus.heap")


def release_free_heap() -> bool:
    """``malloc_trim(0)`` where the C library has it; ``True`` when memory went back."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # a C library without it (musl)
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    released = bool(trim(0))
    log.debug("freed heap returned to the system", extra={"released": released})
    return released
