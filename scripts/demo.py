"""The whole flow without a RunPod account: the real program and the real Pulumi engine against the
local RunPod emulator, on a throwaway file backend. `make demo` runs it.

preview → up (with the provider's progress lines) → outputs → a call through the stand-in proxy → destroy.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pulumi import automation as auto  # noqa: E402

from runpod_deploy.run import stack as make_stack  # noqa: E402
from runpod_emulator import Emulator  # noqa: E402


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)), flush=True)


def main() -> int:
    emu = Emulator(api_keys=("demo-runpod-key",), provision_delay=2, start_delay=1.5, runtime_delay=1.5,
                   ready_delay=2, log_interval=0.4).start()
    tmp = Path(tempfile.mkdtemp(prefix="runpod-deploy-demo-"))
    env = {"RUNPOD_API_URL": emu.api_url, "RUNPOD_PROXY_URL": emu.proxy_url, "RUNPOD_DEPLOY_POLL_S": "0.5"}
    os.environ.update(env)
    os.environ.update(PULUMI_BACKEND_URL=f"file://{tmp / 'state'}", PULUMI_CONFIG_PASSPHRASE="demo",
                      PULUMI_HOME=str(tmp / "home"))
    (tmp / "state").mkdir()
    (tmp / "project").mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", tmp / "project" / "Pulumi.yaml")
    dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    dev["runpod-deploy:networkVolumeId"] = "fuzzvol01eu"  # the emulator's volume in EU-RO-1
    (tmp / "project" / "Pulumi.demo.yaml").write_text(yaml.safe_dump({"config": dev}))
    print(f"emulator: {emu.api_url}   state: {tmp / 'state'}")
    try:
        st = make_stack("demo", work_dir=tmp / "project", env=env)
        st.set_config("runpod:apiKey", auto.ConfigValue("demo-runpod-key", secret=True))
        banner("pulumi preview")
        st.preview(on_output=print)
        banner("pulumi up")
        up = st.up(on_output=print)
        banner("outputs")
        for k in sorted(up.outputs):
            o = up.outputs[k]
            print(f"{k:30} {'[secret]' if o.secret else o.value}")
        banner("GET /v1/models through the (emulated) RunPod proxy, with the generated key")
        pod_id, key = up.outputs["olmocr_pod_id"].value, up.outputs["olmocr_api_key"].value
        r = requests.get(emu.proxy_url.format(pod_id=pod_id, port=8000) + "/v1/models",
                         headers={"Authorization": f"Bearer {key}"}, timeout=10)
        print(r.status_code, r.json())
        banner("pulumi destroy")
        st.destroy(on_output=print)
        print(f"\npods left in the emulator: {len(emu.pods())}")
    finally:
        emu.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
