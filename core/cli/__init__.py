"""The edgetrim command line: the same engine as the dashboard, headless.

edgetrim models                      # the bundled samples, from their cards (nothing measured)
edgetrim measure --model lenet5      # one model's metrics (a sample name or a file)
edgetrim measure --model my.pt --arch tv:resnet18 --input-shape 3x64x64 --data my.npz
edgetrim measure --model lenet5 --spec '{"_type": "Spec", "deploy": {"_type": "Int8"}}' --runtimes onnxruntime,executorch
edgetrim pick RUN --floor 0.98 --max-latency-ms 2 --runtime executorch
"""
from core.cli.common import format_table  # noqa: F401 (the table writer benchmarks print with)
from core.cli.main import build_parser, main  # noqa: F401
from core.cli.sweep import SweepProgress, cut  # noqa: F401
