"""The archive read with numpy alone (core/inputs/etz.py): every sample's weights come back bit for bit, a
compressed point's too, and the reader runs where torch is not installed."""
import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.inputs import etz
from core.inputs import models as M
from core.methods import spec as S
from core.methods.prune import UnstructuredPrune
from core.methods.quantize import WeightShare
from core.runtimes import archive

READER = Path(etz.__file__)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n == "resnet18_mnist" else [])
                                  for n in M.sample_names()])
def test_every_sample_reads_back_bit_for_bit_with_numpy_alone(name, tmp_path):
    model = M.load_sample(name)
    path = archive.write_archive(model, tmp_path / f"{name}.etz")
    header, weights = etz.read(path)
    state = model.module.state_dict()
    assert list(weights) == list(state)
    assert all(same_bits(weights[k], v.numpy()) for k, v in state.items())
    assert (header["arch"], tuple(header["input_shape"]), header["num_classes"]) == \
        (model.arch, tuple(model.input_shape), model.num_classes)


def test_a_pruned_shared_point_uses_the_compact_encodings_and_reads_back_exactly(lenet5, digits, tmp_path):
    spec = S.Spec(prune=UnstructuredPrune(0.9), quantize=WeightShare(bits=4))
    small = S.apply(lenet5, spec, digits)
    path = archive.write_archive(small, tmp_path / "p.etz")
    header, weights = etz.read(path)
    assert {t["enc"] for t in header["tensors"]} - {"raw"}, "some tensor is stored compactly"
    assert all(same_bits(weights[k], v.numpy()) for k, v in small.module.state_dict().items())


def test_the_reader_imports_only_numpy_and_the_standard_library():
    tree = ast.parse(READER.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "json", "lzma", "math", "struct", "pathlib", "numpy"}, imported


def test_the_reader_file_alone_runs_without_torch(lenet5, tmp_path):
    """Copied on its own beside an archive, with torch made unimportable: the weights come out."""
    path = archive.write_archive(lenet5, tmp_path / "m.etz")
    (tmp_path / "reader").mkdir()
    (tmp_path / "reader" / "etz.py").write_bytes(READER.read_bytes())
    code = ("import sys; sys.modules['torch'] = None; import etz; h, w = etz.read(sys.argv[1]); "
            "print(h['arch'], len(w), sum(a.size for a in w.values()))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=tmp_path / "reader", capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["lenet5", str(len(lenet5.module.state_dict())),
                                  str(sum(p.numel() for p in lenet5.module.state_dict().values()))]


def test_damaged_and_foreign_files_get_one_sentence(tmp_path, lenet5):
    good = archive.write_archive(lenet5, tmp_path / "m.etz").read_bytes()
    with pytest.raises(etz.ArchiveError, match="truncated or corrupt"):
        etz.read(good[:len(good) // 2])
    with pytest.raises(etz.ArchiveError, match="not an edgetrim archive"):
        etz.read(b"PK\x03\x04 a zip")
    with pytest.raises(etz.ArchiveError, match="format '7'"):
        etz.read(b"EDGETRIM-ARCHIVE-7\n" + good[len(etz.MAGIC):])
