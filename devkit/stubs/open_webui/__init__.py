"""A fake of the few Open WebUI calls (0.7-style, sync) the admin step (startup/children/webui_admin.py)
makes: users kept in $DATA_DIR/stub-users.json, each call recorded like the other stubs."""
