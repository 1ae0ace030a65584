"""Microcontrollers: the flash a .tflite file takes, the RAM it needs, and the boards they are judged against.

A microcontroller runs a .tflite file in TensorFlow Lite Micro (TFLM): the file is linked into flash as a
constant array, and every tensor the graph computes lives in one static block of RAM, the tensor arena, whose
size is fixed when the firmware is built. So a point's two numbers are:

- flash: the bytes of the .tflite file (the interpreter's own code, tens of KB, comes on top and is not counted);
- RAM: the arena the file needs. Where the `tflite-micro` package runs (`pip install 'edgetrim[micro]'`), TFLM's
  own interpreter allocates the file, runs one image, and its recording allocator says how many bytes of the
  arena it used (tensors, scratch buffers and TFLM's bookkeeping): source 'tflite-micro'. Elsewhere, a greedy
  static planner over the graph (what TFLM's GreedyMemoryPlanner does: each activation tensor lives from the
  operator that writes it to the last one that reads it; the largest are placed first at the lowest free offset)
  gives the activations' peak: source 'planner', a lower bound (no scratch buffers, no bookkeeping).

Boards are real ones with their datasheet figures; a budget is a board or a flash and RAM limit of one's own.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.runtimes import native_output

CANNOT_RUN = "planner: TFLite Micro cannot run this file"  # the start of the source of a file TFLM refuses
ALIGN = 16              # TFLM aligns each buffer in the arena to 16 bytes
TFLM_ARENA_MAX = 64 << 20   # the largest arena tried (a board has at most a few MB)


@dataclass(frozen=True)
class Board:
    name: str
    chip: str
    flash_kb: int
    ram_kb: int

    def fits(self, flash_bytes: int | None, ram_bytes: int | None, source: str | None = None) -> bool:
        """Within its flash and RAM, and a file TFLite Micro runs (`source`: how its RAM was found)."""
        return flash_bytes is not None and ram_bytes is not None and runs_in_tflm(source) and \
            flash_bytes <= self.flash_kb * 1024 and ram_bytes <= self.ram_kb * 1024


def runs_in_tflm(source: str | None) -> bool:
    """False for a file TFLite Micro refused when its RAM was measured (its source says so)."""
    return not (isinstance(source, str) and source.startswith(CANNOT_RUN))


BOARDS = {b.name: b for b in (  # on-chip flash and SRAM, from each board's datasheet
    Board("nano33ble", "Arduino Nano 33 BLE Sense: nRF52840, Cortex-M4F 64 MHz", 1024, 256),
    Board("pico", "Raspberry Pi Pico: RP2040, 2x Cortex-M0+ 133 MHz (2 MB QSPI flash)", 2048, 264),
    Board("disco-f746", "STM32F746G-DISCO: STM32F746NG, Cortex-M7 216 MHz", 1024, 320),
    Board("nucleo-f767", "NUCLEO-F767ZI: STM32F767ZI, Cortex-M7 216 MHz", 2048, 512),
    Board("portenta-h7", "Arduino Portenta H7: STM32H747, Cortex-M7 480 MHz + M4", 2048, 1024),
)}


def boards_fitting(flash_bytes: int | None, ram_bytes: int | None, source: str | None = None) -> list[str]:
    """The names of the boards a file fits on (see Board.fits)."""
    return [n for n, b in BOARDS.items() if b.fits(flash_bytes, ram_bytes, source)]


def board(name: str) -> Board:
    """The board called `name` (ValueError names the known ones)."""
    if name not in BOARDS:
        raise ValueError(f"{name!r} is not a board edgetrim knows; boards are {', '.join(BOARDS)} "
                         "(or give --max-flash-kb and --max-ram-kb).")
    return BOARDS[name]


@functools.cache
def why_no_tflm() -> str | None:
    """None when TFLM's Python interpreter runs here, else why not (the planner is used then)."""
    try:
        with native_output.hidden(1, 2):
            from tflite_micro.python.tflite_micro import runtime  # noqa: F401
    except Exception as e:
        return f"tflite-micro is not installed here ({type(e).__name__})"
    return None


def memory_source() -> str:
    """Where RAM figures come from here: 'tflite-micro', or 'planner' when TFLM does not run here."""
    return "planner" if why_no_tflm() else "tflite-micro"


def memory(path: str | Path) -> tuple[int, int, str]:
    """(flash bytes, RAM bytes, how the RAM was found) for the .tflite at `path`: 'tflite-micro'; 'planner' where
    TFLM is not installed; 'planner: TFLite Micro cannot run this file (its reason)' where TFLM refuses it (e.g.
    LiteRT's 4-bit fully connected layers: such a file does not run on a microcontroller as it is)."""
    flash = os.path.getsize(path)
    if why_no_tflm() is not None:
        return flash, planned_arena(path), "planner"
    ram, why = tflm_arena(path)
    if ram is not None:
        return flash, ram, "tflite-micro"
    return flash, planned_arena(path), f"{CANNOT_RUN} ({why})"


def tflm_arena(path: str | Path) -> tuple[int | None, str]:
    """(the arena bytes TFLM's interpreter used to allocate `path` and run one image, ''), or (None, why TFLM
    cannot run it, in its own first words)."""
    from tflite_micro.python.tflite_micro import runtime

    data = Path(path).read_bytes()
    with native_output.captured(2) as log:
        try:  # TFLM prints the number of resource variables on stdout: nothing a user needs
            with contextlib.redirect_stdout(None), native_output.hidden(1):
                it = runtime.Interpreter.from_bytes(data, arena_size=min(TFLM_ARENA_MAX, max(1 << 20, 16 * len(data))))
                detail = it.get_input_details(0)
                it.set_input(np.zeros(detail["shape"], dtype=detail["dtype"]), 0)
                it.invoke()
            failed = None
        except Exception as e:
            failed = e
    if failed is not None:
        said = [line.strip() for line in log.text.splitlines() if line.strip()]
        return None, (said[0] if said else f"{type(failed).__name__}: {failed}").rstrip(".")
    with native_output.captured(2) as out:
        it.print_allocations()
    found = re.search(r"Arena allocation total (\d+) bytes", out.text)
    return (int(found.group(1)), "") if found else (None, "its allocator reported no total")


def planned_arena(path: str | Path) -> int:
    """The activations' peak under a greedy static plan of the graph at `path` (see the module's docstring)."""
    with native_output.hidden(1, 2):  # LiteRT's C++ logs say nothing to a user
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        it = Interpreter(model_path=str(path),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ops = it._get_ops_details()
    sizes = {t["index"]: _aligned(int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize)
             for t in it.get_tensor_details()}
    written = {t: i for i, op in enumerate(ops) for t in op["outputs"]}
    life: dict[int, list[int]] = {t["index"]: [0, 0] for t in it.get_input_details()}
    for t, i in written.items():
        life[t] = [i, i]
    for i, op in enumerate(ops):
        for t in op["inputs"]:
            if t in life:      # a constant (weights) is in flash, not in the arena
                life[t][1] = max(life[t][1], i)
    for t in it.get_output_details():
        life[t["index"]][1] = len(ops)
    return greedy_plan([(sizes.get(t, 0), a, b) for t, (a, b) in life.items()])


def greedy_plan(buffers: list[tuple[int, int, int]]) -> int:
    """The arena for `buffers` (size, first step, last step) placed largest first at the lowest offset that
    overlaps no placed buffer alive at the same time; returns the highest end."""
    placed: list[tuple[int, int, int, int]] = []    # (offset, size, first, last)
    peak = 0
    for size, first, last in sorted(buffers, key=lambda b: -b[0]):
        offset = 0
        for o, s, f, l in sorted(p for p in placed if p[2] <= last and first <= p[3]):
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        placed.append((offset, size, first, last))
        peak = max(peak, offset + size)
    return peak


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN
