"""ExecuTorch (.pte, XNNPACK) and 4-bit files: every sample runs in fp32 and int8 within 0.5 point of its ONNX file,
4-bit files really hold 4-bit weights, and points, picks and exports know which runtime they are on."""
import dataclasses

import onnx
import pytest

from core.inputs import data as D
from core.inputs import models as M
from core.methods import deploy
from core.methods import spec as S
from core.results import export, pareto
from core.results.store import Point, points_frame
from core.runtimes import executorch_io, onnx_io
from core.runtimes import measure as ME

if executorch_io.why_unavailable():
    pytest.skip(f"SKIPPED LOUDLY: {executorch_io.why_unavailable()} (make test installs it)", allow_module_level=True)

HEAVY = {"resnet18_mnist": 1000, "mobilenet_v3_small": None}  # test images scored for the big models


def _test_split(name: str, model: M.LoadedModel) -> D.Split:
    split = D.load_data(model.card.get("data", "digits")).adapted(model.input_shape).test
    n = HEAVY.get(name)
    return D.Split(split.raw[:n], split.y[:n], split.size) if n else split


# the two heaviest cases (a minute each on 2 cores) run with `make test-all`: resnet18 int8 and mobilenet fp32 stay
SLOW = {("resnet18_mnist", "fp32"), ("mobilenet_v3_small", "int8")}


@pytest.mark.parametrize("name,fmt", [
    pytest.param(n, f, id=f"{n}-{i}", marks=[pytest.mark.slow] if (n, i) in SLOW else [])
    for n in M.sample_names() for i, f in (("fp32", None), ("int8", deploy.Int8(calibration_samples=32)))])
def test_every_sample_runs_as_a_pte_within_half_a_point_of_its_onnx_file(name, fmt, tmp_path):
    model = M.load_sample(name)
    data = D.load_data(model.card.get("data", "digits")).adapted(model.input_shape)
    test = _test_split(name, model)
    pte = executorch_io.write_pte(model, fmt, tmp_path / "m.pte", calibration=data.train)
    onnx_file = onnx_io.write_deployable(model, fmt, tmp_path / "m.onnx", calibration=data.train)
    et, ort = executorch_io.accuracy(pte, test), onnx_io.onnx_accuracy(onnx_file, test)
    assert abs(et - ort) <= 0.005, f"{name} {fmt}: ExecuTorch {et:.4f} against ONNX Runtime {ort:.4f}"
    if fmt is not None:  # int8 weights: the .pte is far smaller than the fp32 weights
        assert pte.stat().st_size < 0.5 * ME.state_dict_bytes(model.module)


def test_int4_files_hold_4_bit_weights_that_both_runtimes_run(mlp, digits, tmp_path):
    """MatMulNBits in ONNX, 8-bit activations x 4-bit weights in ExecuTorch: a file about 1/6 the fp32 one (the
    MLP is all Linear layers), scoring within a point of the fp32 model on the test split."""
    fp32 = onnx_io.write_deployable(mlp, None, tmp_path / "fp32.onnx")
    int4 = onnx_io.write_deployable(mlp, deploy.Int4(), tmp_path / "int4.onnx")
    ops = [n.op_type for n in onnx.load(str(int4)).graph.node]
    assert ops.count("MatMulNBits") == 3 and "Gemm" not in ops
    assert int4.stat().st_size < fp32.stat().st_size / 5
    pte = executorch_io.write_pte(mlp, deploy.Int4(), tmp_path / "int4.pte")
    assert pte.stat().st_size < fp32.stat().st_size / 5
    test = digits.adapted(mlp.input_shape).test
    base = onnx_io.onnx_accuracy(fp32, test)
    assert abs(onnx_io.onnx_accuracy(int4, test) - base) <= 0.01
    assert abs(executorch_io.accuracy(pte, test) - base) <= 0.01


def test_gemm_rewritten_as_matmul_computes_the_same(lenet5, digits, tmp_path):
    import numpy as np

    path = onnx_io.write_onnx(lenet5.module, lenet5.input_shape, tmp_path / "a.onnx")
    model = onnx.load(str(path))
    assert deploy.gemm_as_matmul(model) == 3
    onnx.save(model, str(tmp_path / "b.onnx"))
    x = digits.adapted(lenet5.input_shape).test.x[:50].numpy()
    a = onnx_io.onnx_predict(onnx_io.onnx_session(path), x)
    b = onnx_io.onnx_predict(onnx_io.onnx_session(tmp_path / "b.onnx"), x)
    assert np.abs(a - b).max() < 1e-4


def test_a_point_measured_on_every_runtime_knows_each_file(lenet5, digits):
    m = ME.measure(lenet5, digits, deploy.Int8(), runtimes=("onnxruntime", "executorch", "pytorch"), budget_s=0.02,
                   batches=(1,), threads=1)
    assert [f.runtime for f in m.files] == ["onnxruntime", "executorch"]
    assert m.file("executorch").bytes < m.onnx_bytes * 1.2 and m.file("executorch").version == executorch_io.version()
    assert abs(m.file("executorch").accuracy - m.accuracy) <= 0.005
    # an int8 file has no PyTorch latency; both runtimes that run it are timed on the one thread asked for
    assert {(l.runtime, l.threads) for l in m.latency} == {("onnxruntime", 1), ("executorch", 1)}
    assert ME.Metrics.from_json(m.to_json()) == m
    fp16 = ME.measure(lenet5, digits, deploy.Float16(), runtimes=("executorch",), latency=False)
    assert fp16.file("executorch") is None  # no ExecuTorch form: left out, and said by why_not_on
    assert "no ExecuTorch form" in ME.why_not_on("executorch", lenet5, deploy.Float16())


def test_a_runtime_that_cannot_run_here_is_said_loudly():
    assert any("onnxruntime-cuda skipped" in s for s in ME.skipped_runtimes(["onnxruntime", "onnxruntime-cuda"])) \
        or onnx_io.why_no_cuda() is None
    with pytest.raises(ValueError, match="not a runtime edgetrim knows"):
        ME.check_runtimes(["tensorrt"])


def _point(spec, acc, pte_acc, ort_ms, et_ms, onnx_bytes, pte_bytes):
    lat = (ME.Latency("onnxruntime", 1, ort_ms, ort_ms, 10, 1), ME.Latency("executorch", 1, et_ms, et_ms, 10, 1))
    files = (ME.DeployedFile("onnxruntime", onnx_bytes, acc, "1"), ME.DeployedFile("executorch", pte_bytes, pte_acc, "1"))
    m = ME.Metrics(acc, None, 100, onnx_bytes, onnx_bytes, None, 10, 10, 10, lat, files=files)
    return Point(spec.hash, "m", "f", "d", "g", spec, "ok", m)


def _frame():
    from core.methods.prune import UnstructuredPrune

    return points_frame([
        _point(S.Spec(), 0.99, 0.99, 4.0, 3.0, 1000, 1100),
        _point(S.Spec(deploy=deploy.Int8()), 0.985, 0.987, 1.5, 2.5, 300, 280),
        _point(S.Spec(prune=UnstructuredPrune(0.5)), 0.97, 0.97, 1.0, 0.9, 1000, 1100),
    ])


def test_a_pick_under_a_floor_and_a_latency_budget_on_a_runtime():
    df = _frame()
    onnx_pick = pareto.pick(df, 0.98, "size", max_latency_ms=2.0)
    assert onnx_pick.row["label"].startswith("int8") and onnx_pick.met_budget
    # on ExecuTorch the int8 file takes 2.5 ms: nothing at the floor is within 2 ms, and the pick says by how much
    et = pareto.pick(df, 0.98, "size", max_latency_ms=2.0, runtime="executorch")
    assert et.met_floor and not et.met_budget
    assert et.row["label"].startswith("int8") and "0.5 ms (25 %) over" in et.message
    assert pareto.pick(df, 0.98, "size", max_latency_ms=3.0, runtime="executorch").row["onnx_bytes"] == 280
    assert pareto.pick(df, 0.98, "latency", max_bytes=500, runtime="executorch").met_budget
    assert not pareto.pick(df, 0.98, "latency", max_bytes=200).met_budget
    with pytest.raises(pareto.PickError, match="positive"):
        pareto.pick(df, 0.98, max_latency_ms=0)


def test_a_run_without_executorch_says_so_when_picked_there():
    df = _frame().assign(pte_accuracy=None, pte_bytes=None, et_b1_ms=None)
    with pytest.raises(pareto.PickError, match="runtimes: \\[executorch\\]"):
        pareto.pick(df, 0.9, runtime="executorch")
    assert pareto.baseline_accuracy(pareto.on_runtime(df, "executorch")) is None  # not a crash on the missing values
    with pytest.raises(pareto.PickError, match="ran on ExecuTorch"):
        pareto.measured_on(pareto.on_runtime(df, "executorch"), "executorch")
    assert pareto.runtimes_in(_frame())[:2] == ["onnxruntime", "executorch"]


def test_a_sweep_exports_its_pick_as_a_pte_reloaded_and_rescored(tmp_path):
    """The whole job on ExecuTorch: a sweep timed there, a pick under a floor and a latency budget from the CLI,
    and that point exported as a .pte that reloads, re-scores, and names its runtime and threads on its card."""
    import json

    from core.cli import main

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("run: et\nmodel: lenet5\ndata: digits\naxes: {deploy: [fp32, int8]}\n"
                     "measure: {runtimes: [onnxruntime, executorch], threads: 1, budget_s: 0.02}\n")
    store = str(tmp_path / "s.sqlite")
    assert main(["sweep", str(sweep), "--store", store]) == 0
    assert main(["pick", "et", "--store", store, "--floor", "0.9", "--max-latency-ms", "50", "--runtime",
                 "executorch"]) == 0
    assert main(["pick", "et", "--store", store, "--floor", "0.9", "--max-latency-ms", "0.0001", "--runtime",
                 "executorch"]) == 1  # unreachable: said, with the closest point
    out = tmp_path / "out"
    assert main(["export", "et", "--store", store, "--floor", "0.9", "--max-latency-ms", "50", "--runtime",
                 "executorch", "-o", f"{out}/"]) == 0
    [pte] = list(out.glob("*.pte"))
    card = json.loads(pte.with_name(pte.name + ".json").read_text())
    assert card["runtime"] == f"executorch {executorch_io.version()}" and card["threads"] == 1
    assert "load_method('forward')" in card["how_to_load"]
    assert abs(executorch_io.accuracy(pte, D.load_data("digits").adapted((1, 28, 28)).test)
               - card["accuracy"]["stored_point"]) <= export.TOLERANCE


def test_a_thread_profile_is_part_of_each_point(tmp_path):
    """A one-thread run and an all-cores run of the same Spec are two points, each timed as it says."""
    from core.engine import grid, sweep
    from core.results.store import Store

    store = Store(str(tmp_path / "s.sqlite"))
    cfg = {"run": "one", "model": "lenet5", "axes": {"deploy": ["fp32"]},
           "measure": {"runtimes": ["onnxruntime"], "threads": 1, "budget_s": 0.01}}
    sweep.run_sweep(grid.load_config(cfg), store)
    sweep.run_sweep(grid.load_config({**cfg, "run": "all", "measure": {"runtimes": ["onnxruntime"],
                                                                       "budget_s": 0.01}}), store)
    one, every = store.points("one"), store.points("all")
    assert len(one) == len(every) == 1 and one[0].key != every[0].key
    assert {l.threads for l in one[0].metrics.latency} == {1}
    # asking for a runtime a stored point lacks measures it again
    assert sweep.run_sweep(grid.load_config({**cfg, "measure": {"runtimes": ["onnxruntime", "executorch"],
                                                                "threads": 1, "budget_s": 0.01}}), store).computed == 1
    assert store.points("one")[0].metrics.file("executorch") is not None


def test_graphs_executorch_cannot_lower_are_refused_in_one_sentence(lenet5, tmp_path):
    import torch

    scripted = dataclasses.replace(lenet5, module=torch.jit.script(lenet5.module), arch=None)
    with pytest.raises(executorch_io.ExecuTorchError, match="TorchScript"):
        executorch_io.write_pte(scripted, None, tmp_path / "x.pte")
    graph = dataclasses.replace(lenet5, module=M.GraphModel(lenet5.module), arch=None)  # a loaded .pt2 graph
    assert ME.why_not_on("executorch", graph, None) is None  # exported again (tests/test_edges.py)
    assert "torch.export (.pt2)" in ME.why_not_on("executorch", graph, deploy.Int4())  # no nn.Linear to replace
