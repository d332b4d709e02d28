"""The fake's storage: {email: {"id", "role", "password"}} in $DATA_DIR/stub-users.json."""

import hashlib
import json
import os
import time
from pathlib import Path

SECRET_KEYS = ("VLLM_API_KEY", "HF_TOKEN", "OPENAI_API_KEY", "WEBUI_ADMIN_EMAIL", "WEBUI_ADMIN_PASSWORD",
               "WEBUI_SECRET_KEY", "RUNPOD_API_KEY")


def path() -> Path:
    p = Path(os.environ["DATA_DIR"]) / "stub-users.json"
    (p.parent / "webui.db").touch()  # the real import runs the migrations, creating the DB
    return p


def load() -> dict:
    p = path()
    return json.loads(p.read_text()) if p.exists() else {}


def save(users: dict) -> None:
    path().write_text(json.dumps(users))


def record(call: str) -> None:
    if os.environ.get("STUB_WEBUI_ADMIN_FAIL"):  # the admin step's first call fails (a broken DB, say)
        raise RuntimeError("stub open_webui: told to fail")
    env = {k: "sha256:" + hashlib.sha256(v.encode()).hexdigest() if k in SECRET_KEYS else v
           for k, v in os.environ.items()}
    rec = {"tool": "webui-admin", "argv": [call], "pid": os.getpid(), "cwd": os.getcwd(), "env": env, "t": time.time()}
    with open(os.environ["STUB_LOG"], "a") as f:
        f.write(json.dumps(rec) + "\n")
