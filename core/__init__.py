"""edgetrim's engine: plain Python, no UI imports (the dashboard and the CLI both drive it)."""
import os
from pathlib import Path

__version__ = "0.1.0"


USER_XDG = "EDGETRIM_USER_XDG_CACHE_HOME"  # the user's own $XDG_CACHE_HOME ('' for none) once routed below


def cache_root() -> Path:
    """The user's own cache folder for edgetrim ($XDG_CACHE_HOME/edgetrim or ~/.cache/edgetrim), whatever
    $EDGETRIM_CACHE says: only read from when that is set (a copy of MNIST fetched there before)."""
    xdg = os.environ[USER_XDG] if USER_XDG in os.environ else os.environ.get("XDG_CACHE_HOME")
    return Path(xdg or Path.home() / ".cache") / "edgetrim"


def cache_dir() -> Path:
    """Where everything edgetrim writes goes: $EDGETRIM_CACHE, else cache_root(). The results store (unless
    $EDGETRIM_STORE or --store names one) and its kept files, MNIST, trained students, teachers' logits, uploads
    and the dashboard's sweep logs."""
    return Path(os.environ.get("EDGETRIM_CACHE") or cache_root())


def _route_libraries() -> None:
    """With $EDGETRIM_CACHE set, the libraries edgetrim drives keep their caches in it too (<it>/libraries):
    ONNX Runtime's device id and pip's downloads (both under $XDG_CACHE_HOME, which ONNX Runtime reads when it is
    imported, so this runs when `core` is) and PyTorch Inductor's kernels. Child processes inherit it."""
    root = os.environ.get("EDGETRIM_CACHE")
    libraries = str(Path(root) / "libraries") if root else None
    if not root or os.environ.get("XDG_CACHE_HOME") == libraries:
        return
    os.environ.setdefault(USER_XDG, os.environ.get("XDG_CACHE_HOME", ""))
    os.environ["XDG_CACHE_HOME"] = libraries
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(libraries) / "torchinductor"))


_route_libraries()
