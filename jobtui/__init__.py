"""jobtui: a job scheduler for Python with a live terminal console.

Use it as a library: ``from jobtui import Scheduler, Run``.
"""

from importlib.metadata import PackageNotFoundError, version

from .engine import *  # noqa: F403 - the engine's public API is the package's
from .engine import __all__ as _engine_all

try:
    __version__ = version("jobtui")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"

__all__ = [*_engine_all, "__version__"]
