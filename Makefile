# Daily commands. Every target creates the virtualenv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help demo test test-unit test-integration lint typecheck check bench reference-model clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) ## run the demo: embedded broker + daemon + replayed log, then a summary
	$(BIN)/casewatch demo

test: $(STAMP) ## run every test (unit + integration against a real Kafka-protocol broker)
	$(BIN)/pytest

test-unit: $(STAMP) ## unit tests only
	$(BIN)/pytest tests/unit

test-integration: $(STAMP) ## integration tests only
	$(BIN)/pytest tests/integration

lint: $(STAMP) ## ruff
	$(BIN)/ruff check service tests bench
	$(BIN)/ruff format --check service tests bench

typecheck: $(STAMP) ## mypy --strict on the package
	$(BIN)/mypy

check: lint typecheck test ## everything CI runs

bench: $(STAMP) ## end-to-end events/s, latency, RSS: ceiling vs naive vs casewatch, one broker
	$(BIN)/python bench/throughput.py

reference-model: $(STAMP) ## retrain models/reference.onnx on the bundled log
	$(BIN)/casewatch train service/casewatch/data/p2p-0.3-1.csv.gz --train-fraction 0.5 \
		--out models/reference.onnx --name reference --version 2.0.0
	@if [ -d ../shared/data/eventlogs ]; then $(BIN)/python bench/quality_protocol.py \
		../shared/data/eventlogs/*.csv.gz --card models/reference.md \
		--before bench/quality-reference-1.1.0.json; fi

.PHONY: lock
lock: $(STAMP) ## re-pin the image's runtime dependencies in requirements.lock (LOCK_FLAGS=--upgrade for newest)
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--generate-hashes --custom-compile-command "make lock" $(LOCK_FLAGS) -o requirements.lock

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
