"""The real one runs the DB migrations at import: the fake's DB is created by _db on first use."""

from open_webui import _db

_db.path()
