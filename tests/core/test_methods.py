"""Compression methods on the small samples: exact, pure, and measured in the runtime."""
import dataclasses

import pytest
import torch

from core.inputs.train import accuracy
from core.methods import spec as S
from core.methods.deploy import W4A8, Float16, Int8, from_token
from core.methods.distill import Distill
from core.methods.prune import StructuredPrune, UnstructuredPrune, prunable_weights, schedule, sensitivity
from core.methods.quantize import WeightQuant, WeightShare, fake_quantize
from core.methods.soft_share import SoftShare
from core.methods.variational import VariationalDropout
from core.results import describe
from core.runtimes import archive, onnx_io
from core.runtimes import measure as ME

ALL_CONFIGS = [UnstructuredPrune(0.5), UnstructuredPrune(0.3, scope="layer", finetune_epochs=1, steps=2),
               StructuredPrune(0.25, importance="l1"), WeightQuant(4, granularity="per_tensor", scheme="affine"),
               WeightQuant(3, qat_epochs=1), WeightShare(3), Distill(0.5, epochs=1),
               UnstructuredPrune(0.6, scope="std", finetune_epochs=1, weight_decay=1e-4),
               WeightShare(5, conv_bits=6, finetune_epochs=1), SoftShare(components=8, epochs=1, tune_epochs=1),
               VariationalDropout(bits=3, epochs=1, tune_epochs=0), VariationalDropout(groups="units", bits=0, epochs=1)]
FORMATS = [Int8(), Int8(mode="dynamic", per_channel=False), Float16(), W4A8()]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("config", ALL_CONFIGS + FORMATS, ids=lambda c: c.label)
def test_every_config_round_trips_through_json(config):
    step = {"Distill": "distill", "Int8": "deploy", "Float16": "deploy", "W4A8": "deploy"}.get(type(config).__name__)
    spec = S.Spec(**{step or ("prune" if "Prune" in type(config).__name__ else "quantize"): config})
    again = S.Spec.from_json(spec.to_json())
    assert again == spec and again.hash == spec.hash
    assert S.config_from_dict(S.config_to_dict(config)) == config
    assert S.config_from_dict(S.config_to_dict(config, full=True)) == config
    assert S.Spec.from_dict(spec.to_dict(full=True)).hash == spec.hash   # the card's spelled-out form, same point


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=lambda c: c.label)
def test_no_method_mutates_its_input(config, lenet5, digits):
    before = lenet5.fingerprint
    out = S.compress(lenet5, config, digits)
    assert lenet5.fingerprint == before
    assert out.module is not lenet5.module


def test_spec_identity_family_and_version_checks():
    a = S.Spec(prune=UnstructuredPrune(0.5), quantize=WeightQuant(4))
    assert a.hash == S.Spec(prune=UnstructuredPrune(0.5), quantize=WeightQuant(4)).hash
    assert a.hash != S.Spec(prune=UnstructuredPrune(0.6), quantize=WeightQuant(4)).hash
    assert (a.family, S.Spec().family, S.Spec(distill=Distill()).family) == ("combined", "baseline", "distillation")
    # a student stays a student whatever is done to it after: its own family on Trade-offs
    assert S.Spec(distill=Distill(student="lenet5"), quantize=WeightQuant(4)).family == "distillation"
    assert S.Spec(distill=Distill(alone=True), prune=UnstructuredPrune(0.5)).family == "student alone"
    newer = {**a.to_dict(), "_version": S.SPEC_VERSION + 1}
    with pytest.raises(S.SpecError, match="newer edgetrim"):
        S.Spec.from_dict(newer)
    with pytest.raises(S.SpecError, match="has no field 'ratoi'"):
        S.config_from_dict({"_type": "UnstructuredPrune", "ratoi": 0.5})


@pytest.mark.parametrize("make, message", [
    (lambda: UnstructuredPrune(1.0), r"ratio must be in \[0, 0.99\]"),
    (lambda: StructuredPrune(-0.1), r"ratio must be in \[0, 0.99\]"),
    (lambda: WeightQuant(9), "from 2 to 8"),
    (lambda: WeightQuant(1), "from 2 to 8"),
    (lambda: WeightShare(bits=2.5), "from 2 to 8"),
    (lambda: WeightQuant(4, scheme="weird"), "weird"),
    (lambda: Distill(width=1.5), r"width must be in \(0, 1\]"),
])
def test_bad_configs_say_what_is_wrong(make, message):
    with pytest.raises((S.SpecError, ValueError), match=message):
        make()


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_unstructured_sparsity_is_exact(scope, lenet5, digits):
    out = S.compress(lenet5, UnstructuredPrune(0.7, scope=scope), digits)
    weights = prunable_weights(out.module)
    zeros = [int((w == 0).sum()) for _, w in weights]
    if scope == "layer":
        assert zeros == [round(0.7 * w.numel()) for _, w in weights]
    else:
        assert sum(zeros) == round(0.7 * sum(w.numel() for _, w in weights))


def test_gradual_pruning_with_finetuning_keeps_zeros_and_reaches_target(mlp, digits):
    assert schedule(0.8, 4)[-1] == pytest.approx(0.8) and schedule(0.8, 4) == sorted(schedule(0.8, 4))
    out = S.compress(mlp, UnstructuredPrune(0.8, finetune_epochs=2, steps=2), digits)
    total = sum(w.numel() for _, w in prunable_weights(out.module))
    assert sum(int((w == 0).sum()) for _, w in prunable_weights(out.module)) == round(0.8 * total)
    assert accuracy(out.module, digits.adapted(mlp.input_shape).test) > 0.9


def test_structured_pruning_shrinks_the_torchvision_sample_which_still_runs_and_exports(digits, tmp_path):
    from core.inputs.models import load_sample

    mb = load_sample("mobilenet_v3_small")
    out = S.compress(mb, StructuredPrune(0.5), digits)
    params, _ = ME.count_params(out.module)
    assert params < 0.5 * ME.count_params(mb.module)[0]
    assert out.module(torch.zeros(2, *mb.input_shape)).shape == (2, 10)
    path = onnx_io.write_onnx(out.module, mb.input_shape, tmp_path / "pruned.onnx")
    logits = onnx_io.onnx_predict(onnx_io.onnx_session(path), torch.rand(3, *mb.input_shape).numpy())
    assert logits.shape == (3, 10)
    back = archive.load_archive(archive.write_archive(out, tmp_path / "pruned.etz"))
    x = torch.rand(4, *mb.input_shape)
    assert torch.equal(back.module(x), out.module(x))


def test_eight_bit_weights_cost_at_most_one_point_on_the_cnn(lenet5, digits):
    test = digits.adapted(lenet5.input_shape).test
    for granularity in ("per_channel", "per_tensor"):
        out = S.compress(lenet5, WeightQuant(8, granularity=granularity), digits)
        assert abs(accuracy(out.module, test) - accuracy(lenet5.module, test)) <= 0.01
        for _, w in prunable_weights(out.module):
            rows = w.view(w.shape[0], -1) if granularity == "per_channel" else w.view(1, -1)
            assert max(len(torch.unique(r)) for r in rows) <= 255


def test_fake_quantize_levels_and_zero():
    w = torch.randn(4, 50)
    w[0, 0] = 0
    for bits in range(2, 9):
        for scheme in ("symmetric", "affine"):
            q = fake_quantize(w, bits, "per_channel", scheme)
            assert q[0, 0] == 0
            assert max(len(torch.unique(r)) for r in q) <= 2 ** bits


def test_int8_onnx_runtime_accuracy_within_one_point_of_fp32(lenet5, digits, tmp_path):
    fp32 = ME.measure(lenet5, digits, latency=False)
    m = ME.measure(lenet5, digits, Int8(), latency=False, keep_dir=tmp_path)
    assert abs(m.accuracy - fp32.accuracy) <= 0.01
    assert m.onnx_bytes < 0.5 * fp32.onnx_bytes and m.torch_accuracy is None
    census = onnx_io.op_census(tmp_path / f"{lenet5.name}.onnx")
    assert census["int8_nodes"] >= 4 and m.int8_nodes == census["int8_nodes"]
    assert any("integer kernels" in n for n in describe.notes(m))


def test_w4a8_holds_4_bit_weights_in_every_layer_at_about_half_an_int8_file(lenet5, digits, tmp_path):
    import onnx
    from onnx import TensorProto

    int8 = ME.measure(lenet5, digits, Int8(), latency=False)
    m = ME.measure(lenet5, digits, W4A8(), latency=False, keep_dir=tmp_path)
    assert m.accuracy >= lenet5.card["test_accuracy"] - 0.03  # rounded, never trained: a few points at most
    assert m.onnx_bytes < 0.7 * int8.onnx_bytes
    model = onnx.load(str(tmp_path / f"{lenet5.name}.onnx"))
    four_bit = {t.name for t in model.graph.initializer if t.data_type == TensorProto.INT4}
    weights = [n.input[1] for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    dequantized = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    assert weights and all(dequantized.get(w) in four_bit for w in weights)  # every layer's weights, 4 bits
    assert W4A8().label.startswith("w4a8 file") and from_token("w4a8") == W4A8()


def test_fp16_halves_the_file(lenet5, digits):
    m = ME.measure(lenet5, digits, Float16(), latency=False)
    assert m.onnx_bytes < 0.6 * ME.measure(lenet5, digits, latency=False).onnx_bytes
    assert m.accuracy >= lenet5.card["test_accuracy"] - 0.01


def test_archive_reloads_to_identical_outputs_and_is_small(lenet5, digits, tmp_path):
    spec = S.Spec(prune=UnstructuredPrune(0.8), quantize=WeightQuant(4))
    out = S.apply(lenet5, spec, digits)
    path = archive.write_archive(out, tmp_path / "m.etz")
    back = archive.load_archive(path)
    x = torch.rand(8, *lenet5.input_shape)
    assert torch.equal(back.module(x), out.module(x))
    assert path.stat().st_size < 0.1 * ME.state_dict_bytes(lenet5.module)
    shared = S.compress(lenet5, WeightShare(3), digits)
    back = archive.load_archive(archive.write_archive(shared, tmp_path / "s.etz"))
    assert torch.equal(back.module(x), shared.module(x))
    (tmp_path / "bad.etz").write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        archive.load_archive(tmp_path / "bad.etz")


def test_weight_sharing_uses_at_most_2_to_the_k_values(lenet5, digits):
    out = S.compress(lenet5, WeightShare(3), digits)
    for _, w in prunable_weights(out.module):
        assert len(torch.unique(w)) <= 8


def test_qat_beats_post_training_quantization_at_two_bits(mlp, digits):
    test = digits.adapted(mlp.input_shape).test
    ptq = accuracy(S.compress(mlp, WeightQuant(2), digits).module, test)
    qat = S.compress(mlp, WeightQuant(2, qat_epochs=4), digits)
    assert accuracy(qat.module, test) > ptq + 0.05
    assert max(len(torch.unique(row)) for _, w in prunable_weights(qat.module) for row in w) <= 3


def test_students_are_smaller_trained_once_and_cached(mlp, digits, tmp_path):
    cfg = Distill(width=0.5, epochs=10)
    student = S.compress(mlp, cfg, digits)
    assert ME.count_params(student.module)[0] < ME.count_params(mlp.module)[0] / 2
    assert accuracy(student.module, digits.adapted(mlp.input_shape).test) > 0.8
    cached = list((tmp_path / "cache" / "students").glob("*.pt"))
    assert len(cached) == 1
    again = S.compress(mlp, cfg, digits)
    assert again.fingerprint == student.fingerprint
    alone = S.compress(mlp, dataclasses.replace(cfg, alone=True), digits)
    assert alone.fingerprint != student.fingerprint
    assert len(list((tmp_path / "cache" / "students").glob("*.pt"))) == 2
    back = archive.load_archive(archive.write_archive(student, tmp_path / "student.etz"))
    assert ME.count_params(back.module) == ME.count_params(student.module)


def test_sensitivity_table(lenet5, digits):
    rows = sensitivity(lenet5, digits, ratios=(0.5, 0.9))
    assert len(rows) == 1 + 5 * 2
    assert {r["layer"] for r in rows} >= {"features.0", "classifier.5"}
    assert all(0 <= r["accuracy"] <= 1 for r in rows)


@pytest.mark.parametrize("bits, scheme", [(8, "symmetric"), (8, "affine"), (5, "symmetric")])
def test_per_channel_k_bit_weights_archive_as_scales_and_integer_codes(bits, scheme, lenet5, digits, tmp_path):
    out = S.compress(lenet5, WeightQuant(bits, scheme=scheme), digits)
    path = archive.write_archive(out, tmp_path / "q.etz")
    x = torch.rand(8, *lenet5.input_shape)
    assert torch.equal(archive.load_archive(path).module(x), out.module(x))
    assert path.stat().st_size < ME.state_dict_bytes(lenet5.module) * (bits + 1) / 32


def test_std_thresholds_prune_the_exact_count_with_one_quality_factor(lenet5, digits):
    out = S.compress(lenet5, UnstructuredPrune(0.7, scope="std"), digits)
    pairs = list(zip(prunable_weights(lenet5.module), prunable_weights(out.module)))
    total = sum(w.numel() for (_, w), _ in pairs)
    assert sum(int((p == 0).sum()) for _, (_, p) in pairs) == round(0.7 * total)
    # one threshold q * std per layer: what survives in a layer is exactly its |w| >= q * std
    q = [float(w.detach().abs()[p != 0].min() / w.detach().std()) for (_, w), (_, p) in pairs]
    assert max(q) - min(q) < 0.05 * max(q) + 0.02


def test_trained_quantization_keeps_codes_and_zeros_and_moves_the_centroids(lenet5, digits):
    pruned = S.compress(lenet5, UnstructuredPrune(0.6), digits)
    plain = S.compress(pruned, WeightShare(3, conv_bits=4), digits)
    tuned = S.compress(pruned, WeightShare(3, conv_bits=4, finetune_epochs=2, lr=1e-3), digits)
    for (_, p), (_, a), (_, b) in zip(*(prunable_weights(m.module) for m in (pruned, plain, tuned))):
        limit = 16 if p.ndim > 2 else 8
        assert len(torch.unique(b[b != 0])) <= limit and torch.equal(b == 0, p == 0)
        for v in torch.unique(a[a != 0]):   # each cluster moved as one: its weights share one new value
            assert len(torch.unique(b[a == v])) == 1
    assert any(not torch.equal(a, b) for (_, a), (_, b) in zip(prunable_weights(plain.module),
                                                               prunable_weights(tuned.module)))


def test_soft_weight_sharing_prunes_and_quantizes_in_one_pass(mlp, digits):
    out = S.compress(mlp, SoftShare(components=8, epochs=12, tau=0.5, lr=2e-3), digits)
    ws = [w for _, w in prunable_weights(out.module)]
    values = torch.unique(torch.cat([w.flatten() for w in ws]))
    assert len(values[values != 0]) <= 8                             # at most one value per component
    assert sum(int((w == 0).sum()) for w in ws) > 0.7 * sum(w.numel() for w in ws)   # the zero component prunes
    assert accuracy(out.module, digits.adapted(mlp.input_shape).test) > 0.85        # the base: 0.97
