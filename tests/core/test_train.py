"""The one training loop's budgets: images per epoch and early stopping on the validation split."""
import pytest
import torch

from core.engine import grid
from core.inputs import models as M
from core.inputs.train import train_
from core.methods.prune import UnstructuredPrune


def test_samples_per_epoch_bounds_the_steps_and_patience_stops_early(digits):
    data = digits.adapted((1, 28, 28))
    steps = []
    model = M.build("mlp", 10, (1, 28, 28))
    train_(model, data.train, data.val, epochs=2, batch_size=50, samples_per_epoch=200,
           after_step=lambda m: steps.append(1))
    assert len(steps) == 2 * 4  # 200 images per epoch in batches of 50
    epochs = []
    torch.manual_seed(0)
    flat = M.build("mlp", 10, (1, 28, 28))
    train_(flat, data.train, data.val, epochs=30, lr=1e-9, patience=2, progress=lambda d, t, m: epochs.append(m))
    assert len(epochs) == 3 and "stopped early" in epochs[-1]  # no gain after epoch 1: two more, then stop


def test_a_sweep_budget_reaches_every_training_step():
    cfg = grid.load_config({"model": "mlp", "settings": {"budget": {"samples_per_epoch": 500, "patience": 1}},
                            "axes": {"prune_ratio": [0.0, 0.5], "finetune_epochs": [2], "quantize": ["fp32", "qat3"],
                                     "student_width": [1.0, 0.5]}})
    trained = [c for s in grid.expand(cfg) for c in s.weight_steps()
               if getattr(c, "finetune_epochs", 0) or getattr(c, "qat_epochs", 0) or hasattr(c, "temperature")]
    assert trained and all((c.samples_per_epoch, c.patience) == (500, 1) for c in trained)
    with pytest.raises(grid.SweepError, match="Unknown budget setting 'epochs'"):
        grid.load_config({"model": "mlp", "settings": {"budget": {"epochs": 3}}})
    with pytest.raises(ValueError, match="samples_per_epoch must be a whole number"):
        UnstructuredPrune(0.5, samples_per_epoch=0)


def test_batchnorm_re_estimation_reads_at_most_the_budget_s_images():
    from core.inputs import data as D
    from core.inputs.train import BN_IMAGES, recalibrate_bn_

    split = D.Split(torch.rand(600, 1, 4, 4), torch.zeros(600, dtype=torch.long))
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    seen = []
    model[0].register_forward_hook(lambda _m, inputs, _out: seen.append(len(inputs[0])))
    recalibrate_bn_(model, split, batch=128, images=200)  # a samples_per_epoch budget of 200 images
    assert sum(seen) == 200 and model[1].num_batches_tracked == 2
    seen.clear()
    recalibrate_bn_(model, split, batch=128)  # no budget: the whole split, it is below BN_IMAGES
    assert sum(seen) == 600 and BN_IMAGES >= 600
