"""Open WebUI's preset admin, set with Open WebUI's own code BEFORE it serves: run with Open WebUI's
venv python, in the env and working directory ``open-webui serve`` gets, before every start:

    <openwebui venv>/bin/python webui_admin.py      # env: DATA_DIR, WEBUI_ADMIN_EMAIL, WEBUI_ADMIN_PASSWORD

Exit 0 when the account of WEBUI_ADMIN_EMAIL is an admin and WEBUI_ADMIN_PASSWORD signs it in; else
non-zero with the reason on stderr (the agent must then NOT start Open WebUI: see below). Neither
the password nor its hash is ever printed.

Why before the port answers: since Open WebUI 0.9.6 sign-up is open whenever no user exists,
whatever ENABLE_SIGNUP says (``routers/auths.py``: "Don't gate the first admin on ENABLE_SIGNUP"),
and Open WebUI creates its WEBUI_ADMIN_* admin only in its lifespan, after uvicorn binds the port.
Creating the admin here first means the very first request to a fresh data directory already
finds a user, so sign-up is closed from the start. Open WebUI also creates the admin only while no
user exists at all: a rotated password (``pulumi destroy`` and ``up`` with webui.db kept on the
volume) would never reach the DB. Here the account gets the configured password (only when it does
not already work: setting it revokes the admin's sessions) and the admin role, or is created.

In order, each run:
1. ``backup_before_upgrade``: when the installed Open WebUI is not the one that last opened this
   DATA_DIR (``.runpod-deploy-webui-version``), webui.db is copied to
   ``DATA_DIR/backups/webui.db.<old version>.<UTC time>`` with SQLite's online backup, BEFORE
   Open WebUI is imported: importing it runs its migrations, which cannot be undone (0.10.0:
   "downgrading after the migration is not supported"). Roll back: stop the pod's Open WebUI, copy
   the backup over webui.db, pin the old ``openwebuiVersion``.
2. ``import open_webui.config``: the migrations for this version (a fresh directory gets its tables).
3. the admin, as above; then the version marker is written.

Supports Open WebUI 0.12.x (auth helpers ``async`` since 0.9.0) and 0.7.x (sync): each call is
awaited only when it returns an awaitable. Standard library only at import time, so the agent can
also import ``backup_before_upgrade`` and ``VERSION_MARKER`` from it.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import os
import secrets
import sqlite3
import sys
from pathlib import Path

VERSION_MARKER = ".runpod-deploy-webui-version"
BACKUP_DIR = "backups"


class AdminError(Exception):
    """What went wrong, for stderr (never the password)."""


def say(text: str) -> None:
    print(f"webui-admin: {text}", flush=True)


def installed_version() -> str:
    from importlib.metadata import version

    return version("open-webui")


def backup_before_upgrade(data_dir: Path, version: str, *, log=say) -> Path | None:
    """Copy webui.db aside when `version` is not the one that last opened `data_dir`; the backup's
    path, or None when nothing needed saving (same version, or no DB yet). Call it before anything
    of the new version touches the DB. The marker is written by `mark_version` once that version
    has opened the DB."""
    db = data_dir / "webui.db"
    marker = data_dir / VERSION_MARKER
    previous = marker.read_text().strip() if marker.is_file() else ""
    if previous == version or not db.is_file():
        return None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest = data_dir / BACKUP_DIR / f"webui.db.{previous or 'unknown'}.{stamp}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    # SQLite's backup API: a consistent copy even of a DB in WAL mode or left mid-transaction.
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out = sqlite3.connect(tmp)
        try:
            src.backup(out)
        finally:
            out.close()
    finally:
        src.close()
    os.replace(tmp, dest)
    log(f"Open WebUI {version} replaces {previous or 'an unknown version'} on this data directory: "
        f"webui.db copied to {dest} before its migrations")
    return dest


def mark_version(data_dir: Path, version: str) -> None:
    tmp = data_dir / (VERSION_MARKER + ".tmp")
    tmp.write_text(version + "\n")
    os.replace(tmp, data_dir / VERSION_MARKER)


async def _call(fn, *args, **kwargs):
    """Open WebUI's model and auth helpers: sync up to 0.8, async from 0.9.0."""
    result = fn(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


async def password_works(email: str, password: str) -> bool:
    """Open WebUI's own sign-in check: authenticate_user(email, verify(stored hash)), with verify
    async from 0.9.0 (sync in 0.7)."""
    from open_webui.models.auths import Auths
    from open_webui.utils.auth import verify_password

    if inspect.iscoroutinefunction(Auths.authenticate_user):
        async def verify(hashed: str) -> bool:
            return await verify_password(password, hashed)

        return bool(await Auths.authenticate_user(email, verify))
    return bool(Auths.authenticate_user(email, lambda hashed: verify_password(password, hashed)))


async def ensure_admin(email: str, password: str, name: str) -> str:
    """Make `email` an admin whose password is `password`; what was done, in words."""
    from open_webui.models.auths import Auths
    from open_webui.models.users import Users
    from open_webui.utils.auth import get_password_hash

    user = await _call(Users.get_user_by_email, email)
    if user is None:
        others = await _call(Users.has_users)
        hashed = await _call(get_password_hash, password)
        if await _call(Auths.insert_new_auth, email=email, password=hashed, name=name, role="admin") is None:
            raise AdminError("Open WebUI did not create the admin account")
        done = "admin created" + (" (other users exist)" if others else " before the first start: sign-up stays closed")
    else:
        done = "admin exists"
        if not await password_works(email, password):
            hashed = await _call(get_password_hash, password)
            if not await _call(Auths.update_user_password_by_id, user.id, hashed):
                raise AdminError("Open WebUI did not store the admin password")
            done += ", password set from WEBUI_ADMIN_PASSWORD"
        if user.role != "admin":
            await _call(Users.update_user_role_by_id, user.id, "admin")
            done += f", role {user.role} -> admin"
    if not await password_works(email, password):
        raise AdminError("the admin's password does not sign in after setting it")
    return done


def main() -> int:
    email = os.environ.get("WEBUI_ADMIN_EMAIL", "").strip().lower()
    password = os.environ.get("WEBUI_ADMIN_PASSWORD", "")
    data_dir = os.environ.get("DATA_DIR", "")
    if not (email and password and data_dir):
        print("webui-admin: DATA_DIR, WEBUI_ADMIN_EMAIL and WEBUI_ADMIN_PASSWORD must all be set", file=sys.stderr)
        return 2
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    version = installed_version()
    try:
        backup_before_upgrade(data, version)
    except (OSError, sqlite3.Error) as e:
        print(f"webui-admin: could not copy webui.db aside before Open WebUI {version}'s migrations ({e}); "
              "not starting it on this data directory", file=sys.stderr)
        return 1
    if not os.environ.get("WEBUI_SECRET_KEY"):
        # 0.12 refuses to import without one (`open-webui serve` reads or makes .webui_secret_key in
        # its working directory first). This step signs no token: a value for this process only.
        key_file = Path.cwd() / ".webui_secret_key"
        os.environ["WEBUI_SECRET_KEY"] = key_file.read_text() if key_file.is_file() else secrets.token_hex(24)
    os.environ["FROM_INIT_PY"] = "true"  # as `open-webui serve` sets it: the package's paths (static, data)
    import open_webui.config  # noqa: F401 - runs this version's DB migrations (at import, 0.7 to 0.12)

    try:
        done = asyncio.run(ensure_admin(email, password, os.environ.get("WEBUI_ADMIN_NAME") or "Admin"))
    except AdminError as e:
        print(f"webui-admin: {e}", file=sys.stderr)
        return 1
    mark_version(data, version)
    say(f"Open WebUI {version}: {done}")  # not the email: logs go to the volume and RunPod
    return 0


if __name__ == "__main__":
    sys.exit(main())
