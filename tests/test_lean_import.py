import subprocess
import sys


def test_core_does_not_import_the_ui_stack():
    code = ("import sys, core, core.inputs.data, core.inputs.models, core.runtimes.measure, core.cli; "
            "bad = [m for m in ('streamlit', 'plotly') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
