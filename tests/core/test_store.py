import sqlite3

import pandas as pd
import pytest

from core import spec as S
from core.measure import Latency, Metrics
from core.prune import UnstructuredPrune
from core.store import SCHEMA_VERSION, Point, Store, StoreError, point_key


def metrics(acc=0.9, size=1000):
    return Metrics(acc, acc, 360, size, size, size // 2, 100, 90, 1000, (Latency("onnxruntime", 1, 0.1, 0.2, 20, 2),))


def point(spec=S.Spec(), acc=0.9, status="ok"):
    key = point_key("m", "d", spec)
    return Point(key, "mlp", "m", "digits", "d", spec, status, metrics(acc) if status == "ok" else None,
                 None if status == "ok" else "boom", 1.0)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "results.sqlite")
    yield s
    s.close()


def test_round_trip_points_and_runs(store, tmp_path):
    store.add_run("r1", {"a": 1}, "mlp", "digits")
    p = point(S.Spec(prune=UnstructuredPrune(0.5)))
    store.put(p, "r1", 0)
    store.put(point(), "r1", 1)
    assert store.get(p.key) == p
    assert [q.key for q in store.points("r1")] == [p.key, point().key]
    df = store.table("r1")
    assert list(df["family"]) == ["pruning", "baseline"] and df["accuracy"].tolist() == [0.9, 0.9]
    runs = store.runs()
    assert runs.loc[0, "run"] == "r1" and runs.loc[0, "points"] == 2
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet", index=False)
    assert len(pd.read_parquet(tmp_path / "t.parquet")) == 2


def test_point_key_depends_on_model_data_and_spec():
    s = S.Spec()
    assert len({point_key("m", "d", s), point_key("m2", "d", s), point_key("m", "d2", s),
                point_key("m", "d", S.Spec(prune=UnstructuredPrune(0.5)))}) == 4


def test_runs_share_points_and_delete_keeps_shared_ones(store):
    for run in ("a", "b"):
        store.add_run(run, {}, "mlp", "digits")
    shared, own = point(), point(S.Spec(prune=UnstructuredPrune(0.5)))
    store.put(shared, "a")
    store.put(own, "a")
    store.link("b", [shared.key])
    store.delete_run("a")
    assert store.get(shared.key) is not None and store.get(own.key) is None
    with pytest.raises(StoreError, match="No run named 'a'"):
        store.points("a")


def test_a_store_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    Store(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer edgetrim"):
        Store(path)


def test_a_file_that_is_not_a_store(tmp_path):
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="not a usable edgetrim store"):
        Store(tmp_path / "junk.sqlite")
