"""Lottery tickets: iterative magnitude pruning with rewinding to an early iterate of the sample's own training
(replayed from its card), or learning-rate rewinding for a model edgetrim did not train."""
import dataclasses

import pytest
import torch

from core.engine import grid
from core.inputs.train import accuracy
from core.methods import spec as S
from core.methods.lottery import LotteryTicket, replay, round_targets, tickets
from core.methods.prune import prunable_weights, sparsity
from core.methods.registry import SpecError, compress, why_not


def test_each_round_removes_the_same_share_of_what_remains():
    targets = round_targets(0.9, 3)
    assert targets[-1] == pytest.approx(0.9)
    kept = [1.0] + [1 - t for t in targets]
    assert all(b / a == pytest.approx(0.1 ** (1 / 3)) for a, b in zip(kept, kept[1:]))


def test_replaying_a_samples_recipe_gives_its_bundled_weights_again(mlp, digits):
    """The rewind point is an early iterate of the very run that trained the sample, not of some other run."""
    again = replay(mlp, digits).state_dict()
    start = replay(mlp, digits, 0.0).state_dict()
    bundled = mlp.module.state_dict()
    def distance(a, b):
        return sum(float(((a[k] - b[k]) ** 2).sum()) for k in bundled) ** 0.5
    same, moved = distance(again, bundled), distance(start, bundled)
    # float summation order only, against what training moved: rounding differences between CPUs grow over the
    # run (on an AVX2 CPU without AVX-512: 0.87 against 13.8, the largest single weight 0.12 off), while a run
    # from another initialisation ends 21.9 away
    assert same < 0.1 * moved, (same, moved)
    torch.manual_seed(0)
    from core.inputs import models as M

    init = M.build(mlp.arch, mlp.num_classes, mlp.input_shape).state_dict()
    assert all(torch.equal(start[k], init[k]) for k in init), "rewind_to 0 is the initialisation"


def test_a_ticket_rewound_to_an_early_iterate_is_exactly_sparse_and_still_classifies(mlp, digits):
    cfg = LotteryTicket(0.9, rounds=3, rewind_to=0.05, epochs=8)
    out = [(t, m) for t, m in tickets(mlp, digits, round_targets(0.9, 3), cfg)]
    assert [round(sparsity(m.module), 3) for _, m in out] == [round(t, 3) for t in round_targets(0.9, 3)]
    test = digits.adapted(mlp.input_shape).test
    assert accuracy(out[-1][1].module, test) > 0.85
    # each round's survivors are a subset of the round before's: pruned weights never come back
    for (_, a), (_, b) in zip(out, out[1:]):
        for (_, wa), (_, wb) in zip(prunable_weights(a.module), prunable_weights(b.module)):
            assert not ((wa == 0) & (wb != 0)).any()
    # the registered method is the last round, the same weights again (seeded), and leaves the sample as it was
    before = {k: v.clone() for k, v in mlp.module.state_dict().items()}
    last = compress(mlp, cfg, digits)
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(prunable_weights(last.module),
                                                           prunable_weights(out[-1][1].module)))
    assert all(torch.equal(v, mlp.module.state_dict()[k]) for k, v in before.items())
    assert "lottery ticket: 90 % of weights removed in 3 rounds (rewound to 5 % of training" in cfg.label


def test_learning_rate_rewinding_works_for_a_model_without_a_recipe(mlp, digits):
    user = dataclasses.replace(mlp, card={}, name="my_mlp")
    assert "use rewind: lr" in why_not(user, LotteryTicket(0.8))
    assert "give the ticket its epochs per round" in why_not(user, LotteryTicket(0.8, rewind="lr"))
    out = compress(user, LotteryTicket(0.8, rounds=2, rewind="lr", epochs=3), digits)
    assert abs(sparsity(out.module) - 0.8) < 1e-3
    assert accuracy(out.module, digits.adapted(mlp.input_shape).test) > 0.9
    assert "learning-rate rewinding" in LotteryTicket(0.8, rewind="lr").label


def test_rewinding_on_other_data_than_the_sample_was_trained_on_is_one_sentence(mlp, digits):
    other = dataclasses.replace(digits, name="other", fingerprint="0" * 16)
    with pytest.raises(SpecError, match="replays mlp's training on digits; this run's data is other"):
        compress(mlp, LotteryTicket(0.5, rounds=1, epochs=1), other)


@pytest.mark.parametrize("bad, match", [({"ratio": 1.0}, "ratio"), ({"rounds": 0}, "rounds"),
                                        ({"rewind_to": 1.0}, "rewind_to"), ({"rewind": "init"}, "rewind"),
                                        ({"epochs": -1}, "epochs")])
def test_bad_ticket_settings_are_one_sentence(bad, match):
    with pytest.raises((SpecError, ValueError), match=match):
        LotteryTicket(**bad)


def test_sweeps_offer_tickets_beside_the_other_pruning_kinds():
    cfg = grid.load_config({"model": "mlp", "axes": {"prune": ["unstructured", "lottery"],
                                                      "prune_importance": ["magnitude", "taylor"],
                                                      "prune_ratio": [0.0, 0.9], "finetune_epochs": [4]},
                            "settings": {"lottery": {"rounds": 3, "rewind_to": 0.05}, "budget": {"patience": 2}}})
    tickets_ = [s.prune for s in grid.expand(cfg) if isinstance(s.prune, LotteryTicket)]
    assert tickets_ == [LotteryTicket(0.9, rounds=3, rewind_to=0.05, epochs=4, patience=2)]  # taylor: not a ticket
    assert S.Spec.from_json(S.Spec(prune=tickets_[0]).to_json()).prune == tickets_[0]
    assert S.Spec(prune=tickets_[0]).family == "pruning"
    with pytest.raises(grid.SweepError, match="prune values are unstructured, structured, lottery"):
        grid.load_config({"model": "mlp", "axes": {"prune": ["lotto"]}})
    with pytest.raises(grid.SweepError, match="LotteryTicket has no field 'scope'"):
        grid.load_config({"model": "mlp", "axes": {"prune": ["lottery"], "prune_ratio": [0.5]},
                          "settings": {"lottery": {"scope": "global"}}})


def test_a_tickets_epochs_per_round_can_be_set_in_the_settings_or_on_the_axis():
    """The sentence for a model without a recipe says 'give the ticket its epochs': both places take them."""
    base = {"model": "mlp", "axes": {"prune": ["lottery"], "prune_ratio": [0.8]},
            "settings": {"lottery": {"rewind": "lr", "epochs": 3}}}
    ticket = [s.prune for s in grid.expand(grid.load_config(base)) if s.prune][0]
    assert ticket.epochs == 3
    axis = {**base, "axes": {**base["axes"], "finetune_epochs": [5]}}
    assert [s.prune for s in grid.expand(grid.load_config(axis)) if s.prune][0].epochs == 5
