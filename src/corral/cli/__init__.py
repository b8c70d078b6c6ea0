"""The ``corral`` command line: ``corral demo``, ``bench``, ``events``, ``--version``.

Needs the ``cli`` extra (typer and rich); ``import corral`` never imports this package.
"""

from ._app import app as app
from ._app import main as main

__all__ = ("app", "main")
