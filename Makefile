# Quick start: make setup && make run   (tests: make test)
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# PyTorch comes from this machine kind's disk (see ../shared/NOTES.md); torchvision is needed by
# open_clip and only imports beside this exact torch build.
TORCH   := torch==2.14.1 torchvision==0.29.1
APT     := ffmpeg espeak-ng chromium chromium-driver

.PHONY: setup system-packages run worker test test-fast lint bench eval bench-serve bench-refusion bench-trust demo clean

setup: system-packages $(BIN)/medley
	$(BIN)/medley prepare

system-packages:
	@missing=""; for c in ffmpeg ffprobe espeak-ng chromium chromedriver; do command -v $$c >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT); \
	fi

$(BIN)/medley: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev]"
	# LightFM 1.17, a peer in `python -m benchmarks eval` only (dev/eval, not serving): its
	# setup.py builds only through pip's legacy path (removed in pip 25.3) and without build
	# isolation. If it fails, setup goes on and the eval reports the peer as skipped.
	$(BIN)/pip install -q cython "pip<25.3" && \
	  $(BIN)/pip install -q --no-build-isolation --no-use-pep517 lightfm==1.17 || \
	  echo "lightfm did not build: the eval benchmark will skip its LightFM peer" >&2
	touch $(BIN)/medley

# Two API processes: the first owns the embedded index and worker, the other serves beside it
# (README, Deployments); MEDLEY_API_PROCESSES=1 make run for one.
run:
	$(BIN)/medley serve --workers $${MEDLEY_API_PROCESSES:-2}

worker:
	$(BIN)/medley worker

test:
	$(BIN)/python -m pytest -q

test-fast:
	$(BIN)/python -m pytest -q -m "not heavy and not integration"

# ruff, mypy, and the layers (import-linter: the contracts in pyproject.toml)
lint:
	$(BIN)/ruff check .
	$(BIN)/mypy enrich index api workers medley benchmarks
	$(BIN)/lint-imports

bench:
	$(BIN)/python -m benchmarks enrich

eval:
	$(BIN)/python -m benchmarks eval --data ../shared/data/movielens-small

bench-serve:
	$(BIN)/python -m benchmarks serve

bench-refusion:
	$(BIN)/python -m benchmarks refusion

bench-trust:
	$(BIN)/python -m benchmarks trust

demo:
	$(BIN)/medley ingest --demo --wait

clean:
	rm -rf data .pytest_cache
