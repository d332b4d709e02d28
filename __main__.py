"""runpod-deploy: one RunPod GPU pod per vision model, each serving vLLM's OpenAI API on port 8000
and Open WebUI on port 3000. `pulumi up` creates them; `pulumi destroy` removes them."""

import os
import signal
import threading

import pulumi

from runpod_deploy import config, pricing
from runpod_deploy.model_server import ModelServer

if threading.current_thread() is threading.main_thread():
    # After a Ctrl-C the engine stops this program with SIGINT while it still waits for the pods
    # (pulumi's plugin shutdown, pkg/resource/plugin/plugin.go): the provider reports what happened
    # to them, so end quietly instead of printing a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))

cfg, prices = config.from_pulumi()  # validated, volume, GPU ids and price ceilings checked against RunPod
user_secrets = pulumi.Config(config.NS).get_secret_object("modelSecrets")

servers = {name: ModelServer(name, model, cfg, user_secrets) for name, model in cfg.models.items()}

for name, s in servers.items():
    pulumi.export(f"{name}_api_url", s.api_url)
    pulumi.export(f"{name}_webui_url", s.webui_url)
    pulumi.export(f"{name}_pod_id", s.pod_id)
    pulumi.export(f"{name}_gpu_type", s.gpu_type)
    pulumi.export(f"{name}_cost_per_hr", s.cost_per_hr)
    pulumi.export(f"{name}_max_price_per_hr", cfg.max_price_for(cfg.models[name]))  # the ceiling; None: none
    pulumi.export(f"{name}_idle_stop_minutes", cfg.models[name].idle_stop_minutes)  # None: idle stop off
    pulumi.export(f"{name}_api_key", s.api_key)  # secret: `pulumi stack output --show-secrets`
    pulumi.export(f"{name}_webui_admin_password", s.webui_admin_password)  # secret
# One map for other stacks (StackReference); no secrets in it, so it stays readable.
pulumi.export("models", {
    name: {"api_url": s.api_url, "webui_url": s.webui_url, "pod_id": s.pod_id,
           "gpu_type": s.gpu_type, "cost_per_hr": s.cost_per_hr,
           "served_model_name": cfg.models[name].served_model_name,
           "max_price_per_hr": cfg.max_price_for(cfg.models[name]),
           "idle_stop_minutes": cfg.models[name].idle_stop_minutes}
    for name, s in servers.items()
})
# What the running pods can bill together at most, per hour, from the catalog (also logged at preview).
pulumi.export("worst_case_cost_per_hr", pricing.worst_case(prices))
pulumi.export("webui_admin_email", cfg.webui_admin_email)
