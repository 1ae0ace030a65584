"""A private PostgreSQL server for the store tests: initdb in a temporary folder, on a free loopback port.

Used when $EDGETRIM_TEST_PG_URL is not set; the tests that need it are skipped, loudly, when no
PostgreSQL binaries are installed (apt-get install postgresql).
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager

PASSWORD_ROLE = "edgetrim_pw"  # the private server makes this role log in with a password over TCP


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb refuses to run as root: run the server as the 'postgres' user when we are root."""
    if os.geteuid() == 0 and shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextmanager
def postgres_server():
    """Yields a postgresql:// URL, or None when no server can be started here."""
    if os.environ.get("EDGETRIM_TEST_PG_URL"):
        yield os.environ["EDGETRIM_TEST_PG_URL"]
        return
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        yield None
        return
    root = tempfile.mkdtemp(prefix="edgetrim-pg-")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data = os.path.join(root, "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        subprocess.run(_as_postgres([initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        hba = os.path.join(data, "pg_hba.conf")  # one role must log in with its password (the rest: trust)
        with open(hba) as f:
            rules = f.read()
        with open(hba, "w") as f:
            f.write(f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n{rules}")
        subprocess.run(_as_postgres([pg_ctl, "-D", data, "-w", "-l", os.path.join(root, "log"), "-o",
                                     f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]),
                       check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError):
        yield None
        shutil.rmtree(root, ignore_errors=True)
        return
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", data, "-m", "immediate", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
