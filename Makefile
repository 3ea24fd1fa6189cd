# Throughline — the commands a developer and CI use.
#   make run     start all five services in one process (SQLite under ./data)
#   make test    every test, on SQLite and PostgreSQL
#   make lint    rustfmt, clippy -D warnings, buf lint (offline, from npm)
#   make bench   benchmark scenarios; prints requests/s, p50, p99
#   make chart-check  the Helm chart, manifests and Dockerfile, checked offline

CARGO ?= cargo
DEV_CONFIG := config/development.toml
BUF := node_modules/.bin/buf

.PHONY: run test lint fmt bench build release token

run:
	$(CARGO) run -p throughline -- --config $(DEV_CONFIG) serve

build:
	$(CARGO) build --workspace --all-targets

release:
	$(CARGO) build --release -p throughline

# A development token for every scope of the tenant "demo" (see README).
token:
	@$(CARGO) run -q -p throughline -- --config $(DEV_CONFIG) token issue --tenant demo --scope '*'

# nextest runs every test in its own process (signal and telemetry tests need that);
# plain cargo test is the fallback where nextest is not installed.
test:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

$(BUF): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	@touch $(BUF)

lint: $(BUF)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(BUF) lint proto
	$(BUF) format --diff --exit-code proto

fmt:
	$(CARGO) fmt --all

# Extra flags go in ARGS, e.g. make bench ARGS="--scenario echo --duration 5s".
bench:
	$(CARGO) run --release -p throughline-bench -- $(ARGS)

# Offline checks of the Helm chart and kustomize overlays (see charts/check.py): render,
# schema, kubernetes-validate --strict, the binary accepting the rendered config, yamllint.
# The tools live in a private virtualenv, rebuilt when charts/requirements-check.txt changes.
CHART_VENV := .venv-chart-check
PYTHON3 ?= python3

$(CHART_VENV)/.installed: charts/requirements-check.txt
	rm -rf $(CHART_VENV)
	$(PYTHON3) -m venv $(CHART_VENV)
	$(CHART_VENV)/bin/pip install --quiet --disable-pip-version-check -r charts/requirements-check.txt
	@touch $@

.PHONY: chart-check
chart-check: $(CHART_VENV)/.installed
	$(CHART_VENV)/bin/python charts/check.py
