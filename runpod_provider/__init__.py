"""The `runpod:Pod` dynamic resource and the RunPod REST v2 client under it, one job per file:

- `pod.py`: the Pulumi provider (check, diff, create, read, update, delete) and the `Pod` resource.
- `placement.py`: the GPU walk's policy: which GPU type a create tries next, and why others were passed over.
- `spec.py`: the resource's inputs (`PodSpec`), what a change to each does, and its request bodies.
- `naming.py`: how pods are named, so a stack's pods and a create's leftovers can be found.
- `readiness.py`: waiting until a pod serves (API status, then HTTP probes through the proxy).
- `polling.py`: the one poll-until-deadline loop and its schedules.
- `client.py`: HTTP to RunPod v2 (retries, User-Agent, create adoption, log stream).
- `sse.py`: the log stream's Server-Sent Events, read as they arrive.
- `keys.py`: the API key: where it is found and whether a header can carry it.
- `wire.py`: the v2 request and response models, and the pod statuses.
- `api_errors.py`: RunPod's HTTP error answers as exceptions.
- `provider_errors.py`: what the provider reports to the user, each with the fix.
"""
