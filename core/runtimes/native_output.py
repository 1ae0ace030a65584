"""Where native code's output goes: runtimes' C++ libraries write logs straight to file descriptors 1 and 2,
past Python's sys.stdout and sys.stderr, so hiding or reading them means pointing the descriptor elsewhere."""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator


@contextlib.contextmanager
def fd_to(fd: int, file: IO) -> Iterator[None]:
    """Inside the block, whatever is written on file descriptor `fd` goes to `file`; a process without that
    descriptor runs the block as it is."""
    try:
        saved = os.dup(fd)
    except OSError:
        yield
        return
    os.dup2(file.fileno(), fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


@contextlib.contextmanager
def hidden(*fds: int) -> Iterator[None]:
    """Native output on `fds` (1: stdout, 2: stderr) discarded inside the block."""
    with open(os.devnull, "w") as null, contextlib.ExitStack() as stack:
        for fd in fds:
            stack.enter_context(fd_to(fd, null))
        yield


class Captured:
    text = ""


@contextlib.contextmanager
def captured(fd: int = 2) -> Iterator[Captured]:
    """Native output on `fd` inside the block, as `.text` once it ends."""
    out = Captured()
    with tempfile.TemporaryFile() as f:
        try:
            with fd_to(fd, f):
                yield out
        finally:
            f.seek(0)
            out.text = f.read().decode(errors="replace")
