import json

import torch

from core.inputs import models as M
from core.runtimes import measure as ME
from core.runtimes import onnx_io


def test_metrics_round_trip_json_and_onnx_agrees_with_pytorch(lenet5, digits):
    m = ME.measure(lenet5, digits, budget_s=0.02)
    assert ME.Metrics.from_json(m.to_json()) == m
    json.loads(m.to_json())
    assert abs(m.torch_accuracy - m.accuracy) <= 0.003
    assert m.test_samples == 360 and m.onnx_bytes > 4 * m.params * 0.9
    assert {(l.runtime, l.batch) for l in m.latency} == {(r, b) for r in ME.RUNTIMES for b in ME.BATCHES}
    for l in m.latency:
        assert 0 < l.median_ms <= l.p90_ms and l.repeats >= ME.MIN_REPEATS and l.threads >= 1


def test_half_zeroed_weights_report_half_the_nonzeros():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8, bias=False))
    with torch.no_grad():
        model[1].weight.fill_(1.0)
        model[1].weight.view(-1)[::2] = 0.0
    params, nonzero = ME.count_params(model)
    assert (params, nonzero) == (128, 64)


def test_macs_of_known_layers():
    assert ME.count_macs(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), (1, 8, 8)) == 640
    conv = torch.nn.Conv2d(1, 4, 3, padding=1, bias=False)
    assert ME.count_macs(conv, (1, 8, 8)) == 4 * 9 * 64


def test_sizes_are_real_files(mlp, tmp_path):
    path = onnx_io.write_onnx(mlp.module, mlp.input_shape, tmp_path / "mlp.onnx")
    assert path.stat().st_size > 4 * 266_610
    assert ME.state_dict_bytes(mlp.module) > 4 * 266_610


def test_onnx_export_of_a_torch_export_module(tmp_path, lenet5, digits):
    program = torch.export.export(lenet5.module, (torch.zeros(2, 1, 28, 28),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp_path / "m.pt2")
    loaded = M.load_model(tmp_path / "m.pt2")
    m = ME.measure(loaded, digits, latency=False)
    assert abs(m.accuracy - lenet5.card["test_accuracy"]) <= 0.003


def test_layer_table(lenet5):
    rows = ME.layer_table(lenet5.module)
    assert sum(r["params"] for r in rows) == lenet5.card["params"]
    assert rows[0]["layer"] == "features.0" and rows[0]["shape"] == "6x1x5x5"


def test_compare_latency_times_both_models_in_alternating_rounds(lenet5, digits):
    from core.methods import spec as S
    from core.methods.deploy import Int8
    from core.methods.prune import StructuredPrune

    small = S.apply(lenet5, S.Spec(prune=StructuredPrune(0.5)), digits)
    rows = ME.compare_latency(lenet5, small, digits, rounds=3, budget_s=0.01, threads=1)
    assert {(c.runtime, c.batch) for c in rows} == {("onnxruntime", 1), ("onnxruntime", 32), ("pytorch", 1),
                                                    ("pytorch", 32)}
    assert all(len(c.a_ms) == len(c.b_ms) == 3 and c.threads == 1 and len(c.ratios) == 3 for c in rows)
    int8 = ME.compare_latency(lenet5, lenet5, digits, None, Int8(), rounds=2, budget_s=0.01)
    assert {c.runtime for c in int8} == {"onnxruntime"}  # an int8 file runs in ONNX Runtime only


def test_measure_leaves_the_callers_module_as_it_was(lenet5, digits):
    """Numbers only, and no side effect: the module's mode and weights are what they were."""
    import copy

    from core.methods.deploy import Int8

    model = lenet5.derive(copy.deepcopy(lenet5.module))
    model.module.train()
    before = model.fingerprint
    for deploy in (None, Int8()):
        m = ME.measure(model, digits, deploy, latency=False)
        assert model.module.training and model.fingerprint == before
        assert not hasattr(m, "notes") and isinstance(m.to_dict()["int8_nodes"], (int, type(None)))


def test_a_busy_machine_while_timing_is_said(monkeypatch):
    import dataclasses

    from core.results import describe

    monkeypatch.setattr(describe.os, "cpu_count", lambda: 2)
    calm = ME.Latency("pytorch", 1, 0.1, 0.12, 50, 2, load=0.9)
    m = ME.Metrics(0.9, 0.9, 10, 1, 1, None, 10, 10, 10, (calm,))
    assert not any("busy" in n for n in describe.notes(m))
    busy = dataclasses.replace(m, latency=(dataclasses.replace(calm, load=2.6),))
    assert any("busy while timing (load 2.6 on 2 cores" in n for n in describe.notes(busy))


def test_numbers_come_accuracy_first_then_sizes_then_each_latency(lenet5, digits):
    heard = []
    m = ME.measure(lenet5, digits, budget_s=0.01, partial=lambda fields: heard.append(dict(fields)))
    assert "accuracy" in heard[0] and "archive_bytes" not in heard[0] and "latency" not in heard[0]
    assert "archive_bytes" in heard[1] and "macs" in heard[1] and "latency" not in heard[1]
    assert [len(h.get("latency", ())) for h in heard[2:]] == list(range(1, len(m.latency) + 1))
    assert heard[0]["accuracy"] == m.accuracy and m.val_accuracy == heard[1]["val_accuracy"]
    assert 0.5 < m.val_accuracy <= 1 and m.files[0].val_accuracy == m.val_accuracy


def _latency(p10, median, p90, outliers=0, repeats=100):
    return ME.Latency("pytorch", 1, median, p90, repeats, 2, p10_ms=p10, outliers=outliers)


def test_a_sample_that_disagrees_with_itself_looks_busy():
    assert not ME.looks_busy(_latency(0.14, 0.15, 0.17))
    assert ME.looks_busy(_latency(0.15, 0.16, 110.0))                 # two clusters: 0.15 ms and 110 ms
    assert ME.looks_busy(_latency(0.15, 0.16, 0.3, outliers=30))      # many calls far past the median


def test_a_busy_latency_is_timed_again_and_marked_only_if_it_stays_busy(monkeypatch):
    monkeypatch.setattr(ME, "oversubscribed", lambda threads: False)
    monkeypatch.setattr(ME.time, "sleep", lambda s: None)
    samples = iter([_latency(0.15, 60.0, 110.0), _latency(0.14, 0.15, 0.16)])
    calm = ME.time_honestly(lambda b, budget: next(samples), 1, 0.01, crowded=False)
    assert calm.median_ms == 0.15 and not calm.busy                    # re-timed: the calm sample is kept
    stays = ME.time_honestly(lambda b, budget: _latency(0.15, 60.0, 110.0), 1, 0.01, crowded=True)
    assert stays.busy                                                  # never stored unmarked


def test_the_load_against_the_cores_reads_the_kernel(monkeypatch):
    import os

    assert ME.runnable_others() >= 0
    monkeypatch.setattr(ME, "runnable_others", lambda: os.cpu_count())  # every core taken by others
    assert ME.oversubscribed(1)
