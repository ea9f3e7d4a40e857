# The README's Quick start: `make pipeline` and `make test`. Both set up .venv first.
CORES ?= 2
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup pipeline test lint
setup:
	bash envs/setup.sh

pipeline: setup
	snakemake --cores $(CORES)

lint: setup
	ruff check src tests benchmarks
	snakefmt --check Snakefile workflow/rules

test: lint
	pytest
