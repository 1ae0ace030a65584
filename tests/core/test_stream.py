"""Streamed ImageFolders (core.inputs.stream): the same batches, labels and splits as the in-memory reader, from a
folder or its zip, shuffled or in order, adapted, refused in one sentence, fingerprinted by names, sizes and times.

    .venv/bin/python -m pytest -q tests/core/test_stream.py
"""
import os
import pickle
import threading
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from core.inputs import cancel
from core.inputs import data as D
from core.inputs import stream as S
from core.inputs.train import accuracy, train_


def _folder(root, classes=3, per_class=12, gray=False, split=""):
    """Small JPEG and PNG images of two sizes (the second resized to the first's), a class-dependent tint."""
    rng = np.random.default_rng(len(split) + classes)
    for c in range(classes):
        d = root / split / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = (rng.random((20 + 4 * (i % 2), 18, 3)) * 120 + 40 * c).astype(np.uint8)
            im = Image.fromarray(arr[..., 0] if gray else arr)
            im.save(d / f"{i:03d}.{'jpg' if i % 3 else 'png'}", quality=85)
    return root


def _zip(folder, path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(folder.rglob("*")):
            z.write(p, f"{folder.name}/{p.relative_to(folder)}")
    return path


def _same(a: D.DataSet, b: D.DataSet):
    assert (a.name, a.num_classes, a.input_shape) == (b.name, b.num_classes, b.input_shape)
    for k in ("train", "val", "test"):
        sa, sb = getattr(a, k), getattr(b, k)
        assert torch.equal(sa.y, sb.y), f"{k}: the same labels, in the same order"
        assert torch.equal(torch.cat(list(sa.batches(5))), torch.cat(list(sb.batches(5)))), f"{k}: the same floats"


@pytest.fixture
def flat(tmp_path):
    return _folder(tmp_path / "flat")


def test_a_streamed_flat_folder_reads_as_the_in_memory_one(flat, monkeypatch):
    monkeypatch.setattr(S, "NUM_WORKERS", 2)
    memory, streamed = D.load_data(str(flat)), D.load_data(str(flat), stream=True)
    assert isinstance(streamed.test, D.StreamedSplit) and streamed.test.raw is None
    assert not isinstance(memory.test, D.StreamedSplit) and memory.fingerprint_kind == "pixels"
    _same(memory, streamed)  # the stratified split is cut over the listing as split() cuts it over the arrays
    order = torch.randperm(len(memory.train), generator=torch.Generator().manual_seed(1))
    got = list(streamed.train.batches_of(order, 7))
    assert [len(b) for b in got] == [7, 7, 7, 1]
    assert all(torch.equal(b, memory.train.batch(order[i * 7:(i + 1) * 7])) for i, b in enumerate(got))
    assert all(torch.equal(b, m) for b, m in zip(memory.train.batches_of(order, 7), got))
    assert torch.equal(streamed.val.batch(torch.tensor([3, 0])), memory.val.batch(torch.tensor([3, 0])))
    assert torch.equal(streamed.test.x, memory.test.x) and streamed.test.x.dtype == torch.float32
    some = torch.tensor([1, 4, 6])
    assert torch.equal(streamed.test.take(some).x, memory.test.take(some).x)
    assert torch.equal(streamed.test.take(some).y, memory.test.y[some])
    assert streamed.test.shape == memory.test.shape == (3, 20, 18) and streamed.test.size is None
    assert "streamed from disk (fingerprint of file names, sizes and times)" in streamed.describe()


def test_given_splits_and_gray_images_stream_as_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "NUM_WORKERS", 0)
    root = tmp_path / "tt"
    _folder(root, gray=True, split="train")
    _folder(root, gray=True, per_class=4, split="test")
    memory, streamed = D.load_data(str(root)), D.load_data(str(root), stream=True)
    assert streamed.input_shape == (1, 20, 18) and len(streamed.test) == 12
    _same(memory, streamed)  # validation carved from train alike; the official test split untouched


def test_big_folders_stream_by_themselves_and_small_ones_stay_in_memory(flat, monkeypatch):
    monkeypatch.setattr(D, "STREAM_ABOVE", 36)
    assert not isinstance(D.load_data(str(flat)).test, D.StreamedSplit), "36 images: in memory"
    monkeypatch.setattr(D, "STREAM_ABOVE", 35)
    assert isinstance(D.load_data(str(flat)).test, D.StreamedSplit), "more than STREAM_ABOVE: streamed"
    assert not isinstance(D.load_data(str(flat), stream=False).test, D.StreamedSplit)
    zipped = _zip(flat, flat.parent / "flat.zip")
    assert D.load_data(str(zipped)).fingerprint_kind == "zip"


def test_a_zip_streams_its_members_as_the_folder_streams_its_files(flat, monkeypatch):
    monkeypatch.setattr(S, "NUM_WORKERS", 2)
    zipped = _zip(flat, flat.parent / "upload.zip")
    from_zip, from_folder = D.load_data(str(zipped), stream=True), D.load_data(str(flat), stream=True)
    assert from_zip.fingerprint_kind == "zip" and from_zip.fingerprint != from_folder.fingerprint
    _same(from_folder, from_zip)
    assert D.load_zip(zipped, stream=False).fingerprint == D.load_data(str(flat)).fingerprint, "extracted as before"
    copy = pickle.loads(pickle.dumps(from_zip.test))  # a process executor gets a split that opens the zip itself
    assert torch.equal(copy.x, from_folder.test.x)
    bad = tmp = flat.parent / "evil.zip"
    with zipfile.ZipFile(tmp, "w") as z:
        z.writestr("../evil.jpg", b"x")
    with pytest.raises(D.DataError, match="unsafe path"):
        D.load_data(str(bad), stream=True)


def test_adapted_resizes_streamed_batches_and_keeps_what_the_fingerprint_is(flat, monkeypatch):
    monkeypatch.setattr(S, "NUM_WORKERS", 2)  # resized in the workers, as in this process
    memory, streamed = D.load_data(str(flat)), D.load_data(str(flat), stream=True)
    small_m, small_s = memory.adapted((1, 8, 8)), streamed.adapted((1, 8, 8))
    assert small_s.input_shape == (1, 8, 8) and small_s.fingerprint_kind == "files"
    assert small_s.fingerprint != streamed.fingerprint and isinstance(small_s.test, D.StreamedSplit)
    assert torch.equal(small_s.test.x, small_m.test.x)
    assert torch.equal(small_s.adapted((3, 20, 18)).test.x, memory.test.x), "always from the stored images"
    with pytest.raises(D.DataError, match="channels"):
        streamed.adapted((2, 8, 8))


def test_an_unreadable_image_in_the_middle_of_a_stream_is_named(flat, monkeypatch):
    monkeypatch.setattr(S, "NUM_WORKERS", 2)
    ds = D.load_data(str(flat), stream=True)
    victim = flat / os.fsdecode(ds.test.images.names[3])
    victim.write_bytes(victim.read_bytes()[:40])  # truncated after the listing
    with pytest.raises(D.DataError, match=f"{victim.parent.name}/{victim.name} could not be read as an image") as e:
        list(ds.test.batches(2))
    assert "\n" not in str(e.value), "one sentence, not a worker's traceback"


@pytest.mark.parametrize("make, message", [
    (lambda r: (r / "class1" / "000.png").unlink() or [p.unlink() for p in (r / "class1").iterdir()],
     "class1/ holds no images"),
    (lambda r: (r / "class0" / "notes.txt").write_text("hi"), "class0/notes.txt is not an image"),
])
def test_bad_folders_are_refused_in_one_sentence_both_ways(flat, make, message):
    make(flat)
    for stream in (False, True):
        with pytest.raises(D.DataError, match=message):
            D.load_data(str(flat), stream=stream)


def test_one_image_file_is_bounded(flat, monkeypatch):
    monkeypatch.setattr(S, "MAX_IMAGE_BYTES", 100)
    with pytest.raises(D.DataError, match="class0/000.png is .* MB, more than the .* one image may be"):
        D.load_data(str(flat), stream=True)


def test_the_fingerprint_changes_when_a_file_is_touched_or_renamed(flat):
    first = D.load_data(str(flat), stream=True).fingerprint
    assert D.load_data(str(flat), stream=True).fingerprint == first, "nothing changed, the same fingerprint"
    f = flat / "class2" / "005.jpg"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    touched = D.load_data(str(flat), stream=True).fingerprint
    f.rename(flat / "class2" / "005b.jpg")
    renamed = D.load_data(str(flat), stream=True).fingerprint
    assert len({first, touched, renamed}) == 3
    assert D.load_data(str(flat), seed=1, stream=True).fingerprint != renamed, "another split, another fingerprint"


def test_a_model_trains_and_scores_on_a_streamed_data_set(flat, monkeypatch):
    monkeypatch.setattr(S, "NUM_WORKERS", 2)
    scores = []
    for stream in (False, True):
        ds = D.load_data(str(flat), stream=stream)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        train_(model, ds.train, ds.val, epochs=1, batch_size=8)
        scores.append((accuracy(model, ds.test), [p.detach().clone() for p in model.parameters()]))
    assert scores[0][0] == scores[1][0]
    assert all(torch.equal(a, b) for a, b in zip(scores[0][1], scores[1][1])), "the same training, bit for bit"


def test_a_cancelled_job_stops_a_stream(flat, monkeypatch):
    monkeypatch.setattr(S, "NUM_WORKERS", 0)
    ds = D.load_data(str(flat), stream=True)
    event = threading.Event()
    with cancel.scope(event):
        batches = ds.train.batches(4)
        next(batches)
        event.set()
        with pytest.raises(cancel.Cancelled):
            next(batches)
