# The README's commands. `make up` is `pulumi up` for the stack (STACK, default dev), after setup.
SHELL := /bin/bash
STACK ?= dev
ENV = . scripts/env.sh

.PHONY: setup up preview refresh destroy outputs gpus pods lint test demo emulator bench

setup:
	@bash scripts/setup.sh

# The plain CLI; the stack is created on first use (its config is Pulumi.$(STACK).yaml). ARGS adds flags.
up preview refresh destroy: setup
	@$(ENV) && pulumi stack select --create $(STACK) && pulumi $@ --stack $(STACK) $(ARGS)

outputs: setup
	@$(ENV) && pulumi stack output --stack $(STACK) $(ARGS)

gpus pods: setup
	@$(ENV) && python -m runpod_deploy.run $@ --stack $(STACK)

lint: setup
	@$(ENV) && ruff check .

test: setup
	@$(ENV) && python -m pytest

demo: setup
	@$(ENV) && python scripts/demo.py

emulator: setup
	@$(ENV) && python -m runpod_emulator --port $${PORT:-8765}

# The bench's own requirements (matplotlib) go into .venv first; the program and tests never need them.
bench: setup
	@$(ENV) && python -m pip install -q --disable-pip-version-check -r bench/requirements.txt && python bench/run.py $(ARGS)
