"""A fake of the few Open WebUI 0.7.2 calls the agent's admin step (startup/agent/webui_admin.py)
makes: users kept in $DATA_DIR/stub-users.json, each call recorded like the other stubs."""
