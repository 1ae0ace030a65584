"""Shared fixtures: the bundled digits split and the sample models, loaded once per run."""
import pytest

from core import data as D
from core import models as M


@pytest.fixture(scope="session")
def digits() -> D.DataSet:
    return D.load_digits()


@pytest.fixture(scope="session")
def lenet5() -> M.LoadedModel:
    return M.load_sample("lenet5")


@pytest.fixture(scope="session")
def mlp() -> M.LoadedModel:
    return M.load_sample("mlp")
