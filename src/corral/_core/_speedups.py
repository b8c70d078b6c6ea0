"""Loading the compiled hot paths of :class:`~corral.Promise`, when they are there.

``corral/_core/_promise_speedups.c`` compiles (when the package is built with a C compiler)
to a module that replaces a few hot functions of the pure-Python promise with C versions
doing exactly the same thing. Without it, or with the environment variable
``CORRAL_PURE_PYTHON`` set to anything but ``0`` or nothing, corral runs the pure-Python
promise, which is complete on its own.

In a source checkout, a compiled module built from another version of the C file than the
one beside it is not used: the import warns (``RuntimeWarning``) and corral runs pure
Python until the module is built again (``python3 dev.py setup``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

__all__ = ("MODULE", "PURE_PYTHON_VARIABLE", "load", "running_loop")

#: The environment variable that turns the compiled promise off.
PURE_PYTHON_VARIABLE = "CORRAL_PURE_PYTHON"

_SOURCE = Path(__file__).with_name("_promise_speedups.c")


def load() -> ModuleType | None:
    """The compiled module, or ``None`` if it is absent, turned off or stale."""
    if os.environ.get(PURE_PYTHON_VARIABLE, "") not in ("", "0"):
        return None
    try:
        from . import _promise_speedups
    except ImportError:
        return None
    if _SOURCE.exists():
        current = hashlib.sha256(_SOURCE.read_bytes()).hexdigest()
        if current != _promise_speedups.SOURCE_SHA256:
            warnings.warn(
                f"corral's compiled promise was built from another version of {_SOURCE.name}; "
                "using the pure-Python promise until it is built again "
                "(python3 dev.py setup, or pip install -e . again)",
                RuntimeWarning,
                stacklevel=2,
            )
            return None
    return _promise_speedups


#: The compiled module in use, or ``None``.
MODULE = load()

#: ``asyncio._get_running_loop``, or on Python 3.11, where that makes a ``getpid()``
#: system call each time, the compiled lookup that remembers the loop found last. (On
#: 3.12 and later asyncio's own is cheaper than the compiled one's check.)
running_loop: Callable[[], asyncio.AbstractEventLoop | None] = asyncio._get_running_loop

if MODULE is not None and sys.version_info < (3, 12):
    running_loop = MODULE.running_loop
    # A forked child must not take its parent's loop for its own.
    os.register_at_fork(after_in_child=MODULE.forget_running_loop)
