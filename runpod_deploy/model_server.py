"""`ModelServer`: one model behind vLLM (port 8000) and Open WebUI (port 3000) on one RunPod pod,
with its own generated vLLM key and Open WebUI admin password."""

from __future__ import annotations

import pulumi

from runpod_provider import naming
from runpod_provider.pod import Pod, PodArgs
from runpod_provider.spec import Probe
from startup.agent.protocol import VLLM_PORT, WEBUI_PORT  # the pod agent listens there: one owner

from . import pod_env
from .name_token import NameToken
from .schema import ModelConfig, StackConfig
from .secret import GeneratedSecret

PORTS = [f"{VLLM_PORT}/http", f"{WEBUI_PORT}/http", "22/tcp"]  # 22/tcp: SSH, as with the old scripts


class ModelServer(pulumi.ComponentResource):
    api_url: pulumi.Output[str]
    webui_url: pulumi.Output[str]
    pod_id: pulumi.Output[str]
    gpu_type: pulumi.Output[str]
    cost_per_hr: pulumi.Output[float]
    api_key: pulumi.Output[str]
    webui_admin_password: pulumi.Output[str]

    def __init__(self, name: str, model: ModelConfig, cfg: StackConfig, user_secrets: pulumi.Output | None,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("runpod-deploy:index:ModelServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def user_value(field: str) -> pulumi.Output | None:
            # `pulumi config set --secret --path 'modelSecrets.<model>.<field>' …` overrides a generated value.
            return user_secrets.apply(lambda s: ((s or {}).get(name) or {}).get(field)) if user_secrets else None

        api_key = GeneratedSecret(f"{name}-vllm-api-key", user_value("apiKey"), opts=child)
        admin_password = GeneratedSecret(f"{name}-webui-admin-password", user_value("webuiAdminPassword"), opts=child)
        webui_secret = GeneratedSecret(f"{name}-webui-secret-key", length=48, opts=child)
        name_token = NameToken(f"{name}-pod-name-token", opts=child)

        env = pod_env.startup_env(name, model, cfg)
        secret_env = pod_env.secret_env(
            vllm_api_key=api_key.result, webui_admin_password=admin_password.result,
            webui_secret_key=webui_secret.result,
            hf_token=pulumi.Output.secret(cfg.hf_token) if cfg.hf_token else None)

        pod = Pod(name, PodArgs(
            # The token keeps the orphan sweep off every pod this stack's state did not name.
            name_prefix=name_token.result.apply(lambda t: naming.name_prefix(cfg.project, cfg.stack, name, t)),
            image=cfg.image,
            gpu_type_ids=cfg.gpu_types_for(model),
            gpu_count=model.gpu_count,
            data_center_ids=[cfg.data_center],
            cloud=cfg.cloud,
            network_volume_id=cfg.network_volume_id,
            volume_mount_path=pod_env.WORKSPACE,
            min_cuda_version=cfg.min_cuda_version_for(model),
            start_ssh=cfg.start_ssh,
            container_disk_gb=model.container_disk_gb or cfg.container_disk_gb,
            ports=PORTS + model.extra_ports,
            env=env,
            secret_env=secret_env,
            start_command=pod_env.bootstrap_command(),
            running=model.running,
            readiness=[Probe(port=VLLM_PORT, path="/health"), Probe(port=WEBUI_PORT, path="/health")],
            ready_timeout_s=cfg.ready_timeout_seconds,
            max_price_per_hour=cfg.max_price_for(model),
            ready_stall_s=cfg.ready_stall_seconds,
            wake_without_gpu=model.wake_without_gpu,
        ), opts=child)

        self.pod_id = pod.pod_id
        self.gpu_type = pod.gpu_type
        self.cost_per_hr = pod.cost_per_hr
        self.api_url = pod.urls.apply(lambda u: u[str(VLLM_PORT)] + "/v1")
        self.webui_url = pod.urls.apply(lambda u: u[str(WEBUI_PORT)])
        self.api_key = api_key.result
        self.webui_admin_password = admin_password.result
        self.register_outputs({"api_url": self.api_url, "webui_url": self.webui_url, "pod_id": self.pod_id})
