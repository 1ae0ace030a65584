"""The `edgetrim` parser (each command adds its own, beside its code) and the entry point: one sentence per error."""
from __future__ import annotations

import argparse
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
        args.func(args)
    except (ValueError, OSError, RuntimeError) as e:  # DataError, ModelLoadError, SweepError, ExportError, ...
        print(f"edgetrim: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:
        return int(e.code or 0)
    except KeyboardInterrupt:
        print("edgetrim: interrupted", file=sys.stderr)
        return 130
    return 0
