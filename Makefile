# The README's two commands: `make up` (deploy the dev stack) and `make test` (the whole suite).
SHELL := /bin/bash
STACK ?= dev
RUN = . scripts/env.sh && python -m runpod_deploy.run

.PHONY: setup up preview refresh destroy outputs gpus pods test demo emulator bench

setup:
	@bash scripts/setup.sh

up preview refresh destroy outputs gpus pods: setup
	@$(RUN) $@ --stack $(STACK)

test: setup
	@. scripts/env.sh && python -m pytest

demo: setup
	@. scripts/env.sh && python scripts/demo.py

emulator: setup
	@. scripts/env.sh && python -m runpod_emulator --port $${PORT:-8765}

bench: setup
	@. scripts/env.sh && python bench/run.py
