"""Files the pod agent starts in OTHER interpreters, so not part of its zipapp (STARTUP_B64): gate.py
runs inside vLLM's process (its venv), webui_admin.py with Open WebUI's venv python. They reach the
pod in the per-pod file bundle (startup/agent/bundle.py, env RUNPOD_DEPLOY_FILES), beside the locks."""
