"""What to prune first: magnitude, first-order Taylor importance and lottery tickets, at equal sparsity, on MNIST.

    python benchmarks/importance.py                 # LeNet-300-100 and LeNet-5 (about 20 min on 2 cores)

For each sample and each sparsity in SPARSITIES, the same global unstructured pruning (edgetrim's
`UnstructuredPrune`) ranks weights by |w| or by |w * dL/dw| summed over 16 training batches of 64, then
(a) scores the pruned model at once, (b) after FT_EPOCHS epoch of FT_IMAGES training images (zeros kept at
zero, early stopping on validation), and (c) pruned gradually in GRADUAL_STEPS steps of a cubic schedule with one
such epoch after each step (importance recomputed at each step).
Lottery tickets (core.methods.lottery): one run of iterative magnitude pruning per model whose rounds end at the table's
sparsities in turn (removing 50, 50, 60, 50, 60 % of what remains); each round trains with the sample's own recipe
(its epochs over all training images, Adam, its learning rate, cosine decay; early stopping after TICKET_PATIENCE
epochs without a better validation score), the survivors either rewound
to their values REWIND_TO of the way into the sample's replayed training (Frankle et al. 2020) or kept as trained
with the learning rate restarted (learning-rate rewinding, Renda et al. 2020).
Accuracy on MNIST's 10,000 official test images, in PyTorch (the ONNX files score the same: the test suite
checks it). Writes benchmarks/results/importance.csv.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.cli import format_table  # noqa: E402
from core.inputs import models as M  # noqa: E402
from core.inputs.data import load_data  # noqa: E402
from core.inputs.train import accuracy  # noqa: E402
from core.methods.lottery import LotteryTicket, tickets  # noqa: E402
from core.methods.prune import UnstructuredPrune, sparsity  # noqa: E402
from core.methods.registry import compress  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import write_csv  # noqa: E402

# ---- defaults -------------------------------------------------------------------------
MODELS = ("lenet300_mnist", "lenet5_mnist")
SPARSITIES = (0.5, 0.75, 0.9, 0.95, 0.98)
FT_EPOCHS, FT_IMAGES = 1, 10_000      # the fine-tuning budget after pruning
GRADUAL_STEPS = 5                     # (c): 5 steps, one epoch of FT_IMAGES after each
TICKET_EPOCHS, TICKET_PATIENCE = 0, 3  # each lottery round: the sample's recipe (0: its epochs), early stopping
REWIND_TO = 0.02                      # weight rewinding: 2 % into the sample's training


def main() -> None:
    t0 = time.perf_counter()
    data = load_data("mnist")
    rows = []
    for name in MODELS:
        model = M.load_sample(name)
        test = data.adapted(model.input_shape).test
        base = accuracy(model.module, test)
        for ratio in SPARSITIES:
            row = {"model": name, "sparsity %": round(100 * ratio), "baseline %": round(100 * base, 2)}
            for importance in ("magnitude", "taylor"):
                for tag, epochs, steps in (("", 0, 1), (" ft", FT_EPOCHS, 1), (" gradual", GRADUAL_STEPS, GRADUAL_STEPS)):
                    cfg = UnstructuredPrune(ratio, importance=importance, finetune_epochs=epochs, steps=steps,
                                            samples_per_epoch=FT_IMAGES if epochs else None,
                                            patience=2 if epochs else None)
                    out = compress(model, cfg, data)
                    assert abs(sparsity(out.module) - ratio) < 1e-3
                    row[f"{importance}{tag} %"] = round(100 * accuracy(out.module, test), 2)
            rows.append(row)
            print(format_table(rows[-1:]), flush=True)
        mine = rows[-len(SPARSITIES):]
        for tag, rewind in (("ticket rewind %", "weights"), ("ticket lr-rewind %", "lr")):
            t1 = time.perf_counter()
            cfg = LotteryTicket(rewind=rewind, rewind_to=REWIND_TO, epochs=TICKET_EPOCHS, patience=TICKET_PATIENCE)
            for row, (ratio, ticket) in zip(mine, tickets(model, data, list(SPARSITIES), cfg)):
                assert abs(sparsity(ticket.module) - ratio) < 1e-3
                row[tag] = round(100 * accuracy(ticket.module, test), 2)
            print(f"{name} {tag}: {[r[tag] for r in mine]} ({time.perf_counter() - t1:.0f} s)", flush=True)
    print()
    print(format_table(rows))
    write_csv(rows, "importance")
    print(f"fine-tuning: {FT_EPOCHS} epoch of {FT_IMAGES:,} training images (zeros kept); gradual: "
          f"{GRADUAL_STEPS} steps, one such epoch after each; tickets: each round the sample's recipe (20 epochs "
          f"LeNet-300-100, 15 LeNet-5, of all 50,000 images; stopped after {TICKET_PATIENCE} without a better "
          f"validation score), rewound to {100 * REWIND_TO:g} % of training or learning-rate rewinding; "
          f"wrote benchmarks/results/importance.csv; {time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
