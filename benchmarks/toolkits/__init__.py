"""The peer toolkits, each driven by its own documented recipe: one module per tool (`with_<tool>.py`), each
with `compress(job) -> list[Output]`.

The harness calls `compress` once with no floor (`job.max_drop is None`: what the tool makes whatever the floor),
then, if the module sets `PER_FLOOR = True`, once per floor (what it tunes to a tolerated loss, or to a size).

A module holds only what a user of that tool would write (load nothing, score nothing: the harness in
benchmarks/peers_toolkits.py hands it a `Job` and re-scores every file it writes in the runtime it names), so
its code lines are the "lines of user code" the table reports (`user_lines`).
"""
from __future__ import annotations

import ast
import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

CALIB_IMAGES = 512  # training images handed to post-training calibration (NNCF's default subset is 300)


@dataclass
class Job:
    """One model at one floor, as every tool gets it."""
    name: str                          # the sample's name
    model: nn.Module                   # a fresh fp32 copy in eval mode: the tool may change it in place
    input_shape: tuple[int, int, int]  # (C, H, W)
    calibration: list[torch.Tensor]    # float32 batches of training images (CALIB_IMAGES in all)
    val_x: torch.Tensor                # the validation split (float32) and its labels: for tools that
    val_y: torch.Tensor                # tune to a tolerated loss, as their docs show
    max_drop: float | None             # tolerated accuracy loss as a fraction (0.001 is 0.1 point); None: no floor
    target_bytes: int | None           # edgetrim's smallest file at this floor (MCT's memory target); None: no floor
    folder: Path                       # where the tool writes its files

    def example(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, *self.input_shape)

    def fresh_model(self) -> nn.Module:
        return copy.deepcopy(self.model).eval()


@dataclass
class Output:
    label: str       # what the tool made, e.g. "PTQ int8 + accuracy control"
    path: Path       # the deployable file
    runtime: str     # "onnxruntime" (an .onnx file) or "pytorch" (a torch.export .pt2 program)


def val_accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    """Top-1 accuracy of a torch module: the validation function a tool's tuning loop is given."""
    right = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            right += int((module(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return right / len(y)


def save_program(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """A torch module as a torch.export .pt2 program (any batch size): what a PyTorch-runtime tool ships."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    example = example[:1].repeat(2, 1, 1, 1)  # an example of batch 1 would pin the batch to 1
    torch.export.save(torch.export.export(module, (example,), dynamic_shapes=({0: batch},)), str(path))
    return path


def user_lines(module_file: str | Path) -> int:
    """Code lines of a tool's module: no blank lines, comments or docstrings."""
    source = Path(module_file).read_text()
    doc_lines = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            doc_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(1 for i, line in enumerate(source.splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and i not in doc_lines)
