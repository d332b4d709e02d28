"""Open WebUI's preset admin, set with Open WebUI's own code: `python webui_admin.py` with Open
WebUI's venv python, in its env plus WEBUI_ADMIN_EMAIL / WEBUI_ADMIN_PASSWORD (DATA_DIR from env).
Exit 0 when the admin's password is the one given.

Open WebUI creates the WEBUI_ADMIN_* admin only while no user exists (open_webui/main.py lifespan ->
utils/auth.py create_admin_user), so with webui.db kept on the volume a new password would never
apply. The agent runs this before `open-webui serve` when the password changed or there is no DB:
the account with that email gets the password's hash (and the admin role); without it, it is created
as admin. The password is read from env only and never printed. Written for Open WebUI 0.7.2
(models/auths.py, models/users.py, utils/auth.py); helper "gate" owns this file."""

import os

from open_webui.models.auths import Auths
from open_webui.models.users import Users
from open_webui.utils.auth import get_password_hash

email = os.environ["WEBUI_ADMIN_EMAIL"].strip().lower()
password_hash = get_password_hash(os.environ["WEBUI_ADMIN_PASSWORD"])
user = Users.get_user_by_email(email)
if user is not None:
    if not Auths.update_user_password_by_id(user.id, password_hash):
        raise SystemExit("runpod-deploy: Open WebUI did not store the admin password")
    if user.role != "admin":
        Users.update_user_role_by_id(user.id, "admin")
    print("runpod-deploy: Open WebUI admin password set from WEBUI_ADMIN_PASSWORD", flush=True)
else:
    name = os.environ.get("WEBUI_ADMIN_NAME") or "Admin"
    if Auths.insert_new_auth(email=email, password=password_hash, name=name, role="admin") is None:
        raise SystemExit("runpod-deploy: Open WebUI did not create the admin")
    print("runpod-deploy: Open WebUI admin created from WEBUI_ADMIN_EMAIL / WEBUI_ADMIN_PASSWORD", flush=True)
