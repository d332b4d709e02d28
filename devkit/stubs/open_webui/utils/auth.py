import hashlib


def get_password_hash(password: str) -> str:
    return "stub:" + hashlib.sha256(password.encode()).hexdigest()
