"""The runpod-deploy stack: config → one ModelServer per model → outputs (see __main__.py)."""
