"""The results store: every measured point, kept, keyed by what it was measured on.

SQLite by default (WAL, one transaction per point), at `--store`, $EDGETRIM_STORE, or
the user's cache folder. A point's key is the hash of (model fingerprint, data
fingerprint, Spec): a point already stored is never recomputed, whichever run asks.
Runs are named lists of point keys, so runs can share points and be compared and
deleted. The schema has a version; a store written by a newer edgetrim is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.measure import Metrics
from core.spec import Spec

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, model_fingerprint TEXT NOT NULL, data TEXT NOT NULL,
    data_fingerprint TEXT NOT NULL, spec_hash TEXT NOT NULL, spec_json TEXT NOT NULL, family TEXT NOT NULL,
    label TEXT NOT NULL, status TEXT NOT NULL, metrics_json TEXT, error TEXT, seconds REAL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY, config_json TEXT NOT NULL, model TEXT NOT NULL, data TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS run_points (
    run TEXT NOT NULL REFERENCES runs(name) ON DELETE CASCADE, point_key TEXT NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (run, point_key));
"""


class StoreError(ValueError):
    """A store that cannot be used as asked; one sentence on what to do."""


def default_path() -> Path:
    env = os.environ.get("EDGETRIM_STORE")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "edgetrim" / "results.sqlite"


def point_key(model_fingerprint: str, data_fingerprint: str, spec: Spec) -> str:
    return hashlib.sha256(f"{model_fingerprint}|{data_fingerprint}|{spec.to_json()}".encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Point:
    """A Spec plus what was measured (or the error that stopped it)."""
    key: str
    model: str
    model_fingerprint: str
    data: str
    data_fingerprint: str
    spec: Spec
    status: str                 # "ok" or "failed"
    metrics: Metrics | None = None
    error: str | None = None
    seconds: float | None = None


class Store:
    """SQLite results store. Safe for several processes writing at once (WAL + busy timeout)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA busy_timeout=60000")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a usable edgetrim store ({e}).") from e
        except OSError as e:
            raise StoreError(f"Cannot open the store at {self.path} ({e.strerror}); choose another with --store.") from e

    def _migrate(self) -> None:
        with self._tx():
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row and int(row[0]) > SCHEMA_VERSION:
                raise StoreError(f"{self.path} was written by a newer edgetrim (schema {row[0]}, this one reads "
                                 f"{SCHEMA_VERSION}); upgrade edgetrim or use another --store.")
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    self.db.execute(stmt)
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _tx(self):
        db = self.db

        class _Tx:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind, *_):
                db.execute("COMMIT" if kind is None else "ROLLBACK")
        return _Tx()

    def close(self) -> None:
        self.db.close()

    # ---- points ----------------------------------------------------------------------
    def get(self, key: str) -> Point | None:
        row = self.db.execute("SELECT * FROM points WHERE key=?", (key,)).fetchone()
        return self._point(row) if row else None

    def has_ok(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM points WHERE key=? AND status='ok'", (key,)).fetchone() is not None

    def put(self, p: Point, run: str | None = None, position: int = 0) -> None:
        """Write one point (and link it to `run`) in one transaction."""
        with self._tx():
            self.db.execute(
                "INSERT OR REPLACE INTO points VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (p.key, p.model, p.model_fingerprint, p.data, p.data_fingerprint, p.spec.hash, p.spec.to_json(),
                 p.spec.family, p.spec.label, p.status, p.metrics.to_json() if p.metrics else None, p.error,
                 p.seconds, time.time()))
            if run:
                self.db.execute("INSERT OR IGNORE INTO run_points VALUES (?,?,?)", (run, p.key, position))

    def link(self, run: str, keys: list[str]) -> None:
        with self._tx():
            self.db.executemany("INSERT OR IGNORE INTO run_points VALUES (?,?,?)",
                                [(run, k, i) for i, k in enumerate(keys)])

    @staticmethod
    def _point(row) -> Point:
        (key, model, mfp, data, dfp, _hash, spec_json, _family, _label, status, metrics, error, seconds, _t) = row
        return Point(key, model, mfp, data, dfp, Spec.from_json(spec_json), status,
                     Metrics.from_json(metrics) if metrics else None, error, seconds)

    # ---- runs --------------------------------------------------------------------------
    def add_run(self, name: str, config: dict, model: str, data: str) -> None:
        with self._tx():
            self.db.execute("INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?)",
                            (name, json.dumps(config, sort_keys=True), model, data, time.time()))

    def run_config(self, name: str) -> dict:
        row = self.db.execute("SELECT config_json FROM runs WHERE name=?", (name,)).fetchone()
        if row is None:
            raise StoreError(f"No run named {name!r} in {self.path}; `edgetrim runs` lists them.")
        return json.loads(row[0])

    def runs(self) -> pd.DataFrame:
        return pd.read_sql_query(
            "SELECT r.name AS run, r.model, r.data, COUNT(p.key) AS points, "
            "SUM(p.status='ok') AS ok, SUM(p.status='failed') AS failed, "
            "datetime(r.created_at, 'unixepoch') AS created FROM runs r "
            "LEFT JOIN run_points rp ON rp.run = r.name LEFT JOIN points p ON p.key = rp.point_key "
            "GROUP BY r.name ORDER BY r.created_at", self.db)

    def delete_run(self, name: str) -> None:
        """Forget the run; its points stay (other runs may share them) unless no run links them."""
        self.run_config(name)
        with self._tx():
            self.db.execute("DELETE FROM run_points WHERE run=?", (name,))
            self.db.execute("DELETE FROM runs WHERE name=?", (name,))
            self.db.execute("DELETE FROM points WHERE key NOT IN (SELECT point_key FROM run_points)")

    def points(self, run: str) -> list[Point]:
        self.run_config(run)
        rows = self.db.execute("SELECT p.* FROM points p JOIN run_points rp ON rp.point_key = p.key "
                               "WHERE rp.run=? ORDER BY rp.position", (run,)).fetchall()
        return [self._point(r) for r in rows]

    def table(self, run: str) -> pd.DataFrame:
        """One row per point of `run`, flat columns, ready for fronts, plots and CSV."""
        return points_frame(self.points(run), run)


def points_frame(points: list[Point], run: str = "") -> pd.DataFrame:
    rows = []
    for p in points:
        m = p.metrics
        rows.append({
            "run": run, "key": p.key, "model": p.model, "family": p.spec.family, "label": p.spec.label,
            "spec_hash": p.spec.hash, "status": p.status, "error": p.error,
            "accuracy": m.accuracy if m else None,
            "torch_accuracy": m.torch_accuracy if m else None,
            "onnx_bytes": m.onnx_bytes if m else None,
            "archive_bytes": m.archive_bytes if m else None,
            "params": m.params if m else None,
            "nonzero_params": m.nonzero_params if m else None,
            "macs": m.macs if m else None,
            "ort_b1_ms": m.latency_ms("onnxruntime", 1) if m else None,
            "ort_b32_ms": m.latency_ms("onnxruntime", 32) if m else None,
            "torch_b1_ms": m.latency_ms("pytorch", 1) if m else None,
            "notes": " | ".join(m.notes) if m else "",
            "seconds": p.seconds,
            "spec_json": p.spec.to_json(),
        })
    return pd.DataFrame(rows)
