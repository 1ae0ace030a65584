"""The `edgetrim` parser (each command adds its own, beside its code) and the entry point: one sentence per error."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from core.cli import export, models, runs, sweep


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edgetrim", description="Fit a trained classifier to its device budget.")
    sub = ap.add_subparsers(dest="command", required=True)
    models.add(sub)     # models, measure
    sweep.add(sub)      # sweep
    runs.add(sub)       # runs, front, per-layer, pick, table, delete, retime
    export.add(sub)     # export
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = _run(args)
        sys.stdout.flush()  # a reader that left (`| head -1`) is found here, not when Python exits
    except BrokenPipeError:
        return _reader_gone()
    return code


def _run(args) -> int:
    from core.inputs import device

    try:
        with device.using(getattr(args, "device", None)):  # every command's training and evaluation run there
            args.func(args)
    except BrokenPipeError:
        raise
    except (ValueError, OSError, RuntimeError) as e:  # DataError, ModelLoadError, SweepError, ExportError, ...
        print(f"edgetrim: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:
        return int(e.code or 0)
    except KeyboardInterrupt:
        print("edgetrim: interrupted", file=sys.stderr)
        return 130
    return 0


def _reader_gone() -> int:
    """The reader of stdout went away (`edgetrim pick RUN | head -1`): not an error. What is left to print goes to
    devnull, so Python's own flush at exit does not fail again; 141 is the status of a process ended by SIGPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout without a file descriptor (captured): nothing is flushed at exit
        pass
    return 141
