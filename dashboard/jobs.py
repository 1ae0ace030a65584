"""Sweeps launched from the dashboard run as `edgetrim sweep` processes, so they outlive a page reload.

The page only starts the process and reads the results store; the process writes a
pid file and a log beside its sweep file in the cache folder. That sweep file is the
job's own record: after a page reload the Sweep page rebuilds its form, its total and
its progress from it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from core import cache_dir
from core.results.store import default_path


def folder() -> Path:
    path = cache_dir() / "sweeps"
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_name(run: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", run).strip("-.")
    if not name:
        raise ValueError("Give the run a name made of letters, digits, '-', '_' or '.'.")
    return name[:80]


def start(config: dict, executor: str = "local", address: str | None = None) -> int:
    """Start `edgetrim sweep` on `config` in the background (locally or on Ray); returns its pid."""
    run = safe_name(config["run"])
    if is_running(run):
        raise ValueError(f"A sweep named {run!r} is already running.")
    cfg_path = folder() / f"{run}.yaml"
    cfg_path.write_text(yaml.safe_dump({**config, "run": run}, sort_keys=False))
    log = open(folder() / f"{run}.log", "wb")
    cmd = [sys.executable, "-m", "core.cli", "sweep", str(cfg_path), "--store", str(default_path()),
           "--executor", executor] + (["--address", address] if address else [])
    proc = subprocess.Popen(cmd,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                            cwd=Path(__file__).resolve().parent.parent)
    (folder() / f"{run}.pid").write_text(str(proc.pid))
    return proc.pid


def is_running(run: str) -> bool:
    pid_file = folder() / f"{safe_name(run)}.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
        os.waitpid(pid, os.WNOHANG)  # reap it if it was our child and has exited
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except (ValueError, OSError, ChildProcessError):
        return False


def stop(run: str) -> None:
    pid_file = folder() / f"{safe_name(run)}.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), 2)  # SIGINT: the sweep stops after the point in flight
        except (ValueError, OSError):
            pass


def config(run: str) -> dict | None:
    """The sweep file a job was started with, or None when there is no such job."""
    path = folder() / f"{safe_name(run)}.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return raw if isinstance(raw, dict) else None


def latest() -> str | None:
    """The most recently started job that still has its sweep file (a running one first)."""
    pids = sorted(folder().glob("*.pid"), key=lambda p: p.stat().st_mtime, reverse=True)
    names = [p.stem for p in pids if p.with_suffix(".yaml").exists()]
    return next((n for n in names if is_running(n)), names[0] if names else None)


def log_tail(run: str, lines: int = 5) -> str:
    path = folder() / f"{safe_name(run)}.log"
    if not path.exists():
        return ""
    text = path.read_text(errors="replace").replace("\r", "\n")
    return "\n".join([l for l in text.splitlines() if l.strip()][-lines:])
