# Shuangti: `make demo` serves the SQLite demo; `make test` runs the whole suite.
# Both create .venv and install everything they need, apt packages included.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT    := chromium fonts-wqy-zenhei graphviz
DEMO_DB ?= instance/demo.db
PYTEST_ARGS ?=

.PHONY: demo test lint apt-deps bench bench-quick clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

apt-deps:
	@missing=""; for p in $(APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

demo: $(STAMP) apt-deps
	mkdir -p $(dir $(DEMO_DB))
	$(VENV)/bin/shuangti --db sqlite:///$(DEMO_DB) demo --reset
	$(VENV)/bin/shuangti --db sqlite:///$(DEMO_DB) serve --with-scheduler --host 127.0.0.1 --port 5000

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) apt-deps lint
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench.run --doc docs/benchmarks.md

bench-quick: $(STAMP)
	$(PY) -m bench.run --quick

clean:
	rm -rf $(VENV) instance .pytest_cache
