"""One small interface every runtime implements, and the lookup that finds one by name.

A runtime runs a point's file: it writes the file for a deploy format, loads it, scores it on a split, times one
call, and says why it cannot (not installed here; or not this model, not this format). Measurement and export find
a runtime with `get(name)` and never branch on its name. A new runtime is one module with a `RUNTIME` and one line
in `MODULES`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from core.runtimes.timing import Latency


class CannotRun(RuntimeError):
    """A model or format a runtime cannot take; one sentence on why."""


@dataclass(frozen=True)
class Runtime:
    name: str                  # as points store it: 'onnxruntime'
    package: str               # whose version a file was checked with: 'onnxruntime', 'executorch', 'torch'
    suffix: str                # of the file it runs: '.onnx', '.pte', '.tflite', '.pt2'
    kept_as: str | None        # the kind its measured file is kept as (core.results.artefacts); None: not kept
    measures_file: bool        # measurement runs the written file (True), or the model in memory (PyTorch)
    version: Callable[[], str]
    why_unavailable: Callable[[], str | None]             # not installed here: one sentence
    why_not: Callable[[Any, Any], str | None]             # (LoadedModel, deploy) -> a phrase, or None
    write: Callable[[Any, Any, Path, Any], Path]          # (LoadedModel, deploy, path, calibration split) -> path
    load: Callable[[Any, int | None], Any]                # (path, or the LoadedModel when not measures_file; threads)
    score: Callable[[Any, Any], float]                    # (loaded, split) -> top-1 accuracy
    time: Callable[[Any, tuple, int, int, float], Latency]  # (loaded, input shape, batch, threads, budget_s)
    memory: Callable[[Path], tuple[int, str]] | None = None  # file -> (RAM bytes a device needs, how found)

    def runs(self, model, deploy) -> str | None:
        """None when this model in this format runs here, else why not (installed first, then the model)."""
        return self.why_unavailable() or self.why_not(model, deploy)


def missing_extra(name: str, extra: str, probe: Callable[[], object]) -> str | None:
    """None when `probe()` imports an optional runtime, else the one sentence on what to install."""
    try:
        probe()
    except Exception as e:  # ImportError, or a build that does not match this torch
        return f"{name} is not installed here ({type(e).__name__}); `pip install 'edgetrim[{extra}]'` adds it."
    return None


MODULES = {  # name -> the module whose RUNTIME (or the named attribute) it is; imported only when asked for
    "onnxruntime": "core.runtimes.onnx_io:RUNTIME",
    "executorch": "core.runtimes.executorch_io:RUNTIME",
    "litert": "core.runtimes.litert_io:RUNTIME",
    "pytorch": "core.runtimes.pytorch_io:RUNTIME",
    "onnxruntime-cuda": "core.runtimes.onnx_io:CUDA_RUNTIME",
    "archive": "core.runtimes.archive:RUNTIME",
}
MEASURED = ("onnxruntime", "executorch", "litert", "pytorch", "onnxruntime-cuda")  # the runtimes a point can be timed on


def get(name: str) -> Runtime:
    """The runtime called `name` (ValueError names the known ones)."""
    if name not in MODULES:
        raise ValueError(f"{name!r} is not a runtime edgetrim knows; runtimes are {', '.join(MEASURED)}.")
    module, _, attr = MODULES[name].partition(":")
    return getattr(importlib.import_module(module), attr)
