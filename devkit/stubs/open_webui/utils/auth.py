import hashlib


def get_password_hash(password: str) -> str:
    return "stub:" + hashlib.sha256(password.encode()).hexdigest()


def verify_password(password: str, hashed: str) -> bool:
    return get_password_hash(password) == hashed
