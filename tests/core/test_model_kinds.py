"""Every method on every model kind edgetrim loads does what it claims, or refuses before any work.

Kinds: an architecture + state_dict (an nn.Module), a TorchScript file, a torch.export .pt2.
"Does what it claims" is read off the weights themselves: exact zero counts after pruning,
at most 2^bits distinct values per output channel after k-bit rounding, at most 2^bits
shared values per layer after weight sharing.
"""
import pytest
import torch

from core.inputs import models as M
from core.methods import spec as S
from core.methods.deploy import Int8
from core.methods.distill import Distill
from core.methods.prune import StructuredPrune, UnstructuredPrune, prunable_weights
from core.methods.quantize import WeightQuant, WeightShare
from core.methods.soft_share import SoftShare
from core.methods.variational import VariationalDropout
from core.results import describe
from core.runtimes import measure as ME

KINDS = ["state_dict", "torchscript", "export"]


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    """The lenet5 sample as each model kind, saved to disk and loaded back through load_model."""
    tmp = tmp_path_factory.mktemp("kinds")
    lm = M.load_sample("lenet5")
    torch.save(lm.module.state_dict(), tmp / "l5.pt")
    torch.jit.trace(lm.module, lm.example_input(2)).save(str(tmp / "l5.ts"))
    program = torch.export.export(lm.module, (lm.example_input(2),),
                                  dynamic_shapes=({0: torch.export.Dim("b", min=1, max=4096)},))
    torch.export.save(program, tmp / "l5.pt2")
    return {"state_dict": M.load_model(tmp / "l5.pt", arch="lenet5", input_shape=(1, 28, 28)),
            "torchscript": M.load_model(tmp / "l5.ts", input_shape=(1, 28, 28)),
            "export": M.load_model(tmp / "l5.pt2")}


def weights(lm):
    return [w.detach() for _, w in prunable_weights(lm.module)]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_exposes_all_four_weight_layers(kinds, kind):
    assert [tuple(w.shape) for w in weights(kinds[kind])] == [(6, 1, 5, 5), (16, 6, 5, 5), (120, 400), (84, 120),
                                                            (10, 84)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bits", [2, 4])
def test_k_bit_rounding_really_rounds(kinds, kind, bits, digits):
    out = S.compress(kinds[kind], WeightQuant(bits), digits)
    for w in weights(out):
        assert max(len(torch.unique(row)) for row in w.flatten(1)) <= 2 ** bits
    assert weights(kinds[kind])[2].unique().numel() > 1000  # the input is left as it was


@pytest.mark.parametrize("kind", KINDS)
def test_weight_sharing_really_shares(kinds, kind, digits):
    out = S.compress(kinds[kind], WeightShare(3), digits)
    for w in weights(out):
        assert len(torch.unique(w[w != 0])) <= 2 ** 3


@pytest.mark.parametrize("kind", ["torchscript", "export"])
def test_soft_weight_sharing_retrains_a_fixed_graph_into_shared_values_and_zeros(kinds, kind, digits):
    out = S.compress(kinds[kind], SoftShare(components=8, epochs=2, lr=2e-3, tau=0.5), digits)
    ws = torch.cat([w.flatten() for w in weights(out)])
    assert len(torch.unique(ws[ws != 0])) <= 8 and (ws == 0).float().mean() > 0.3


@pytest.mark.parametrize("kind", KINDS)
def test_unstructured_pruning_zeroes_the_exact_count(kinds, kind, digits):
    out = S.compress(kinds[kind], UnstructuredPrune(0.6), digits)
    ws = weights(out)
    total = sum(w.numel() for w in ws)
    assert sum(int((w == 0).sum()) for w in ws) == round(0.6 * total)


@pytest.mark.parametrize("kind", ["torchscript", "export"])
def test_unstructured_pruning_with_fine_tuning_keeps_the_zeros(kinds, kind, digits):
    out = S.compress(kinds[kind], UnstructuredPrune(0.5, finetune_epochs=1), digits)
    ws = weights(out)
    assert sum(int((w == 0).sum()) for w in ws) >= round(0.5 * sum(w.numel() for w in ws))


@pytest.mark.parametrize("kind", ["torchscript", "export"])
@pytest.mark.parametrize("config, refusal", [
    (StructuredPrune(0.5), "structured pruning needs an nn.Module"),
    (Distill(0.5, epochs=1), "cannot build a narrower copy"),
    (WeightQuant(3, qat_epochs=1), "quantization-aware training needs an nn.Module"),
    (WeightShare(4, finetune_epochs=1), "fine-tuning shared centroids needs an nn.Module"),
    (SoftShare(epochs=1, tune_epochs=1), "tuning the shared means needs an nn.Module"),
    (VariationalDropout(epochs=1), "variational dropout needs an nn.Module"),
])
def test_what_a_fixed_graph_cannot_do_is_refused_in_one_sentence_before_any_work(kinds, kind, config, refusal,
                                                                                 digits):
    spec = S.Spec(**{"prune" if isinstance(config, StructuredPrune) else
                     "distill" if isinstance(config, Distill) else "quantize": config})
    reason = S.why_not_spec(kinds[kind], digits, spec)
    assert reason and refusal in reason and "\n" not in reason
    with pytest.raises(S.SpecError, match=refusal):
        S.apply(kinds[kind], spec, digits)


@pytest.mark.parametrize("kind", ["torchscript", "export"])
def test_a_fixed_graph_ships_as_a_real_int8_file(kinds, kind, digits):
    m = ME.measure(kinds[kind], digits, Int8(), latency=False)
    assert m.int8_nodes >= 4 and m.accuracy > 0.9
    assert m.archive_bytes is None and any("No compact archive" in n for n in describe.notes(m))
