"""The REAL Open WebUI 0.12.4 (installed from its lock) with startup/children/webui_admin.py run before each
start, as the agent runs it: the preset admin, sign-up closed from the very first request, password
rotation, and the upgrade of a data directory that the real Open WebUI 0.7.2 served.

The preset admin signing in, sign-up closed and rotation as a pod user sees them are
test_realpkgs_openwebui.py's (the agent runs this step there). Tests run in file order on module-scoped
data directories (each Open WebUI start costs a minute on two shared cores).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from devkit.locked_venvs import locked_venv, unlocked_venv
from devkit.startup import free_port
from devkit.startup_real import http, signin

pytestmark = pytest.mark.timeout(1800)

REPO = Path(__file__).resolve().parents[2]
ADMIN_PY = REPO / "startup" / "children" / "webui_admin.py"
EMAIL = "secret-admin-7e1b@example.invalid"
PASSWORD_A = "Pw-SECRET-44b0!"
PASSWORD_B = "Pw-SECRET-rotated-93c1!"
INTRUDER = {"name": "x", "email": "intruder@example.invalid", "password": "Intruder-1234!"}
UP_S = 600


def webui_env(data: Path, password: str) -> dict[str, str]:
    """What the agent gives Open WebUI (startup/agent/childenv.py webui): no network here, so offline."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
    env.update(DATA_DIR=str(data), WEBUI_ADMIN_EMAIL=EMAIL, WEBUI_ADMIN_PASSWORD=password,
               OPENAI_API_BASE_URL="http://127.0.0.1:9/v1", OPENAI_API_KEY="unused", ENABLE_OPENAI_API="True",
               ENABLE_OLLAMA_API="False", WEBUI_AUTH="True", ENABLE_SIGNUP="False",
               ENABLE_EVALUATION_ARENA_MODELS="False", ENABLE_PERSISTENT_CONFIG="False",
               OFFLINE_MODE="True", HF_HUB_OFFLINE="1", RAG_EMBEDDING_MODEL_AUTO_UPDATE="False",
               ANONYMIZED_TELEMETRY="False", DO_NOT_TRACK="True", SCARF_NO_ANALYTICS="True")
    return env


def set_admin(venv: Path, data: Path, password: str) -> subprocess.CompletedProcess:
    data.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["nice", str(venv / "bin" / "python"), str(ADMIN_PY)], env=webui_env(data, password),
                          cwd=data, capture_output=True, text=True, timeout=600)


class WebUI:
    """`open-webui serve` on a loopback port; `first` is the answer to the very first request that
    got one (a sign-up attempt, sent in a loop from before the port answers)."""

    def __init__(self, venv: Path, data: Path, password: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data.parent / f"webui-{self.port}.log"
        self.proc = subprocess.Popen(
            ["nice", str(venv / "bin" / "open-webui"), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=webui_env(data, password), cwd=data, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + UP_S
        self.first = None
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                self.first = http("POST", f"{self.base}/api/v1/auths/signup", INTRUDER, timeout=30)
                break
            except OSError:
                time.sleep(0.2)
        if self.first is None:
            self.stop()
            raise AssertionError(f"Open WebUI did not answer: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def venvs():
    return {"0.12.4": locked_venv("openwebui", "0.12.4"), "0.7.2": unlocked_venv("openwebui", "0.7.2")}


@pytest.fixture(scope="module")
def fresh(venvs, tmp_path_factory):
    """A fresh data directory: the admin step, then the first start of 0.12.4."""
    data = tmp_path_factory.mktemp("webui-fresh") / "data"
    step = set_admin(venvs["0.12.4"], data, PASSWORD_A)
    webui = WebUI(venvs["0.12.4"], data, PASSWORD_A)
    webui.step, webui.data = step, data
    yield webui
    webui.stop()


def test_the_admin_step_creates_the_admin_before_open_webui_ever_runs(fresh):
    assert fresh.step.returncode == 0, fresh.step.stderr[-3000:]
    assert "admin created before the first start" in fresh.step.stdout, fresh.step.stdout
    assert PASSWORD_A not in fresh.step.stdout + fresh.step.stderr
    assert (fresh.data / ".runpod-deploy-webui-version").read_text().strip() == "0.12.4"


def test_signup_is_refused_on_the_very_first_request_of_a_fresh_data_dir(fresh):
    status, body = fresh.first
    assert status == 403, (status, body)
    assert signin(fresh.base, INTRUDER["email"], INTRUDER["password"])[0] != 200


def test_a_changed_password_is_set_once_and_an_unchanged_one_is_left_alone(venvs, fresh):
    """Signing in with it (and not with the old one) after the restart is test_realpkgs_openwebui.py's,
    through the agent; here: the step changes the password only when it differs (no session revoked)."""
    fresh.stop()
    step = set_admin(venvs["0.12.4"], fresh.data, PASSWORD_B)
    assert step.returncode == 0, step.stderr[-3000:]
    assert "password set from WEBUI_ADMIN_PASSWORD" in step.stdout, step.stdout
    again = set_admin(venvs["0.12.4"], fresh.data, PASSWORD_B)
    assert again.returncode == 0 and "password set" not in again.stdout, again.stdout
    for out in (step, again):
        assert PASSWORD_A not in out.stdout + out.stderr and PASSWORD_B not in out.stdout + out.stderr


def test_an_upgrade_from_a_072_data_dir_keeps_the_admin_and_a_copy_of_the_old_db(venvs, tmp_path):
    data = tmp_path / "data"
    old = set_admin(venvs["0.7.2"], data, PASSWORD_A)  # the script's sync path (0.7.x)
    assert old.returncode == 0, old.stderr[-3000:]
    webui = WebUI(venvs["0.7.2"], data, PASSWORD_A)  # 0.7.2 serves the directory once, as the pods did
    try:
        assert signin(webui.base, EMAIL, PASSWORD_A)[0] == 200
    finally:
        webui.stop()
    db_before = (data / "webui.db").stat().st_size

    step = set_admin(venvs["0.12.4"], data, PASSWORD_A)
    assert step.returncode == 0, step.stderr[-3000:]
    assert "replaces 0.7.2" in step.stdout and "admin exists" in step.stdout, step.stdout
    (backup,) = (data / "backups").glob("webui.db.0.7.2.*")
    with sqlite3.connect(backup) as db:  # the copy is the 0.7.2 schema, whole
        (revision,) = db.execute("select version_num from alembic_version").fetchone()
        assert db.execute("select count(*) from auth").fetchone()[0] == 1
    with sqlite3.connect(data / "webui.db") as db:
        (new_revision,) = db.execute("select version_num from alembic_version").fetchone()
    assert revision != new_revision and backup.stat().st_size >= db_before // 2

    webui = WebUI(venvs["0.12.4"], data, PASSWORD_A)
    try:
        assert webui.first[0] == 403, webui.first
        status, body = signin(webui.base, EMAIL, PASSWORD_A)
        assert status == 200 and body["role"] == "admin", body
    finally:
        webui.stop()


def test_without_the_step_a_fresh_data_dir_lets_the_first_visitor_in_as_admin(venvs, tmp_path):
    """The hazard the step removes (Open WebUI >= 0.9.6): no user yet, so sign-up is open whatever
    ENABLE_SIGNUP says, and the first visitor becomes admin. Here the preset admin is absent (as when
    Open WebUI's own create_admin_user fails; it only logs that)."""
    data = tmp_path / "data"
    data.mkdir()
    env_password = ""  # no WEBUI_ADMIN_PASSWORD: Open WebUI creates no admin of its own
    webui = WebUI(venvs["0.12.4"], data, env_password)
    try:
        status, body = webui.first
        assert status == 200 and body.get("role") == "admin", (status, body)
    finally:
        webui.stop()
