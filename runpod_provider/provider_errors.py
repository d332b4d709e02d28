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
    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        hint = "Add GPU types to gpuTypes, or try again later"
        if any("maxPricePerHour" in r for r in reasons):
            hint += ", or raise maxPricePerHour"
        super().__init__("no GPU type could be placed: " + "; ".join(reasons) + f". {hint}.")


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
    def __init__(self, pod_id: str, reason: str, last_logs: list[str]) -> None:
        self.pod_id, self.reason, self.last_logs = pod_id, reason, last_logs
        logs = "\n".join("    " + line for line in last_logs) or "    (no log lines)"
        super().__init__(f"pod {pod_id} never became ready ({reason}); it was deleted so it does not "
                         f"keep billing. Last log lines:\n{logs}")


class StartRefused(ProviderError):
    def __init__(self, pod_id: str, cause: Exception) -> None:
        super().__init__(f"RunPod refused to start pod {pod_id} ({cause}). A stopped pod can only restart "
                         "on its old host, whose GPU may be rented out. Replace the pod to place it anew: "
                         "`pulumi up --replace <the pod's URN>`.")


class DeleteTimeout(ProviderError):
    def __init__(self, pod_id: str, seconds: float) -> None:
        super().__init__(f"pod {pod_id} was still present {seconds:.0f}s after DELETE; check it in the "
                         "RunPod console and run `pulumi destroy` again")
