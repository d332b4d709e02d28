"""Errors the Pod provider reports to the user (the RunPod API's HTTP errors live in `api_errors.py`).
Each message says what happened and what to do; none carries a secret."""

from __future__ import annotations

import re


class ProviderError(Exception):
    pass


# The one "missing key" message (config loading and the CLI show it too).
MISSING_API_KEY = ("no RunPod API key: run `pulumi config set --secret runpod:apiKey <key>` "
                   "or export RUNPOD_API_KEY")


class MissingApiKey(ProviderError):
    def __init__(self) -> None:
        super().__init__(MISSING_API_KEY)


class NoCapacityAnywhere(ProviderError):
    def __init__(self, reasons: list[str], data_centers: list[str] | None = None) -> None:
        self.reasons = reasons
        where = f" in {', '.join(data_centers)}" if data_centers else ""
        price = " or raise maxPricePerHour," if any("maxPricePerHour" in r for r in reasons) else ""
        super().__init__(f"no GPU type could be placed{where}; RunPod answered, per type: " + "; ".join(reasons)
                         + f". No pod was created. Try again later,{price} or add GPU types to gpuTypes; if every "
                         "type got the same 400 detail, RunPod is refusing the request itself (createPod), "
                         "so read that detail as a problem with the request.")


class CreateOutcomeUnknown(ProviderError):
    """A create failed with a 5xx or no answer, and the pod did not show up in the list in time."""

    def __init__(self, pod_name: str, cause: Exception, waited_s: float) -> None:
        self.pod_name = pod_name
        super().__init__(f"the create of pod {pod_name} failed ({cause}) and no pod of that name appeared in "
                         f"the pod list within {waited_s:.0f}s; RunPod may still have created it, and it would "
                         "bill. Run `pulumi up` again: it deletes any pod left with this name before creating "
                         "another. `pulumi destroy` does not know such a pod: to give up instead, delete it in "
                         "the RunPod console (`make pods` lists this stack's pods).")


class PodNotReady(ProviderError):
    """`kept`: the wait followed a start or an update of a pod in state, which is left as it is."""

    def __init__(self, pod_id: str, reason: str, last_logs: list[str], kept: bool = False) -> None:
        self.pod_id, self.reason, self.last_logs = pod_id, reason, last_logs
        logs = "\n".join("    " + line for line in last_logs) or "    (no log lines)"
        fate = ("the pod is kept and still in state (it may bill): fix the cause and run `pulumi up` again, "
                "or `pulumi destroy` to remove it" if kept else "it was deleted so it does not keep billing")
        super().__init__(f"pod {pod_id} never became ready ({reason}); {fate}. Last log lines:\n{logs}")


class StartRefused(ProviderError):
    def __init__(self, pod_id: str, cause: Exception) -> None:
        self.cause = cause
        super().__init__(f"RunPod refused to start pod {pod_id} ({cause}). A stopped pod restarts only on "
                         "its old host, and that host's GPU was most likely rented out meanwhile "
                         "(https://docs.runpod.io/pods/troubleshooting/zero-gpus). The pod is still there, "
                         "stopped (no GPU billing; the network volume keeps the models) and still in state. "
                         "To place it anew on any free GPU: `pulumi up --replace <URN>`, with the Pod's URN "
                         "from `pulumi stack --show-urns`; or wait and run `pulumi up` again. (The model's "
                         "`wakeWithoutGpu: fail` asked for this message instead of a replacement.)")


class WokeWithoutGpu(ProviderError):
    def __init__(self, pod_id: str, count: int) -> None:
        super().__init__(f"pod {pod_id} started with {count} GPUs: a stopped pod restarts only on its old host, "
                         "and that host's GPU was rented out meanwhile "
                         "(https://docs.runpod.io/pods/troubleshooting/zero-gpus); vLLM cannot run without one. "
                         "The pod is kept and in state. To place it anew on any free GPU: `pulumi up --replace "
                         "<URN>` (URN from `pulumi stack --show-urns`), or stop it (`running: false`) and try "
                         "later. (The model's `wakeWithoutGpu: fail` asked for this message instead of a "
                         "replacement.)")


class DeleteRateLimited(ProviderError):
    """A DELETE kept meeting RunPod's rate limit for longer than the provider waits."""

    def __init__(self, pod_id: str, wait_s: float, waited_s: float, base_url: str, in_state: bool) -> None:
        self.pod_id = pod_id
        again = ("run `pulumi destroy` (or `pulumi up`) again later, or delete it now with"
                 if in_state else "`pulumi destroy` does not know it: delete it with")
        super().__init__(f"could not delete pod {pod_id}: RunPod's rate limit still asked to wait {wait_s:.0f}s after "
                         f"{waited_s:.0f}s of waiting. The pod is still billing; {again} "
                         f"`curl -X DELETE -H \"Authorization: Bearer $RUNPOD_API_KEY\" {base_url}/pods/{pod_id}` "
                         "once the limit has passed, or terminate it in the RunPod console.")


class DeleteTimeout(ProviderError):
    def __init__(self, pod_id: str, seconds: float) -> None:
        super().__init__(f"pod {pod_id} was still present {seconds:.0f}s after DELETE; check it in the "
                         "RunPod console and run `pulumi destroy` again")


# --- RunPod said no, or did not answer: one line each, saying what it means for the pods ---------
def what_runpod_did(err: Exception) -> tuple[str, str]:
    """(what RunPod did, what to do about it) for an API error; the caller adds what it was doing,
    where the pods stand, and the command to run again."""
    from . import api_errors as e

    if not isinstance(err, e.RunPodError):
        return str(err).splitlines()[0], "check the pod in the RunPod console (`make pods` lists this stack's pods)"
    detail = (getattr(err, "detail", None) or getattr(err, "title", None) or str(err))[:200]
    if err.errors:  # a 422's list of what broke the schema is the useful part
        detail += " [" + "; ".join(err.errors)[:400] + "]"
    status = getattr(err, "status", None)
    if isinstance(err, e.AuthError):
        return (f"RunPod refused the API key ({status}: {detail})",
                "set a valid key with `pulumi config set --secret runpod:apiKey <key>`")
    if isinstance(err, e.RateLimitedError):
        # A short Retry-After that kept coming back after the client's retries means "later", not "now".
        wait = _duration(err.retry_after) if err.retry_after and err.retry_after >= 60 else "a minute"
        after = f", retry after {wait}" if err.retry_after else ""
        return f"RunPod rate-limited the request (429{after})", f"wait {wait}"
    if isinstance(err, e.ServerError):
        return f"RunPod failed on its side ({status}: {detail})", "wait a few minutes (status.runpod.io)"
    if isinstance(err, e.TransportError):
        return (f"RunPod could not be reached ({err.method} {err.path}: {_network_reason(err.detail or '')})",
                "check the network connection (and RUNPOD_API_URL if set)")
    if isinstance(err, e.InsufficientFundsError):
        return f"RunPod says the account is out of funds (402: {detail})", "add credit in the RunPod console (Billing)"
    if isinstance(err, e.ConflictError):
        return (f"RunPod refused the action (409: {detail})",
                "check the pod in the RunPod console (a locked pod must be unlocked first)")
    return (f"RunPod rejected the request ({status}: {detail})",
            "check the settings the message names; if they look right, report this line as a runpod-deploy bug")


# The innermost cause in a requests/urllib3 error text, e.g. "[Errno 111] Connection refused".
_REASONS = re.compile(r"\[Errno -?\d+\] [^'\")]+|Remote end closed connection without response|"
                      r"Read timed out|Connection reset by peer|Name or service not known|timed out")


def _network_reason(detail: str) -> str:
    found = _REASONS.findall(detail)
    return found[-1].strip() if found else detail.split(":", 1)[0] or "no answer"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{round(seconds / 3600, 1):g} h"
    if seconds >= 90:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


class RunPodFailed(ProviderError):
    """A RunPod call failed: `while_` says what the provider was doing, `pods` where the pods
    stand now, `command` what to run once the cause is fixed."""

    def __init__(self, cause: Exception, while_: str, pods: str, command: str | None) -> None:
        self.cause = cause
        did, fix = what_runpod_did(cause)
        again = f"run `{command}` again" if command else "run the same `pulumi` command again"
        super().__init__(f"{did} while {while_}; {pods}; {fix}, then {again}")


class PodVanished(ProviderError):
    def __init__(self, pod_id: str) -> None:
        super().__init__(f"pod {pod_id} disappeared while `pulumi up` waited for it to serve (deleted in the RunPod "
                         "console or by another tool); nothing of it is in state or billing; run `pulumi up` to "
                         "create a new one")


class Interrupted(ProviderError):
    """Raised by a wait when the engine cancels (Ctrl-C): see server_hooks."""

    def __init__(self, what: str = "interrupted (Ctrl-C)") -> None:
        super().__init__(what)


class CreateInterrupted(ProviderError):
    def __init__(self, pod_id: str | None) -> None:
        pods = (f"pod {pod_id} was deleted, so nothing bills and nothing is left outside state" if pod_id
                else "no pod was created")
        super().__init__(f"interrupted (Ctrl-C) before the pod was ready; {pods}; run `pulumi up` to create it again")


class CleanupFailed(ProviderError):
    """A create failed, and deleting its pod failed too: the one case where a pod bills outside state."""

    def __init__(self, pod_id: str, pod_name: str, first: Exception, cleanup: Exception) -> None:
        did, fix = what_runpod_did(cleanup)
        first_line = str(first).splitlines()[0] if str(first) else type(first).__name__
        super().__init__(f"creating pod {pod_name} failed ({first_line}), and deleting it failed too: {did}. "
                         f"Pod {pod_id} is NOT in the stack's state and bills until deleted: {fix}, then run "
                         "`pulumi up` again (it deletes pods left with this stack's names before creating), or "
                         "delete it in the RunPod console; `make pods` lists this stack's pods")


class MalformedApiKey(ProviderError):
    pass
