"""Pruning by gradient: first-order Taylor importance for single weights, Torch-Pruning's Taylor and Hessian for
channels, chosen per point in sweeps."""
import pytest
import torch

from core.engine import grid
from core.inputs.train import accuracy
from core.methods import spec as S
from core.methods.prune import (
    StructuredPrune,
    UnstructuredPrune,
    magnitude_prune_,
    prunable_weights,
    sparsity,
    taylor_scores,
)
from core.methods.registry import SpecError, compress


def test_taylor_scores_are_weight_times_gradient_summed_over_batches(mlp, digits):
    train = digits.adapted(mlp.input_shape).train
    module = mlp.copy_module()
    scores = taylor_scores(module, train, batches=2)
    assert all(w.grad is None for _, w in prunable_weights(module)), "no gradients are left behind"
    expected = {n: torch.zeros_like(w) for n, w in prunable_weights(module)}
    for i in range(2):
        module.zero_grad()
        x, y = train.batch(slice(64 * i, 64 * (i + 1))), train.y[64 * i:64 * (i + 1)]
        torch.nn.functional.cross_entropy(module.eval()(x), y).backward()
        for n, w in prunable_weights(module):
            expected[n] += (w * w.grad).abs().detach()
    for n in expected:
        assert torch.allclose(scores[n], expected[n], atol=1e-7)


def test_taylor_pruning_removes_exactly_the_ratio_and_other_weights_than_magnitude(lenet5, digits):
    taylor = compress(lenet5, UnstructuredPrune(0.8, importance="taylor"), digits)
    magnitude = compress(lenet5, UnstructuredPrune(0.8), digits)
    assert abs(sparsity(taylor.module) - 0.8) < 1e-3 and abs(sparsity(magnitude.module) - 0.8) < 1e-3
    differ = sum(int(((a == 0) != (b == 0)).sum()) for (_, a), (_, b) in
                 zip(prunable_weights(taylor.module), prunable_weights(magnitude.module)))
    assert differ > 0
    assert "Taylor" in UnstructuredPrune(0.8, importance="taylor").label
    test = digits.adapted(lenet5.input_shape).test
    assert accuracy(taylor.module, test) > 0.5  # at 80 % without fine-tuning it still classifies
    with pytest.raises(SpecError, match="magnitude importance"):
        UnstructuredPrune(0.5, scope="std", importance="taylor")


def test_scores_given_to_the_pruner_decide_what_goes(mlp):
    module = mlp.copy_module()
    scores = {n: torch.arange(w.numel(), dtype=torch.float32).view_as(w) for n, w in prunable_weights(module)}
    magnitude_prune_(module, 0.5, "layer", scores=scores)
    for n, w in prunable_weights(module):
        flat = w.detach().reshape(-1)
        assert (flat[: w.numel() // 2] == 0).all()  # the lowest-scored half, whatever the magnitudes


@pytest.mark.parametrize("importance", ["taylor", "hessian"])
def test_structured_pruning_by_gradient_shrinks_the_model_and_it_still_works(lenet5, digits, importance):
    out = compress(lenet5, StructuredPrune(0.5, importance=importance, finetune_epochs=1), digits)
    before = sum(p.numel() for p in lenet5.module.parameters())
    after = sum(p.numel() for p in out.module.parameters())
    assert after < 0.6 * before
    assert accuracy(out.module, digits.adapted(lenet5.input_shape).test) > 0.8
    assert all(p.grad is None for p in out.module.parameters())


def test_the_sweep_axis_crosses_importance_with_both_kinds():
    cfg = grid.load_config({"model": "lenet5", "axes": {"prune": ["unstructured", "structured"],
                                                         "prune_ratio": [0.5], "prune_importance": ["magnitude",
                                                                                                    "taylor"]}})
    prunes = [s.prune for s in grid.expand(cfg) if s.prune is not None]
    assert {(type(p).__name__, p.importance.value) for p in prunes} == {
        ("UnstructuredPrune", "magnitude"), ("UnstructuredPrune", "taylor"),
        ("StructuredPrune", "l2"), ("StructuredPrune", "taylor")}
    with pytest.raises(grid.SweepError, match="hessian is for structured"):
        grid.load_config({"model": "lenet5", "axes": {"prune_importance": ["hessian"]}})
    with pytest.raises(grid.SweepError, match="prune_importance values"):
        grid.load_config({"model": "lenet5", "axes": {"prune": ["structured"], "prune_importance": ["snip"]}})
    # magnitude is the default: Specs stored before this axis keep their JSON, their hash, their stored points
    assert "importance" not in S.Spec(prune=UnstructuredPrune(0.5)).to_json()
