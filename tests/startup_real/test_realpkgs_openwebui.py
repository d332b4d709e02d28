"""The real Open WebUI (the stack's release, 0.12.4), installed, archived, restored and started by the
pod agent, with its admin step before each start, next to a vLLM stand-in: what a user of the pod sees.

The admin step's own cases (the very first request of a fresh data dir, the upgrade from 0.7.2, a
password that did not change) are test_realpkgs_webui_admin.py's, without the agent.
Tests run in file order on one warm start; the last one restarts with a changed admin password.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from devkit.startup_real import OLMOCR, SECRETS, http, signin, stack_config, uv_installed_counts, wait_http_ok

pytestmark = pytest.mark.timeout(2400)

MODEL = stack_config().models[OLMOCR]
EMAIL = SECRETS["WEBUI_ADMIN_EMAIL"]
PASSWORD_A = SECRETS["WEBUI_ADMIN_PASSWORD"]
PASSWORD_B = "Pw-SECRET-rotated-93c1!"
WEBUI_UP_S = 600  # Open WebUI's first start migrates its DB; on 2 shared cores that takes a while


@pytest.fixture(scope="module")
def warm(real):
    """The second start on the cold start's workspace, on a fresh container disk (as after a pod stop:
    no venvs, no uv home): what `ready` and Open WebUI look like."""
    real.fresh_container_disk()
    run = real.start(OLMOCR)
    run.wait_for(r"^runpod-deploy phase=ready$", timeout=900)  # two restores first, on 2 shared cores
    run.wait_for(r"Open WebUI is up on port", timeout=WEBUI_UP_S)
    run.base = f"http://127.0.0.1:{run.webui_port}"
    yield run
    if run.proc.poll() is None:
        run.stop(timeout=120)


def test_cold_start_installed_both_venvs_with_the_real_uv(real):
    counts = uv_installed_counts(real.cold_output)
    assert len(counts) == 2 and all(n > 50 for n in counts), counts  # vLLM ~170, Open WebUI ~300 packages
    for name in ("vllm", "openwebui"):  # on the volume, for the next starts: whole parts, as committed
        manifest, m = real.archive(name)
        assert m["unpacked_bytes"] > 10**9 and m["parts"], m
        for part in m["parts"]:
            assert (manifest.parent / part["name"]).stat().st_size == part["size"] > 0
        assert re.search(rf"^runpod-deploy: {name}: archived in \d+s$", real.cold_output, re.M), (
            real.cold_output[-3000:])
    # The admin step ran before Open WebUI's first start (fresh DATA_DIR), from the agent's own copy.
    assert re.search(r"^\[openwebui\] .*admin created before the first start", real.cold_output, re.M), (
        real.cold_output[-3000:])


def test_warm_start_on_a_fresh_container_disk_restores_and_installs_nothing(real, warm):
    assert uv_installed_counts(warm.output) == []
    assert not [line for line in warm.lines if line.startswith(("[install-", "[download-model]", "[archive-"))]
    assert "warm start" in warm.output
    restored = [line for line in warm.lines if re.match(r"runpod-deploy: (vllm|openwebui): restored ", line)]
    assert len(restored) == 2, warm.output[-3000:]
    for name in ("vllm", "openwebui"):  # the restored interpreter runs (it is not on the wiped disk)
        assert subprocess.run([real.venv(name) / "bin" / "python", "-c", "import sys"], timeout=60).returncode == 0


def test_health_answers(warm):
    status, body = http("GET", f"{warm.base}/health")
    assert status == 200 and body == {"status": True}


def test_preset_admin_signs_in(warm):
    status, body = signin(warm.base, EMAIL, PASSWORD_A)
    assert status == 200, body
    assert body["role"] == "admin" and body["token"]


def test_signup_is_closed(warm):
    status, body = http("POST", f"{warm.base}/api/v1/auths/signup",
                        {"name": "x", "email": "intruder@example.invalid", "password": "Intruder-1234!"})
    assert status == 403, body
    assert signin(warm.base, "intruder@example.invalid", "Intruder-1234!")[0] != 200


def test_model_list_shows_the_served_model_and_only_it(warm):
    _, body = signin(warm.base, EMAIL, PASSWORD_A)
    status, models = http("GET", f"{warm.base}/api/models", token=body["token"])
    assert status == 200, models
    ids = [m["id"] for m in models["data"]]
    # The served name comes from vLLM's /v1/models, which the stand-in answers only with the key:
    # so Open WebUI's connection URL and key are right.
    assert MODEL.served_model_name in ids, ids
    assert "arena-model" not in ids, ids
    assert set(ids) <= {MODEL.served_model_name, MODEL.model_id}, ids


def test_open_webui_gets_a_working_download_setting(real, warm):
    """huggingface_hub in Open WebUI's venv, with exactly the env Open WebUI runs with, downloads a
    file (from a local server): with the image's HF_HUB_ENABLE_HF_TRANSFER=1 and no hf_transfer in
    that venv it raises instead, and Open WebUI never gets its embedding model."""
    environ = Path(f"/proc/{real.webui_pid('olmocr')}/environ").read_bytes().split(b"\0")
    env = dict(e.decode().split("=", 1) for e in environ if b"=" in e)
    probe = (
        "import http.server, tempfile, threading\n"
        "from huggingface_hub import file_download\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.send_header('Content-Length', '5'); self.end_headers()\n"
        "        self.wfile.write(b'bytes')\n"
        "    def log_message(self, *a): pass\n"
        "s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
        "threading.Thread(target=s.serve_forever, daemon=True).start()\n"
        "with tempfile.TemporaryFile() as f:\n"
        "    file_download.http_get(f'http://127.0.0.1:{s.server_port}/x', f)\n"
        "    f.seek(0); assert f.read() == b'bytes'\n"
        "print('download ok')\n"
    )
    proc = subprocess.run([str(real.venv("openwebui") / "bin" / "python"), "-c", probe], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "download ok" in proc.stdout, (
        f"HF_HUB_ENABLE_HF_TRANSFER={env.get('HF_HUB_ENABLE_HF_TRANSFER')!r}: {proc.stderr[-1500:]}")


def test_restart_with_a_changed_admin_password_lets_only_the_new_one_in(real, warm):
    assert warm.stop(timeout=120) == 0
    run = real.start(OLMOCR, WEBUI_ADMIN_PASSWORD=PASSWORD_B)
    try:
        run.wait_for(r"Open WebUI is up on port", timeout=WEBUI_UP_S)
        base = f"http://127.0.0.1:{run.webui_port}"
        wait_http_ok(f"{base}/health", 60)
        status, body = signin(base, EMAIL, PASSWORD_B)
        assert status == 200 and body["role"] == "admin", body
        assert signin(base, EMAIL, PASSWORD_A)[0] != 200
        # Neither password is printed or logged, on this start or the one before.
        logs = "\n".join(p.read_text(errors="replace") for p in (real.ws / "logs").rglob("*.log*"))
        for text in (run.output, warm.output, real.cold_output, logs):
            assert PASSWORD_A not in text and PASSWORD_B not in text
    finally:
        run.stop(timeout=120)
