"""A local RunPod REST v2 emulator for tests, benchmarks and demos.

`Emulator` runs it in-process; `AdminClient` drives one started with `python -m runpod_emulator`.
"""
from .admin import AdminClient
from .emulator import Emulator
from .placement import CAPACITY_DETAIL

__all__ = ["Emulator", "AdminClient", "CAPACITY_DETAIL"]
