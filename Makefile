# Two commands: `make demo` and `make test`. Both build .venv from the lock.
SHELL := /bin/bash
PYENV_PY := $(shell pyenv root 2>/dev/null)/versions/3.10.13/bin/python
PYTHON_310 ?= $(if $(wildcard $(PYENV_PY)),$(PYENV_PY),python3.10)
VENV := .venv
PY := $(VENV)/bin/python
export TF_USE_LEGACY_KERAS := 1
export UV_PYTHON_DOWNLOADS := never
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONWARNINGS := ignore::FutureWarning,ignore::DeprecationWarning

.PHONY: env demo test lint lock data clean bench-quality bench-scenarios bench-serving \
  bench-soak bench-crash \
  bench-scale bench-continuous

$(VENV)/.installed: requirements/lock.txt setup.py
	@command -v uv >/dev/null || python3 -m pip install --quiet uv
	@test -x $(PY) || uv venv --seed -q -p "$(PYTHON_310)" $(VENV)
	uv pip sync -q -p $(PY) requirements/lock.txt
	uv pip install -q -p $(PY) --no-deps -e .
	@touch $@

env: $(VENV)/.installed

# Re-resolve the lock after editing requirements/requirements.in.
lock:
	uv pip compile -q requirements/requirements.in -p "$(PYTHON_310)" \
	  --python-platform x86_64-unknown-linux-gnu -o requirements/lock.txt

data: env
	$(VENV)/bin/recsys data fetch

# TF's C++ start-up chatter (cuFFT/cuDNN "already registered") is hidden here.
demo: env
	TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/recsys demo

# pyflakes, import order and 80 columns (ruff.toml); `make test` runs it first.
lint: env
	$(VENV)/bin/ruff check .

# No -v: absl (used by TFX and Beam) reads sys.argv and takes -v as its verbosity.
test: env lint
	$(PY) -m pytest tests --durations=15 -rfE

# Side-by-side quality table: bench/results/quality.json and a PNG plot.
bench-quality: env
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m bench.quality

# Explanation faithfulness and similar-item quality of the newest pushed
# model, merged into bench/results/quality.json (bench-quality measures the
# same on its own full model).
bench-scenarios: env
	@test -d outputs/serving/recommender || TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/recsys pipeline run
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m bench.scenarios

# Retrieval (ScaNN vs brute force vs NumPy), gRPC load and hot swap, over the
# pushed model (the pipeline runs first if none is pushed yet). Writes
# bench/results/serving.json, PNGs and trainer/scann_tuning.json.
bench-serving: env
	@test -d outputs/serving/recommender || TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/recsys pipeline run
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) bench/serving_bench.py

# Ten minutes of mixed traffic against `recsys serve` with a push every
# minute: bench/results/soak.json and soak.png (errors, latency, memory).
bench-soak: env
	@test -d outputs/serving/recommender || TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/recsys pipeline run
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) bench/soak.py

# kill -9 during the Trainer, re-run, a live server throughout:
# bench/results/crash.json.
bench-crash: env
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) bench/crash.py

# Stage cost at 10K/100K/1M synthetic interactions: bench/results/scale.json.
bench-scale: env
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) bench/scale.py

# Warm start vs from scratch over replayed periods, and the catalogue
# refresh: bench/results/continuous.json and continuous.png.
bench-continuous: env
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) bench/continuous.py

clean:
	rm -rf outputs
