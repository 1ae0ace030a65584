"""Shared fixtures: the bundled digits split and the sample models, loaded once per run."""
import pytest

from core.inputs import data as D
from core.inputs import models as M


@pytest.fixture(scope="session")
def pg_url():
    """A PostgreSQL URL for the store tests (a private server), or a loud skip."""
    from tests.pg_server import postgres_server

    with postgres_server() as url:
        if url is None:
            pytest.skip("SKIPPED LOUDLY: no PostgreSQL server could be started (apt-get install postgresql); "
                        "the PostgreSQL store tests did not run")
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path):
    """Each store test runs on SQLite and on PostgreSQL (a fresh database per test)."""
    if request.param == "sqlite":
        yield tmp_path / "results.sqlite"
        return
    import uuid

    import psycopg

    base = request.getfixturevalue("pg_url")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    yield base.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def digits() -> D.DataSet:
    return D.load_digits()


@pytest.fixture(scope="session")
def lenet5() -> M.LoadedModel:
    return M.load_sample("lenet5")


@pytest.fixture(scope="session")
def mlp() -> M.LoadedModel:
    return M.load_sample("mlp")
