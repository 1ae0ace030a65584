"""edgetrim's engine: plain Python, no UI imports (the dashboard and the CLI both drive it)."""
import os
from pathlib import Path

__version__ = "0.1.0"


def cache_root() -> Path:
    """The user's cache folder for edgetrim ($XDG_CACHE_HOME/edgetrim or ~/.cache/edgetrim)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgetrim"


def cache_dir() -> Path:
    """Where trained students, uploads and dashboard sweep logs go: $EDGETRIM_CACHE, else cache_root()."""
    return Path(os.environ.get("EDGETRIM_CACHE") or cache_root())
