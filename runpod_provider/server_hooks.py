"""Two fixes to Pulumi's Python dynamic-provider server (`python -m pulumi.dynamic`, the process
that runs `PodProvider`), installed when this package is imported there.

- One line, not a traceback: the server reports every exception with `traceback.format_exc()`
  (`_abort_with_traceback` in pulumi/dynamic/__main__.py). A `ProviderError` already says what
  happened and what to do, so it is reported as its message; any other exception (a bug) keeps
  its traceback.
- Ctrl-C: on the first Ctrl-C the engine sends `Cancel` to every provider and then waits for the
  operations in flight (pkg/resource/deploy/deployment_executor.go), but the server's `Cancel` is
  a no-op, so a create would wait out its readiness deadline (30 min by default). `Cancel` now sets
  `CANCELLED`; the waits watch it, and a create deletes its pod and fails at once.
"""

from __future__ import annotations

import sys
import threading
import traceback
from types import SimpleNamespace

CANCELLED = threading.Event()


def _server_module():
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return main if spec is not None and spec.name == "pulumi.dynamic.__main__" else None


def install() -> None:
    main = _server_module()
    if main is None or getattr(main, "_runpod_deploy_hooks", False):
        return
    from .provider_errors import ProviderError

    def format_exc(*args, **kwargs) -> str:
        exc = sys.exc_info()[1]
        if isinstance(exc, ProviderError):
            return str(exc)
        return traceback.format_exc(*args, **kwargs)

    shim = SimpleNamespace(**{k: getattr(traceback, k) for k in dir(traceback) if not k.startswith("__")})
    shim.format_exc = format_exc
    main.traceback = shim

    servicer = getattr(main, "DynamicResourceProviderServicer", None)
    cancel = getattr(servicer, "Cancel", None)
    if cancel is not None and cancel.__code__.co_argcount == 3:
        main._runpod_deploy_cancelled = CANCELLED

        def Cancel(self, request, context):  # noqa: N802 - the gRPC method's name
            _runpod_deploy_cancelled.set()  # noqa: F821 - resolved in the server module's globals
            return empty_pb2.Empty()  # noqa: F821 - idem

        # The gRPC server holds the bound method since it started, so swap the function's code.
        cancel.__code__ = Cancel.__code__
    main._runpod_deploy_hooks = True
