"""Errors the Pod provider reports to the user (the RunPod API's HTTP errors live in `api_errors.py`).
Each message says what happened and what to do; none carries a secret."""

from __future__ import annotations


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
        super().__init__(f"no GPU type could be placed{where}; RunPod answered, per type: " + "; ".join(reasons)
                         + ". No pod was created. Try again later, or add GPU types to gpuTypes; if every "
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
        super().__init__(f"RunPod refused to start pod {pod_id} ({cause}). A stopped pod restarts only on "
                         "its old host, and that host's GPU was most likely rented out meanwhile "
                         "(https://docs.runpod.io/pods/troubleshooting/zero-gpus). The pod is still there, "
                         "stopped (no GPU billing; the network volume keeps the models) and still in state. "
                         "To place it anew on any free GPU: `pulumi up --replace <URN>`, with the Pod's URN "
                         "from `pulumi stack --show-urns`; or wait and run `pulumi up` again.")


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
