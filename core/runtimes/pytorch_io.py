"""PyTorch eager: the fp32 model run in Python (what measurement times), and torch.export's .pt2 file of it.

PyTorch runs the fp32 model only: an int8 or fp16 file runs in its own runtime.
"""
from __future__ import annotations

from pathlib import Path

import torch

from core.inputs.data import Split
from core.inputs.models import GraphModel, LoadedModel
from core.inputs.train import accuracy
from core.runtimes import timing
from core.runtimes.onnx_io import EXPORT_LOCK
from core.runtimes.runtime import CannotRun, Runtime


def why_not(model, deploy) -> str | None:
    return None if deploy is None else f"the {deploy.label} runs in its runtime only; PyTorch runs the fp32 model"


def write_pt2(model: LoadedModel, deploy, path: str | Path, calibration: Split | None = None) -> Path:
    """torch.export's program of the fp32 model, batch dimension dynamic."""
    if why_not(model, deploy):
        raise CannotRun(f"A .pt2 file holds the fp32 model; {why_not(model, deploy)}.")
    with EXPORT_LOCK:
        program = torch.export.export(model.module.eval(), (model.example_input(2),),
                                      dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
    torch.export.save(program, path)
    return Path(path)


def load(source, threads: int | None = None) -> torch.nn.Module:
    """The module to run: a LoadedModel's own, or a .pt2 file's graph."""
    if isinstance(source, LoadedModel):
        return source.module.eval()
    return GraphModel(torch.export.load(str(source)).module())


def time_module(module: torch.nn.Module, input_shape: tuple[int, ...], batch: int, threads: int,
                budget_s: float = timing.TIME_BUDGET_S) -> timing.Latency:
    x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(0))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            return timing.latency("pytorch", lambda: module(x), batch, threads, budget_s)
    finally:
        torch.set_num_threads(before)


RUNTIME = Runtime(name="pytorch", package="torch", suffix=".pt2", kept_as=None, measures_file=False,
                  version=lambda: torch.__version__, why_unavailable=lambda: None, why_not=why_not, write=write_pt2,
                  load=load, score=accuracy, time=time_module)
