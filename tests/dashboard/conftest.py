"""A private results store and cache for the dashboard tests, with one small run in it."""
import pytest

from core.engine import grid, sweep
from core.results.store import Store

RUN = {"run": "ui", "model": "lenet5", "axes": {"prune": ["unstructured", "structured"], "prune_ratio": [0.0, 0.5, 0.9],
                                               "quantize": ["fp32", "int8", "w4", "w2"]}, "measure": {"latency": True, "budget_s": 0.01}}

STUDENTS = {"run": "ui-students", "model": "lenet5",
            "axes": {"prune": ["structured"], "prune_ratio": [0.0, 0.5], "finetune_epochs": [5],
                     "student": ["mlp@0.5"], "student_training": ["distilled", "alone"]},
            "settings": {"distill": {"epochs": 20}}, "measure": {"latency": False}}

# the same model on three runtimes (ExecuTorch when installed), in fp32 and int8 files
RUNTIMES = {"run": "ui-runtimes", "model": "lenet5",
            "axes": {"prune": ["structured"], "prune_ratio": [0.0, 0.5], "deploy": ["fp32", "int8"]},
            "measure": {"latency": True, "budget_s": 0.01, "runtimes": ["onnxruntime", "executorch", "pytorch"]}}


@pytest.fixture(scope="session")
def ui_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui")
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGETRIM_STORE", str(tmp / "results.sqlite"))
    mp.setenv("EDGETRIM_CACHE", str(tmp / "cache"))
    store = Store()
    with pytest.MonkeyPatch.context() as quiet:  # timed as on a quiet machine: no latency here is marked busy
        from core.runtimes import measure as ME  # (the pages' tests are about the pages; busy marks have their own)

        quiet.setattr(ME, "oversubscribed", lambda threads: False)
        quiet.setattr(ME, "looks_busy", lambda latency: False)
        sweep.run_sweep(grid.load_config(RUN), store)
        sweep.run_sweep(grid.load_config(STUDENTS), store)
        sweep.run_sweep(grid.load_config(RUNTIMES), store)
    store.close()
    yield tmp
    mp.undo()
