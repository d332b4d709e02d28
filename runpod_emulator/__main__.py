"""Run the emulator as a process until SIGINT/SIGTERM (`python -m runpod_emulator --help`).

It prints one line of shell assignments, then serves:
    RUNPOD_API_URL=http://127.0.0.1:8765/v2 RUNPOD_PROXY_URL=http://127.0.0.1:8765/proxy/{pod_id}-{port}
    RUNPOD_EMULATOR_ADMIN_URL=http://127.0.0.1:8765/_emulator RUNPOD_API_KEY=emulator-key
(all on one line). Drive it with `AdminClient(RUNPOD_EMULATOR_ADMIN_URL)`.
"""
from __future__ import annotations

import argparse
import signal
import threading

from .emulator import Emulator


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runpod_emulator", description="Local RunPod REST v2 emulator")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-key", action="append", dest="api_keys",
                        help="accepted bearer key (repeatable; default emulator-key)")
    parser.add_argument("--provision-delay", type=float, default=1.0, help="seconds in PROVISIONING")
    parser.add_argument("--start-delay", type=float, default=1.0, help="seconds in STARTING")
    parser.add_argument("--runtime-delay", type=float, default=1.0, help="seconds RUNNING with runtime null")
    parser.add_argument("--ready-delay", type=float, default=2.0,
                        help="seconds after the runtime appears until proxied services answer 200")
    parser.add_argument("--log-interval", type=float, default=0.25, help="seconds between fake startup log lines")
    parser.add_argument("--paginate", type=int, default=None, help="page size for GET /v2/pods (off by default)")
    parser.add_argument("--no-user-agent-check", action="store_true",
                        help="accept urllib's default User-Agent (the live API's Cloudflare refuses it)")
    parser.add_argument("--verbose", action="store_true", help="print an access log to stderr")
    args = parser.parse_args(argv)

    emu = Emulator(api_keys=tuple(args.api_keys or ("emulator-key",)), provision_delay=args.provision_delay,
                   start_delay=args.start_delay, runtime_delay=args.runtime_delay, ready_delay=args.ready_delay,
                   log_interval=args.log_interval, paginate=args.paginate, host=args.host, port=args.port,
                   check_user_agent=not args.no_user_agent_check, verbose=args.verbose)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    emu.start()
    print(f"RUNPOD_API_URL={emu.api_url} RUNPOD_PROXY_URL={emu.proxy_url} "
          f"RUNPOD_EMULATOR_ADMIN_URL={emu.admin_url} RUNPOD_API_KEY={emu.api_key}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
