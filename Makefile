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

.PHONY: env demo serve test lint browser lock data clean bench-quality bench-seeds bench-scenarios bench-serving \
  bench-soak bench-crash screenshots \
  bench-scale bench-item-item bench-continuous bench-placement bench-rerank bench-long-tests

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

# The pushed model over TF Serving's gRPC (8500) and REST (8501) APIs, and
# the explorer page at http://127.0.0.1:8501/.
serve: env
	TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/recsys serve

# pyflakes, import order and 80 columns (ruff.toml); `make test` runs it first.
lint: env
	$(VENV)/bin/ruff check .

# Debian's Chromium and its driver for the explorer page test, installed
# where we may (root with apt-get, as on CI); elsewhere that test skips.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing chromium and chromium-driver (explorer page test)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	   apt-get install -y -qq chromium chromium-driver >/dev/null) || \
	  echo "chromium could not be installed: the browser test will skip"; \
	else echo "No chromium and no root apt-get: the browser test will skip"; fi

# No -v: absl (used by TFX and Beam) reads sys.argv and takes -v as its verbosity.
test: env lint browser
	$(PY) -m pytest tests -m "not long" --durations=15 -rfEs

# The tests marked `long` (extra pipeline runs: the baseline gate and hot
# swap, seeded repeatability, a stopped replay; extra processes: two
# training workers, ExampleGen on two Beam workers), kept out of make
# test's 15-minute budget on 2 cores.
bench-long-tests: env browser
	$(PY) -m pytest tests -m long --durations=0 -rfEs

# Side-by-side quality table: bench/results/quality.json and a PNG plot
# (~65 min on 2 cores: our close calls on validation run five seeds).
bench-quality: env
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m bench.quality

# Full model vs its no-text ablation and one other design (--compare) over
# 5 seeds (bench-quality's chosen config), on the eval period and on the
# validation window, each gap with a 95% interval over user resamples, and
# each model over the strongest peer (ease_recency) seed by seed:
# bench/results/quality_seeds.json and quality_seeds.png (~45 min).
bench-seeds: env
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m bench.seeds

# Where the full model's cold-start lead over no_text comes from: every
# new-item placement (text share, boost, text only ordering no_text's
# slots) scored as served from one model on validation, on eval, and on
# eval with a random tenth of the training items hidden, each with its gap
# to no_text's placement and a 95% interval over users (12 min with
# --no-text, which trains no_text beside it, once the
# pipeline has run; bench-quality's split, cached after its first run).
bench-placement: env
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m bench.placement

# The ranking stage's weight (predicted rating added to retrieval's cosine
# over its top 100): swept on the validation window, which chooses it, and
# on the eval period, three seeds of bench-quality's full config each:
# bench/results/rerank.json and rerank.png (~25 min once the pipeline ran).
bench-rerank: env
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m bench.rerank

# Explanation faithfulness and similar-item quality of the newest pushed
# model, merged into bench/results/quality.json (bench-quality measures the
# same on its own full model).
bench-scenarios: env
	@test -d outputs/serving/recommender || TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/recsys pipeline run
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m bench.scenarios

# Retrieval (ScaNN vs brute force vs NumPy), gRPC load, what the reasons
# cost (recommend_unseen vs recommend_unseen_fast) and hot swap, over the
# pushed model (the pipeline runs first if none is pushed yet). Writes
# bench/results/serving.json, PNGs and trainer/scann_tuning.json.
bench-serving: env
	@test -d outputs/serving/recommender || TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/recsys pipeline run
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m bench.serving_bench

# Ten minutes of mixed traffic against `recsys serve` with a push every
# minute: bench/results/soak.json and soak.png (errors, latency, memory).
bench-soak: env
	@test -d outputs/serving/recommender || TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/recsys pipeline run
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m bench.soak

# kill -9 during the Trainer, re-run, a live server throughout:
# bench/results/crash.json.
bench-crash: env
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m bench.crash

# The README's pictures of the explorer page and the latest run report, in
# headless Chromium: bench/results/screenshot_*.png (after `make demo`).
screenshots: env browser
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m bench.screenshots

# Stage cost at 10K/100K/1M synthetic interactions: bench/results/scale.json.
bench-scale: env
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m bench.scale

# The item-item term above 10,000 items: what pruning each row costs on
# ML-100K, and fit and serving cost at 10k-50k synthetic items (~10 min):
# bench/results/item_item_rows.json and item_item_rows.png.
bench-item-item: env
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m bench.item_item_rows

# Warm start vs from scratch over replayed periods (3 repeats of both chains,
# ~35 min each on 2 cores, ~1 h 50 min in all), and the catalogue
# refresh: bench/results/continuous.json and continuous.png.
bench-continuous: env
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m bench.continuous

clean:
	rm -rf outputs
