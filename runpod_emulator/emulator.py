"""`Emulator`: a local RunPod REST v2 service, its proxy stand-in and its controls, in one object.

    emu = Emulator(api_keys=("test-key",), provision_delay=0.2, start_delay=0.2,
                   runtime_delay=0.2, ready_delay=0.3, log_interval=0.05).start()
    emu.api_url      # http://127.0.0.1:PORT/v2
    emu.proxy_url    # http://127.0.0.1:PORT/proxy/{pod_id}-{port}   (str.format template)
    emu.admin_url    # http://127.0.0.1:PORT/_emulator
    ...
    emu.stop()
"""
from __future__ import annotations

import threading
from typing import Optional

from .control import Control
from .faults import FaultBook
from .messages import ApiError
from .proxy import Proxy
from .routes import Api
from .server import EmulatorHTTPServer, Recorder
from .state import World


class Emulator:
    def __init__(self, api_keys=("emulator-key",), provision_delay: float = 1.0, start_delay: float = 1.0,
                 runtime_delay: float = 1.0, ready_delay: float = 2.0, log_interval: float = 0.25,
                 paginate: Optional[int] = None, host: str = "127.0.0.1", port: int = 0,
                 check_user_agent: bool = True, verbose: bool = False):
        if isinstance(api_keys, str):
            api_keys = (api_keys,)
        self.api_keys = tuple(api_keys)
        if not self.api_keys:
            raise ValueError("at least one API key is needed")
        self.host, self.port = host, port
        self.check_user_agent = check_user_agent  # 403 "Cloudflare 1010" for urllib's default UA
        self.verbose = verbose
        self.world = World(provision_delay=provision_delay, start_delay=start_delay,
                           runtime_delay=runtime_delay, ready_delay=ready_delay, log_interval=log_interval)
        self.faults = FaultBook()
        self.recorder = Recorder()
        self.stop_event = threading.Event()
        self.api = Api(self.world, self.faults, self.stop_event, paginate=paginate)
        self.proxy = Proxy(self.world)
        self.control = Control(self)
        self._server: Optional[EmulatorHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # ----- running -------------------------------------------------------------------------------

    def start(self) -> "Emulator":
        if self._server is not None:
            return self
        self.stop_event.clear()
        self._server = EmulatorHTTPServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"runpod-emulator:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is None:
            return
        self.stop_event.set()  # ends log streams and pending delay faults
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v2"

    @property
    def proxy_url(self) -> str:
        return f"{self.base_url}/proxy/{{pod_id}}-{{port}}"

    @property
    def admin_url(self) -> str:
        return f"{self.base_url}/_emulator"

    @property
    def api_key(self) -> str:
        return self.api_keys[0]

    # ----- inspection ------------------------------------------------------------------------------

    def pods(self) -> list[dict]:
        """Live (non-deleted) pods in API shape, env included; also those a list-lag hides."""
        return self.world.all_pods()

    @property
    def requests(self) -> list[dict]:
        """Every /v2 call in arrival order: {"method","path","query","status","ts"}; status None = dropped."""
        return self.recorder.entries()

    def state(self) -> dict:
        return {"pods": self.pods(), "volumes": self.world.list_volumes(), "requests": self.requests,
                "faults": self.faults.pending()}

    # ----- controls --------------------------------------------------------------------------------

    def inject(self, **fault) -> dict:
        """Add a fault (see `runpod_emulator.faults`); returns it as a dict. Raises ValueError/TypeError."""
        return self.faults.add(**fault).as_dict()

    def set_stock(self, data_center: str, gpu_id: str, level: str):
        self.world.set_stock(data_center, gpu_id, level)

    def set_service(self, pod_id: Optional[str] = None, ready: bool = True):
        """ready=False: that pod's (or, with pod_id None, every pod's, future ones included) proxied
        services never become ready (502). pod_id None also clears per-pod settings."""
        self._by_pod_id(self.world.set_service, pod_id, ready)

    def delete_pod_out_of_band(self, pod_id: str):
        self._by_pod_id(self.world.delete_out_of_band, pod_id)

    def stop_pod_out_of_band(self, pod_id: str):
        self._by_pod_id(self.world.stop_out_of_band, pod_id)

    def reset(self):
        """Back to a fresh world: no pods, seeded volumes, default stock, no faults, no requests."""
        self.world.reset()
        self.faults.clear()
        self.recorder.clear()

    @staticmethod
    def _by_pod_id(operation, pod_id, *args):
        try:
            operation(pod_id, *args)
        except ApiError as exc:
            if exc.status == 404:
                raise KeyError(pod_id) from None
            raise
