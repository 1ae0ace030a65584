"""The results store: every measured point, kept, keyed by what it was measured on.

SQLite by default (WAL, one transaction per point), at `--store`, $EDGETRIM_STORE, or
the user's cache folder; or a PostgreSQL server (`--store postgresql://user@host/db`,
connected through SQLAlchemy) that many machines can share, with the same schema and
the same SQL (`INSERT ... ON CONFLICT` works on both). A point's key is the hash of (model fingerprint, data
fingerprint, Spec): a point already stored is never recomputed, whichever run asks.
Runs are named lists of point keys, so runs can share points and be compared and
deleted. The schema has a version; a store written by a newer edgetrim is refused.
A SQLite store opened `read_only` (for commands that only read) is never created,
migrated or written (and is read from a folder this user may only read): a missing file or
one that is not an edgetrim store is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core import cache_dir
from core.methods.spec import Spec
from core.results import describe
from core.results.artefacts import Artefact, Folder
from core.runtimes.measure import Metrics

SCHEMA_VERSION = 1
POSTGRES_PREFIXES = ("postgresql://", "postgresql+psycopg://", "postgres://")
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, model_fingerprint TEXT NOT NULL, data TEXT NOT NULL,
    data_fingerprint TEXT NOT NULL, spec_hash TEXT NOT NULL, spec_json TEXT NOT NULL, family TEXT NOT NULL,
    label TEXT NOT NULL, status TEXT NOT NULL, metrics_json TEXT, error TEXT, seconds DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY, config_json TEXT NOT NULL, model TEXT NOT NULL, data TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS artefacts (
    point_key TEXT NOT NULL, kind TEXT NOT NULL, sha256 TEXT NOT NULL, bytes BIGINT NOT NULL, suffix TEXT NOT NULL,
    PRIMARY KEY (point_key, kind));
CREATE TABLE IF NOT EXISTS run_points (
    run TEXT NOT NULL REFERENCES runs(name) ON DELETE CASCADE, point_key TEXT NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (run, point_key));
"""


COLUMNS = ("key, model, model_fingerprint, data, data_fingerprint, spec_hash, spec_json, family, label, status, "
           "metrics_json, error, seconds, created_at")


class StoreError(ValueError):
    """A store that cannot be used as asked; one sentence on what to do."""


def default_path() -> str | Path:
    """$EDGETRIM_STORE (a file or a postgresql:// URL), else results.sqlite in edgetrim's cache folder
    ($EDGETRIM_CACHE, else ~/.cache/edgetrim)."""
    return os.environ.get("EDGETRIM_STORE") or cache_dir() / "results.sqlite"


def point_key(model_fingerprint: str, data_fingerprint: str, spec: Spec, profile: str = "") -> str:
    """A point's identity: the model, the data, the Spec and, when one is set, the device profile it was timed
    under ('threads=1'), so a one-thread run and an all-cores run of the same Spec are two points."""
    ident = f"{model_fingerprint}|{data_fingerprint}|{spec.to_json()}" + (f"|{profile}" if profile else "")
    return hashlib.sha256(ident.encode()).hexdigest()[:20]


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


def is_postgres(target: str | Path | None) -> bool:
    return str(target or "").startswith(POSTGRES_PREFIXES)


def _wal_(db: sqlite3.Connection, wait_s: float = 60.0) -> None:
    """Switch a SQLite file to write-ahead logging. Two processes creating one new store at once can find it
    locked, and SQLite does not wait on a lock for this switch: retry until `wait_s` has passed."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Store:
    """The results store on SQLite (a file) or PostgreSQL (a URL). Safe for several writers at once.
    `read_only` opens an existing SQLite store for reading only (PostgreSQL stores open as usual)."""

    def __init__(self, target: str | Path | None = None, read_only: bool = False):
        target = target or default_path()
        self.postgres = is_postgres(target)
        self.read_only = read_only and not self.postgres
        self._url = str(target) if self.postgres else None
        self.path = self._redacted(str(target)) if self.postgres else Path(target)
        try:
            self.db = self._connect_postgres(str(target)) if self.postgres else self._connect_sqlite()
            self._check_store() if self.read_only else self._migrate()
        except StoreError:
            raise
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a usable edgetrim store ({e}).") from e
        except OSError as e:
            raise StoreError(f"Cannot open the store at {self.path} ({e.strerror}); choose another with --store.") from e

    @staticmethod
    def _redacted(url: str) -> str:
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)

    def _connect_sqlite(self):
        if self.read_only:
            if not self.path.is_file():
                raise StoreError(f"No edgetrim store at {self.path}; run `edgetrim sweep` to make one, or give the "
                                 "--store a sweep wrote to.")
            db = self._connect_read_only()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout=60000")
            _wal_(db)
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=60000")
        return db

    def _connect_read_only(self):
        """The store opened for reading only. A store in WAL mode needs its index file (<store>-shm) to be read,
        which SQLite cannot make in a folder this user may only read: there, with no <store>-wal of changes not yet
        merged beside it, the file holds every point and nobody can be writing it, so it is read as immutable."""
        uri = self.path.resolve().as_uri()
        connect = lambda query: sqlite3.connect(f"{uri}?{query}", uri=True, timeout=60,  # noqa: E731
                                                isolation_level=None, check_same_thread=False)
        db = connect("mode=ro")
        try:
            db.execute("SELECT 1 FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError as e:
            db.close()
            if not re.search(r"readonly|unable to open", str(e)):
                raise
        if Path(f"{self.path}-wal").exists():
            raise StoreError(f"{self.path} sits in a folder this user cannot write and has changes not yet merged "
                             f"into it ({self.path.name}-wal); copy both files to a folder you can write and give "
                             "that --store.")
        return connect("mode=ro&immutable=1")

    def _connect_postgres(self, url: str):
        try:
            import sqlalchemy
        except ImportError as e:
            raise StoreError("A PostgreSQL store needs SQLAlchemy and psycopg: pip install 'edgetrim[postgres]'.") from e
        url = re.sub(r"^(postgresql|postgres)(\+psycopg)?://", "postgresql+psycopg://", url)
        try:
            engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
            raw = engine.raw_connection()
        except Exception as e:
            raise StoreError(f"Cannot connect to the PostgreSQL store {self.path} ({str(e).splitlines()[0][:160]}).") from e
        raw.driver_connection.autocommit = True  # transactions are explicit: BEGIN ... COMMIT per point
        return raw

    def _run(self, sql: str, params: tuple | list = ()):
        cur = self.db.cursor()
        cur.execute(sql.replace("?", "%s") if self.postgres else sql, params)
        return cur

    def _run_many(self, sql: str, rows: list) -> None:
        if rows:
            self.db.cursor().executemany(sql.replace("?", "%s") if self.postgres else sql, rows)

    def _query(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        cur = self._run(sql, params)
        return pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])

    def _migrate(self) -> None:
        with self._tx():
            if self.postgres:
                self._run("SELECT pg_advisory_xact_lock(4242)")  # one migration at a time across machines
            self._run("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._schema_version()
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    self._run(stmt)
            self._run("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
                      (str(SCHEMA_VERSION),))

    def _schema_version(self) -> int | None:
        """The store's schema version (None if it has none yet); a newer one than this edgetrim reads is refused."""
        row = self._run("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row and int(row[0]) > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer edgetrim (schema {row[0]}, this one reads "
                             f"{SCHEMA_VERSION}); upgrade edgetrim or use another --store.")
        return int(row[0]) if row else None

    def _check_store(self) -> None:
        """A read-only store must already be one: tables and a schema version, written by a sweep."""
        has_meta = self._run("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta or self._schema_version() is None:
            raise StoreError(f"{self.path} is not an edgetrim store (it holds no edgetrim tables); give the --store "
                             "a sweep wrote to.")

    def _tx(self):
        store = self

        class _Tx:
            def __enter__(self):
                store._run("BEGIN" if store.postgres else "BEGIN IMMEDIATE")

            def __exit__(self, kind, *_):
                store._run("COMMIT" if kind is None else "ROLLBACK")
        return _Tx()

    def close(self) -> None:
        self.db.close()

    # ---- points ----------------------------------------------------------------------
    def get(self, key: str) -> Point | None:
        row = self._run(f"SELECT {COLUMNS} FROM points WHERE key=?", (key,)).fetchone()
        return self._point(row) if row else None

    def has_ok(self, key: str) -> bool:
        return self._run("SELECT 1 FROM points WHERE key=? AND status='ok'", (key,)).fetchone() is not None

    def put(self, p: Point, run: str | None = None, position: int = 0, artefacts: tuple[Artefact, ...] = ()) -> None:
        """Write one point (and link it to `run`), with the index of its kept files, in one transaction."""
        with self._tx():
            self._run(
                f"INSERT INTO points ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (key) DO UPDATE SET "
                + ", ".join(f"{c}=excluded.{c}" for c in COLUMNS.split(", ")[1:]),
                (p.key, p.model, p.model_fingerprint, p.data, p.data_fingerprint, p.spec.hash, p.spec.to_json(),
                 p.spec.family, p.spec.label, p.status, p.metrics.to_json() if p.metrics else None, p.error,
                 p.seconds, time.time()))
            if run:
                self._run("INSERT INTO run_points VALUES (?,?,?) ON CONFLICT DO NOTHING", (run, p.key, position))
            if artefacts or p.status != "ok":  # a re-measured point's files replace its old ones
                self._run("DELETE FROM artefacts WHERE point_key=?", (p.key,))
                self._run_many("INSERT INTO artefacts VALUES (?,?,?,?,?)",
                               [(p.key, a.kind, a.sha256, a.bytes, a.suffix) for a in artefacts])

    # ---- kept files ----------------------------------------------------------------------
    def artefact_folder(self) -> Folder:
        """The content-addressed folder beside the store: <store>.artefacts/ beside a SQLite file, or the cache
        folder's artefacts/ for a PostgreSQL store (each machine keeps the files it measured)."""
        if self.postgres:
            return Folder(cache_dir() / "artefacts")
        return Folder(self.path.parent / f"{self.path.stem}.artefacts")

    def artefacts(self, key: str) -> dict[str, Path]:
        """The point's kept files that are still on disk, by kind ('archive', 'onnx', 'pte', 'tflite')."""
        folder, out = self.artefact_folder(), {}
        try:
            rows = self._run("SELECT kind, sha256, bytes, suffix FROM artefacts WHERE point_key=?", (key,)).fetchall()
        except sqlite3.OperationalError:  # a store written before files were kept, opened read-only: none kept
            return {}
        for kind, sha, size, suffix in rows:
            path = folder.path(Artefact(kind, sha, int(size), suffix))
            if path is not None:
                out[kind] = path
        return out

    def link(self, run: str, keys: list[str]) -> None:
        with self._tx():
            self._run_many("INSERT INTO run_points VALUES (?,?,?) ON CONFLICT DO NOTHING",
                           [(run, k, i) for i, k in enumerate(keys)])

    @staticmethod
    def _point(row) -> Point:
        (key, model, mfp, data, dfp, _hash, spec_json, _family, _label, status, metrics, error, seconds, _t) = row
        return Point(key, model, mfp, data, dfp, Spec.from_json(spec_json), status,
                     Metrics.from_json(metrics) if metrics else None, error, seconds)

    # ---- runs --------------------------------------------------------------------------
    def add_run(self, name: str, config: dict, model: str, data: str) -> None:
        """Create the run, or reuse it when it is the same model on the same data: a run never mixes models."""
        with self._tx():
            row = self._run("SELECT config_json FROM runs WHERE name=?", (name,)).fetchone()
            if row is None:
                self._run("INSERT INTO runs VALUES (?,?,?,?,?) ON CONFLICT (name) DO NOTHING",
                          (name, json.dumps(config, sort_keys=True), model, data, time.time()))
                return
        old = json.loads(row[0])
        if (old.get("model"), old.get("data")) != (config.get("model"), config.get("data")):
            raise StoreError(f"A run named {name!r} already holds points of another model or data set "
                             f"({describe.source_name(old.get('model'))} on {describe.source_name(old.get('data'))}); give this one "
                             "another run name.")

    def run_config(self, name: str) -> dict:
        row = self._run("SELECT config_json FROM runs WHERE name=?", (name,)).fetchone()
        if row is None:
            raise StoreError(f"No run named {name!r} in {self.path}; `edgetrim runs` lists them.")
        return json.loads(row[0])

    def runs(self) -> pd.DataFrame:
        df = self._query(
            "SELECT r.name AS run, r.model, r.data, COUNT(p.key) AS points, "
            "SUM(CASE WHEN p.status='ok' THEN 1 ELSE 0 END) AS ok, "
            "SUM(CASE WHEN p.status='failed' THEN 1 ELSE 0 END) AS failed, r.created_at AS created FROM runs r "
            "LEFT JOIN run_points rp ON rp.run = r.name LEFT JOIN points p ON p.key = rp.point_key "
            "GROUP BY r.name, r.model, r.data, r.created_at ORDER BY r.created_at")
        df[["ok", "failed"]] = df[["ok", "failed"]].fillna(0).astype(int)
        df["created"] = pd.to_datetime(df["created"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
        return df

    def runs_of(self, key: str) -> list[str]:
        """The runs a point belongs to."""
        return [r[0] for r in self._run("SELECT run FROM run_points WHERE point_key=? ORDER BY run", (key,)).fetchall()]

    def delete_run(self, name: str) -> None:
        """Forget the run; its points stay (other runs may share them) unless no run links them."""
        self.run_config(name)
        with self._tx():
            self._run("DELETE FROM run_points WHERE run=?", (name,))
            self._run("DELETE FROM runs WHERE name=?", (name,))
            self._run("DELETE FROM points WHERE key NOT IN (SELECT point_key FROM run_points)")
            self._run("DELETE FROM artefacts WHERE point_key NOT IN (SELECT key FROM points)")  # files: LRU evicts

    def points(self, run: str) -> list[Point]:
        self.run_config(run)
        cols = ", ".join(f"p.{c}" for c in COLUMNS.split(", "))
        rows = self._run(f"SELECT {cols} FROM points p JOIN run_points rp ON rp.point_key = p.key "
                         "WHERE rp.run=? ORDER BY rp.position", (run,)).fetchall()
        return [self._point(r) for r in rows]

    def table(self, run: str) -> pd.DataFrame:
        """One row per point of `run`, flat columns, ready for fronts, plots and CSV."""
        return points_frame(self.points(run), run)


FRAME_COLUMNS = ("run", "key", "model", "family", "label", "spec_hash", "status", "error", "accuracy", "torch_accuracy",
                 "val_accuracy", "onnx_bytes", "archive_bytes", "params", "nonzero_params", "macs", "ort_b1_ms",
                 "ort_b32_ms", "torch_b1_ms", "pte_bytes", "pte_accuracy", "pte_val_accuracy", "et_b1_ms",
                 "tflite_bytes", "tflite_accuracy", "tflite_val_accuracy", "lrt_b1_ms", "tflite_ram_bytes",
                 "tflite_ram_source",
                 "cuda_b1_ms", "state_dict_bytes", "runtimes", "threads", "busy", "ort_b1_busy", "torch_b1_busy",
                 "et_b1_busy", "lrt_b1_busy", "cuda_b1_busy", "int8_nodes", "float_compute_nodes", "notes", "seconds", "device", "eval_subset",
                 "val_low", "val_high", "spec_json")
# each runtime's batch-1 latency column -> the runtime (its flag says it was timed on a busy machine)
B1_BUSY = {"ort_b1_busy": "onnxruntime", "torch_b1_busy": "pytorch", "et_b1_busy": "executorch", "lrt_b1_busy": "litert",
           "cuda_b1_busy": "onnxruntime-cuda"}


def _busy(m: Metrics, runtime: str, batch: int = 1) -> bool:
    """Whether `runtime`'s latency at `batch` was timed on a busy machine (False when not timed)."""
    return any(l.busy for l in m.latency if l.runtime == runtime and l.batch == batch)


def _interval(m: Metrics | None) -> dict:
    """The 95 % interval of a subset point's validation accuracy (None for a point scored on the whole split)."""
    if m is None or m.eval_subset is None or m.val_accuracy is None:
        return {"val_low": None, "val_high": None}
    from core.results.subset import wilson

    low, high = wilson(m.val_accuracy, m.eval_subset)
    return {"val_low": low, "val_high": high}


def points_frame(points: list[Point], run: str = "") -> pd.DataFrame:
    rows = []
    for p in points:
        m = p.metrics
        rows.append({
            "run": run, "key": p.key, "model": p.model, "family": p.spec.family, "label": p.spec.label,
            "spec_hash": p.spec.hash, "status": p.status, "error": p.error,
            "accuracy": m.accuracy if m else None,
            "torch_accuracy": m.torch_accuracy if m else None,
            "val_accuracy": m.val_accuracy if m else None,  # None for points stored before it was recorded
            "onnx_bytes": m.onnx_bytes if m else None,
            "archive_bytes": m.archive_bytes if m else None,
            "params": m.params if m else None,
            "nonzero_params": m.nonzero_params if m else None,
            "macs": m.macs if m else None,
            "ort_b1_ms": m.latency_ms("onnxruntime", 1) if m else None,
            "ort_b32_ms": m.latency_ms("onnxruntime", 32) if m else None,
            "torch_b1_ms": m.latency_ms("pytorch", 1) if m else None,
            "pte_bytes": m.file("executorch").bytes if m and m.file("executorch") else None,
            "pte_accuracy": m.file("executorch").accuracy if m and m.file("executorch") else None,
            "pte_val_accuracy": m.file("executorch").val_accuracy if m and m.file("executorch") else None,
            "et_b1_ms": m.latency_ms("executorch", 1) if m else None,
            "tflite_bytes": m.file("litert").bytes if m and m.file("litert") else None,
            "tflite_accuracy": m.file("litert").accuracy if m and m.file("litert") else None,
            "tflite_val_accuracy": m.file("litert").val_accuracy if m and m.file("litert") else None,
            "lrt_b1_ms": m.latency_ms("litert", 1) if m else None,
            "tflite_ram_bytes": m.file("litert").ram_bytes if m and m.file("litert") else None,
            "tflite_ram_source": m.file("litert").ram_source if m and m.file("litert") else None,
            "cuda_b1_ms": m.latency_ms("onnxruntime-cuda", 1) if m else None,
            "state_dict_bytes": m.state_dict_bytes if m else None,
            "runtimes": ", ".join(m.runtimes) if m else "",
            "threads": m.latency[0].threads if m and m.latency else None,
            "busy": any(l.busy for l in m.latency) if m else False,  # some latency timed on a busy machine
            **{col: _busy(m, runtime) if m else False for col, runtime in B1_BUSY.items()},
            "int8_nodes": m.int8_nodes if m else None,
            "float_compute_nodes": m.float_compute_nodes if m else None,
            "notes": " | ".join(describe.notes(m)) if m else "",  # worded on read, never stored
            "seconds": p.seconds,
            "device": m.trained_on if m else None,  # where its training and PyTorch evaluation ran
            "eval_subset": m.eval_subset if m else None,  # scored on this many images of val and test (None: whole)
            **_interval(m),
            "spec_json": p.spec.to_json(),
        })
    return pd.DataFrame(rows, columns=FRAME_COLUMNS)  # the columns even when the run has no point yet
