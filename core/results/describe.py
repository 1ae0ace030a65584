"""Words for numbers: the sentences and units a person reads, written from a point's Metrics.

Core measures numbers; the CLI and the dashboard show them through these functions, so
both say the same thing the same way, and nothing worded is stored in the database.
"""
from __future__ import annotations

import os
from pathlib import Path

from core.runtimes.measure import Metrics


def notes(m: Metrics) -> list[str]:
    """Why a point is or is not faster than it looks: integer kernels, float fallbacks, zeros in dense kernels,
    a machine busy with other work while timing."""
    out = []
    # the load average counts this process too (about 1): beyond it, others compete for the cores asked for
    busy = [l for l in m.latency if l.load is not None and l.load - 1 + l.threads > (os.cpu_count() or 1) + 0.5]
    marked = [l for l in m.latency if l.busy]
    if marked:
        out.append(f"{len(marked)} of {len(m.latency)} latencies were timed while other work crowded the cores, "
                   "even when timed again: they are marked and kept out of latency fronts until re-timed")
    elif busy:
        out.append(f"The machine was busy while timing (load {max(l.load for l in busy):.1f} on {os.cpu_count()} "
                   f"cores, {busy[0].threads} threads asked): latencies may be inflated many times over; compare "
                   "points timed side by side, or time with fewer threads")
    if m.int8_nodes is not None:
        out.append(f"{m.int8_nodes} compute nodes run on integer kernels and {m.float_compute_nodes} Conv/Gemm/MatMul "
                   "nodes stay in float after ONNX Runtime's fusion"
                   + (": the float ones get no int8 speed-up" if m.float_compute_nodes else ""))
        out.append("PyTorch latency not measured: this file format runs in its own runtime (ONNX Runtime, ExecuTorch), not in PyTorch")
    if m.archive_bytes is None:
        out.append("No compact archive: it rebuilds an architecture edgetrim knows, and TorchScript / torch.export "
                   "graphs have none; load the model as an architecture plus state_dict to get one")
    if m.params and m.nonzero_params < 0.95 * m.params:
        out.append(f"{m.sparsity:.0%} of weights are zero, but dense CPU kernels multiply zeros too: sparsity "
                   "shrinks the compressed archive, not latency")
    return out


def duration(seconds: float | None) -> str:
    """A time for people: 'about 40 s', 'about 6 min', 'about 1 h 6 min'."""
    if seconds is None or seconds != seconds:
        return "unknown"
    s = max(1, round(seconds))
    if s < 90:
        return f"about {s} s"
    m = round(s / 60)
    return f"about {m} min" if m < 60 else f"about {m // 60} h {m % 60} min" if m % 60 else f"about {m // 60} h"


def size(n: float | None) -> str:
    """Bytes as B / KB / MB (1024-based), e.g. '76.7 KB'."""
    if n is None or n != n:
        return "n/a"
    for unit, scale in (("MB", 2**20), ("KB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,.0f} B"


def ms(v: float | None) -> str:
    """Milliseconds with precision that suits the value, e.g. '0.041 ms', '12.3 ms'."""
    if v is None or v != v:
        return "n/a"
    return f"{v:.3f} ms" if abs(v) < 1 else f"{v:.2f} ms" if abs(v) < 100 else f"{v:,.0f} ms"


def pct(fraction: float | None, digits: int = 2) -> str:
    return "n/a" if fraction is None or fraction != fraction else f"{100 * fraction:.{digits}f} %"


def count(v: float | None) -> str:
    """A large count as '1.2 M' / '340 k'."""
    if v is None or v != v:
        return "n/a"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:,.2f} {unit}"
    return f"{v:,.0f}"


def source_name(source) -> str:
    """A model or data source as a person named it: a sample name, 'digits', or a file's stem."""
    path = source.get("path", "?") if isinstance(source, dict) else source
    return str(path) if "/" not in str(path) else Path(str(path)).stem


def n(count: int, noun: str) -> str:
    """'1 point', '3 points'."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
