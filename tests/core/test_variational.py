"""Sparse variational dropout and Bayesian compression (core.methods.variational) on the small samples."""
import pytest
import torch

from core.engine import grid
from core.methods import quantize
from core.methods import spec as S
from core.methods.prune import prunable_weights
from core.methods.registry import make
from core.methods.variational import Groups, VariationalDropout, _kl, posterior_bits
from core.runtimes import measure as ME


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))


def test_the_kl_approximation_falls_as_the_dropout_rate_rises():
    kl = _kl(torch.tensor([-8.0, 0.0, 3.0, 8.0]))
    assert torch.all(kl[:-1] > kl[1:]) and abs(float(kl[-1])) < 0.01 and float(kl[0]) > 3


def test_a_layer_whose_posterior_is_tight_gets_more_bits():
    w = torch.linspace(-1, 1, 100)
    assert posterior_bits(w, torch.full((100,), 1e-6)) == 8            # std 0.001 over a span of 2: capped at 8
    assert posterior_bits(w, torch.full((100,), 0.25 ** 2)) == 2       # std 0.25: a few steps resolve it
    assert 2 < posterior_bits(w, torch.full((100,), 0.02 ** 2)) < 8
    assert posterior_bits(torch.zeros(5), torch.ones(5)) == 2          # nothing kept


def test_sparse_vd_prunes_shares_and_leaves_a_plain_model(mlp, digits):
    out = S.compress(mlp, VariationalDropout(bits=3, epochs=6, kl_weight=10, tune_epochs=1), digits)
    ws = [w for _, w in prunable_weights(out.module)]
    zeros = sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)
    assert zeros > 0.5                                                 # the weights that carried only noise went
    for w in ws:
        assert len(torch.unique(w[w != 0])) <= 8                       # 3-bit shared values per layer
    assert not any(m._forward_hooks for m in out.module.modules())     # the noise is gone with training
    assert dict(out.module.named_parameters()).keys() == dict(mlp.module.named_parameters()).keys()
    m = ME.measure(out, digits, latency=False)                          # its ONNX file, scored in ONNX Runtime
    assert m.accuracy > 0.85 and m.archive_bytes < ME.measure(mlp, digits, latency=False).archive_bytes / 4


def test_bayesian_compression_removes_whole_units_so_the_onnx_file_shrinks(mlp, digits):
    cfg = VariationalDropout(groups=Groups.UNITS, bits=0, epochs=8, noise_lr=3e-2, tune_epochs=1)
    out = S.compress(mlp, cfg, digits)
    before, after = mlp.module, out.module
    assert after[1].out_features < 0.9 * before[1].out_features      # hidden units removed, not only zeroed
    assert after[3].out_features < 0.9 * before[3].out_features
    assert after[-1].out_features == before[-1].out_features == 10   # never the classes
    base, small = (ME.measure(m, digits, latency=False) for m in (mlp, out))
    assert small.onnx_bytes < 0.85 * base.onnx_bytes and small.accuracy > 0.9   # the base: 0.97


def test_tokens_and_the_sweep_file_spell_the_variational_methods():
    assert quantize.from_token("vd4") == VariationalDropout(bits=4, epochs=3)
    assert quantize.from_token("vd", epochs=5) == VariationalDropout(bits=0, epochs=5)
    assert quantize.from_token("bayes3").groups is Groups.UNITS
    assert quantize.token_name("bayes") == "bayes (Bayesian compression, widths from the posterior)"
    assert VariationalDropout(noise_lr=0.01, threshold=2).label == (
        "sparse VD (weights, 10 ep, noise lr 0.01, pruned at log alpha > 2) → 4-bit shared values")  # every field set
    for bad in ("vd9", "bayes1", "vdx"):
        with pytest.raises(S.SpecError, match="not a weight format"):
            quantize.from_token(bad)
    cfg = grid.load_config({"model": "mlp", "axes": {"quantize": ["vd4", "bayes"]},
                            "settings": {"qat_epochs": 2, "quantize": {"kl_weight": 4, "tune_epochs": 1}}})
    steps = [s.quantize for s in grid.expand(cfg) if s.quantize is not None]
    assert [(q.bits, q.groups, q.epochs, q.kl_weight, q.tune_epochs) for q in steps] == [
        (4, Groups.WEIGHTS, 2, 4, 1), (0, Groups.UNITS, 2, 4, 1)]
    with pytest.raises(grid.SweepError, match="vd / vd2..vd8"):
        grid.load_config({"model": "mlp", "axes": {"quantize": ["vd1"]}})


@pytest.mark.parametrize("bad, message", [({"bits": 1}, "bits must be 0"), ({"epochs": 0}, "epochs must be at least"),
                                          ({"kl_weight": 0}, "kl_weight must be positive"),
                                          ({"groups": "layers"}, "layers"),
                                          ({"threshold": -100}, "threshold is the log alpha")])
def test_bad_settings_are_one_sentence(bad, message):
    with pytest.raises((S.SpecError, ValueError), match=message):
        make(VariationalDropout, **bad)


def test_a_sweep_counts_the_variational_training_before_it_runs(mlp, digits):
    from core.engine.estimate import trainings

    spec = S.Spec(quantize=VariationalDropout(epochs=5, retrain_epochs=1, tune_epochs=2))
    noisy, rest = trainings(mlp, digits, spec)
    assert (noisy.what, noisy.epochs, rest.epochs) == ("variational dropout", 5, 1 + 2)
    assert noisy.images == 2 * rest.images        # a noisy epoch costs about two plain ones
