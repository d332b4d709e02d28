"""The whole flow without a RunPod account: the plain `pulumi` CLI running the real program against
the local RunPod emulator, on a throwaway file backend. `make demo` runs it.

A checkout of the project (devkit.program) gets a `demo` stack configured as Pulumi.dev.yaml (with
the emulator's volume); then, as a user types them: `pulumi preview` → `pulumi up` (with the
provider's progress lines) → `pulumi stack output` → a call through the stand-in proxy → `pulumi destroy`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devkit.cli import Project, isolated_env  # noqa: E402
from devkit.program import DEV_STACK_FILE, VOLUME, checkout, emulator_env  # noqa: E402
from runpod_emulator import Emulator  # noqa: E402

KEY = "demo-runpod-key"


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)), flush=True)


def main() -> int:
    emu = Emulator(api_keys=(KEY,), provision_delay=2, start_delay=1.5, runtime_delay=1.5,
                   ready_delay=2, log_interval=0.4).start()
    tmp = Path(tempfile.mkdtemp(prefix="runpod-deploy-demo-"))
    env = {**isolated_env(tmp, passphrase="demo"), **emulator_env(emu, RUNPOD_DEPLOY_POLL_S="0.5")}
    print(f"emulator: {emu.api_url}   project: {tmp / 'project'}   state: {tmp / 'state'}")
    try:
        project = Project(checkout(tmp / "project"), env=env)
        st = project.stack("demo")
        dev = yaml.safe_load(DEV_STACK_FILE.read_text())["config"]
        st.write_config({**dev, "runpod-deploy:networkVolumeId": VOLUME})
        st.set_config("runpod:apiKey", KEY, secret=True)
        banner("pulumi preview")
        st.preview(echo=True)
        banner("pulumi up --yes")
        st.up(echo=True)
        banner("pulumi stack output")
        print(st.pulumi("stack", "output").stdout)
        outputs = st.outputs()
        banner("GET /v1/models through the (emulated) RunPod proxy, with the generated key")
        pod_id, key = outputs["olmocr_pod_id"].value, outputs["olmocr_api_key"].value
        r = requests.get(emu.proxy_url.format(pod_id=pod_id, port=8000) + "/v1/models",
                         headers={"Authorization": f"Bearer {key}"}, timeout=10)
        print(r.status_code, r.json())
        banner("pulumi destroy --yes")
        st.destroy(echo=True)
        print(f"\npods left in the emulator: {len(emu.pods())}")
    finally:
        emu.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
