from open_webui import _db


class Auths:
    @staticmethod
    def update_user_password_by_id(user_id, password_hash):
        users = _db.load()
        for u in users.values():
            if u["id"] == user_id:
                u["password"] = password_hash
        _db.save(users)
        return True

    @staticmethod
    def insert_new_auth(email, password, name, role):
        users = _db.load()
        users[email] = {"id": f"user-{len(users) + 1}", "role": role, "password": password, "name": name}
        _db.save(users)
        return users[email]

    @staticmethod
    def authenticate_user(email, verify):
        u = _db.load().get(email)
        return u if u and verify(u["password"]) else None
