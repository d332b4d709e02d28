from types import SimpleNamespace

from open_webui import _db


class Users:
    @staticmethod
    def get_user_by_email(email):
        _db.record("get_user_by_email")
        u = _db.load().get(email)
        return SimpleNamespace(**u) if u else None

    @staticmethod
    def has_users():
        return bool(_db.load())

    @staticmethod
    def update_user_role_by_id(user_id, role):
        users = _db.load()
        for u in users.values():
            if u["id"] == user_id:
                u["role"] = role
        _db.save(users)
