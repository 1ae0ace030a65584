"""A point's kept files: the compressed model it was measured on, so nothing after the measurement trains again.

When a point is measured its files are kept, content-addressed (named by their SHA-256) in
a folder beside the store: the compact archive (.etz, the whole compressed model, where
the model has an architecture) and the deployable files that were scored and timed (.onnx,
.pte, .tflite). The store indexes them by point (`Store.put(point, artefacts=...)`); export,
re-timing and other runtimes' files start from them. The folder has a size bound
($EDGETRIM_ARTEFACTS_GB, 5 by default): past it the least recently used files are removed,
never a point's numbers; a point whose files are gone is rebuilt from its Spec, said so.
Two points with the same file share it; writes are atomic, so workers may keep files at once.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

KINDS = {".etz": "archive", ".onnx": "onnx", ".pte": "pte", ".tflite": "tflite"}   # what a measurement's folder may hold, by suffix
DEFAULT_LIMIT_GB = 5.0


@dataclass(frozen=True)
class Artefact:
    kind: str       # 'archive', 'onnx', 'pte' or 'tflite'
    sha256: str
    bytes: int
    suffix: str

    @property
    def name(self) -> str:
        return f"{self.sha256}{self.suffix}"


def limit_bytes() -> int:
    """The folder's bound: $EDGETRIM_ARTEFACTS_GB gigabytes (0 keeps nothing), else 5 GB."""
    raw = os.environ.get("EDGETRIM_ARTEFACTS_GB", "")
    try:
        gb = float(raw) if raw else DEFAULT_LIMIT_GB
    except ValueError:
        raise ValueError(f"EDGETRIM_ARTEFACTS_GB must be a number of gigabytes, not {raw!r}.") from None
    return int(max(0.0, gb) * 2**30)


class Folder:
    """The content-addressed folder: `keep` files into it, `path` to one, `evict` down to the bound."""

    def __init__(self, root: str | Path, limit: int | None = None):
        self.root = Path(root)
        self.limit = limit_bytes() if limit is None else limit

    def _path(self, a: Artefact) -> Path:
        return self.root / a.sha256[:2] / a.name

    def keep(self, path: str | Path) -> Artefact | None:
        """Copy one measured file in (atomically, once per content); None for a file of no kept kind."""
        path = Path(path)
        kind = KINDS.get(path.suffix)
        if kind is None or self.limit <= 0:
            return None
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        a = Artefact(kind, h.hexdigest(), path.stat().st_size, path.suffix)
        target = self._path(a)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{a.name}.{os.getpid()}.tmp")
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        return a

    def keep_all(self, folder: str | Path) -> tuple[Artefact, ...]:
        """Every file of a kept kind in `folder` (a measurement's keep_dir)."""
        kept = (self.keep(p) for p in sorted(Path(folder).iterdir()) if p.is_file())
        return tuple(a for a in kept if a is not None)

    def path(self, a: Artefact) -> Path | None:
        """The kept file, or None when it was evicted or never kept; a hit counts as a use (LRU)."""
        p = self._path(a)
        if not p.is_file():
            return None
        try:
            os.utime(p)
        except OSError:  # a folder this user may only read: the file is still there to use
            pass
        return p

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("*/*") if p.is_file())

    def evict(self) -> int:
        """Remove the least recently used files until the folder is within its bound; returns bytes freed."""
        files = sorted((p for p in self.root.glob("*/*") if p.is_file() and not p.name.startswith(".")),
                       key=lambda p: p.stat().st_mtime)
        total, freed = sum(p.stat().st_size for p in files), 0
        for p in files:
            if total - freed <= self.limit:
                break
            size = p.stat().st_size
            p.unlink(missing_ok=True)
            freed += size
        return freed
