"""Students of another architecture: any teacher (a fixed graph too) distilled into any architecture edgetrim
builds, the teacher's logits computed once, the student rebuilt from its archive and its ONNX file."""
import pytest
import torch

from core.engine import grid
from core.inputs import models as M
from core.inputs.train import accuracy
from core.methods import spec as S
from core.methods.distill import Distill
from core.methods.quantize import WeightQuant
from core.methods.registry import SpecError
from core.runtimes import archive
from core.runtimes import measure as ME


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))


def test_the_small_resnet18_is_torchvision_resnet18_with_a_small_image_stem():
    teacher = M.build("resnet18_small", 10, (1, 28, 28))
    assert ME.count_params(teacher)[0] == 11_172_810   # torchvision's 11.2 M (less the 3-channel 7x7 stem)
    assert 0.45e9 < ME.count_macs(teacher, (1, 28, 28)) < 0.46e9
    assert teacher.conv1.kernel_size == (3, 3) and isinstance(teacher.maxpool, torch.nn.Identity)
    quarter = M.build("resnet18_small", 10, (1, 28, 28), width=0.25)
    assert quarter.fc.in_features == 128 and ME.count_macs(quarter, (1, 28, 28)) < 0.03e9
    mlp = M.build("mlp-800-800", 10, (1, 28, 28))
    assert [l.out_features for l in mlp if isinstance(l, torch.nn.Linear)] == [800, 800, 10]
    with pytest.raises(M.ModelLoadError, match="Unknown architecture 'lenet7'.*mlp-800-800"):
        M.build("lenet7", 10, (1, 28, 28))


def test_a_teacher_distilled_into_another_architecture(mlp, digits, tmp_path):
    cfg = Distill(student="lenet5", width=0.5, epochs=3, augment_shift=0)
    student = S.compress(mlp, cfg, digits)
    assert student.arch == "lenet5" and isinstance(student.module, M.LeNet5)
    assert student.module.features[0].out_channels == 3          # lenet5 at half width
    assert accuracy(student.module, digits.adapted(mlp.input_shape).test) > 0.5
    assert len(list((tmp_path / "cache" / "teacher_logits").glob("*.pt"))) == 1  # one stored pass of the teacher
    alone = S.compress(mlp, Distill(student="lenet5", width=0.5, epochs=3, augment_shift=0, alone=True), digits)
    assert alone.fingerprint != student.fingerprint
    back = archive.load_archive(archive.write_archive(student, tmp_path / "student.etz"))
    assert back.arch == "lenet5" and back.fingerprint == student.fingerprint
    m = ME.measure(S.apply(mlp, S.Spec(distill=cfg, quantize=WeightQuant(4)), digits), digits, latency=False)
    assert m.params == ME.count_params(student.module)[0] and m.accuracy > 0.5


def test_a_fixed_graph_teacher_teaches_a_named_student(digits, mlp, tmp_path):
    scripted = torch.jit.script(mlp.module)
    path = tmp_path / "teacher.ts"
    scripted.save(str(path))
    teacher = M.load_model(path, input_shape=(1, 28, 28))
    assert teacher.arch is None
    student = S.compress(teacher, Distill(student="mlp-64", width=1.0, epochs=2), digits)
    assert student.arch == "mlp-64"
    assert [l.out_features for l in student.module if isinstance(l, torch.nn.Linear)] == [64, 10]
    assert accuracy(student.module, digits.adapted((1, 28, 28)).test) > 0.5


def test_student_names_are_checked_in_one_sentence():
    with pytest.raises(SpecError, match="Unknown student architecture 'lenet7'"):
        Distill(student="lenet7")
    with pytest.raises(SpecError, match="name the hidden layers"):
        S.compress(M.load_sample("mlp"), Distill(student="lenet5", depth=1, epochs=1), None)
    with pytest.raises(grid.SweepError, match="student_training applies to students"):
        grid.load_config({"model": "mlp", "axes": {"student_training": ["alone"]}})
    for bad in ("lenet5@2", "lenet7", 3, "mlp@"):
        with pytest.raises(grid.SweepError, match="not an architecture with an optional width"):
            grid.load_config({"model": "mlp", "axes": {"student": [bad]}})


def test_the_student_axis_crosses_architectures_with_training_and_the_other_axes():
    cfg = grid.load_config({"model": "mlp", "axes": {"student_width": [1.0, 0.5], "student": ["lenet5@0.5"],
                                                     "student_training": ["distilled", "alone"],
                                                     "deploy": ["fp32", "int8"]},
                            "settings": {"distill": {"epochs": 2, "temperature": 20}}})
    specs = grid.expand(cfg)
    students = {(s.distill.student, s.distill.width, s.distill.alone) for s in specs if s.distill}
    assert students == {(None, 0.5, False), (None, 0.5, True), ("lenet5", 0.5, False), ("lenet5", 0.5, True)}
    assert len(specs) == 2 + 4 * 2 and all(s.distill.temperature == 20 for s in specs if s.distill)
    assert {s.family for s in specs} == {"baseline", "quantization", "distillation", "student alone"}


def test_a_search_picks_one_student_per_trial(tmp_path):
    from core.engine import sweep
    from core.results.store import Store

    store = Store(tmp_path / "s.sqlite")
    cfg = grid.load_config({"run": "s", "model": "mlp", "axes": {"student_width": [1.0], "student": ["mlp@0.25"],
                                                                 "quantize": ["fp32", "w4"]},
                            "settings": {"distill": {"epochs": 1}}, "measure": {"latency": False},
                            "search": {"trials": 4, "sampler": "tpe"}})
    result = sweep.run_sweep(cfg, store)
    assert result.failed == 0 and result.total == 5
    assert set(store.table("s")["family"]) <= {"baseline", "quantization", "distillation"}
