"""The peers table (benchmarks/peers_toolkits.py's results) as docs/results/peers-toolkits.md."""
from __future__ import annotations

from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "results" / "peers-toolkits.md"
NAMES = {"edgetrim": "edgetrim", "torchao": "torchao", "nncf": "NNCF", "inc": "Neural Compressor", "mct": "MCT",
         "aimet": "AIMET"}
RUNTIMES = {"onnxruntime": "ORT", "pytorch": "PyTorch"}


def _kb(b: int) -> str:
    return f"{b / 1000:,.1f} KB"


def _file(f: dict | None, what: str) -> str:
    if f is None:
        return "none at the floor"
    head = _kb(f["bytes"]) if what == "smallest" else f"{f['ms']:.3f} ms"
    return f"**{head}** {RUNTIMES[f['runtime']]}, {100 * f['val']:.2f} / {100 * f['test']:.2f} %, {f['label']}"


def losses(run: dict) -> list[str]:
    """The cells where a peer's file beats edgetrim's at the same floor: smaller, or faster (by more than 5 %)."""
    out = []
    for key, cell in run["cells"].items():
        tool, drop = key.split("@")
        if tool == "edgetrim":
            continue
        ours = run["cells"][f"edgetrim@{drop}"]
        for what, field, slack in (("smallest", "bytes", 1.0), ("fastest", "ms", 0.95)):
            theirs, mine = cell[what], ours[what]
            if theirs and (mine is None or theirs[field] < slack * mine[field]):
                out.append(f"{NAMES[tool]} {'smaller' if field == 'bytes' else 'faster'} at {drop} point")
    return out


def section(sample: str, run: dict) -> str:
    base = run["baseline"]
    scored = (f"seeded {run['eval_images']:,} validation and {run['eval_images']:,} test images"
              if run.get("eval_images") else "the whole validation and test splits")
    rows = []
    tools = [t for t in NAMES if any(k.startswith(f"{t}@") for k in run["cells"])]
    for key, cell in run["cells"].items():
        tool, drop = key.split("@")
        time_s = run["took_s"].get(tool)
        rows.append(f"| {drop} | {NAMES[tool]} | {_file(cell['smallest'], 'smallest')} | "
                    f"{_file(cell['fastest'], 'fastest')} | {time_s:,.0f} s | {run['user_lines'][tool]} |")
    failed = "".join(f"\n- {k}: {v}" for k, v in run["errors"].items()) or " none"
    lost = ", ".join(losses(run)) or "none"
    return f"""## {sample}

{run['date']}, `python benchmarks/peers_toolkits.py {run['command']}`, {run['wall_s']:,} s for this model, load
average {run['load'][0]}-{run['load'][1]} on the two cores. Baseline (fp32 ONNX): {100 * base['val']:.2f} % validation,
{100 * base['test']:.2f} % test, {_kb(base['bytes'])}, {base['ms']:.3f} ms. Every file scored on {scored}, in
the runtime named; a floor is judged on validation (val / test % below); latencies are batch-1 medians of five
alternating rounds. Tools: {', '.join(NAMES[t] for t in tools)}. Failed:{failed}

| floor (points below) | tool | smallest file at the floor | fastest file at the floor | tool's time | user code lines |
| --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

Cells a peer wins: {lost}.
"""


def _brief(cell: dict) -> str:
    small, fast = cell["smallest"], cell["fastest"]
    if small is None:
        return "none at the floor"
    return f"{_kb(small['bytes'])} · {fast['ms']:.3f} ms"


def summary(runs: dict) -> str:
    """One line per model and floor: each tool's smallest file and fastest batch-1 latency at the floor."""
    tools = [t for t in NAMES if any(f"{t}@" in k for r in runs.values() for k in r["cells"])]
    head = "| model | floor | " + " | ".join(NAMES[t] for t in tools) + " |\n|" + " --- |" * (len(tools) + 2)
    rows = []
    for sample, run in runs.items():
        for drop in sorted({k.split("@")[1] for k in run["cells"]}, key=float):
            cells = []
            for t in tools:
                cell = run["cells"].get(f"{t}@{drop}")
                text = "not run" if run["errors"].get(t, "").startswith("not run") else _brief(cell) if cell else "-"
                cells.append(f"**{text}**" if t == "edgetrim" else text)
            rows.append(f"| {sample} | {drop} | " + " | ".join(cells) + " |")
    return head + "\n" + "\n".join(rows)


def write(runs: dict) -> None:
    PAGE.write_text("# edgetrim beside NNCF, Neural Compressor, MCT, torchao and AIMET\n\n"
                    "What the table means and why each cell is what it is: [the README's section](../../README.md#"
                    "beside-the-toolkits-people-use-today) and [If you use X today](../peers.md).\n\n"
                    "Each tool's smallest file and fastest batch-1 latency at each floor (below the fp32 baseline, "
                    "judged on validation):\n\n" + summary(runs) + "\n\n"
                    + "\n".join(section(s, r) for s, r in runs.items()))
    print(summary(runs))
