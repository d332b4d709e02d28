"""Run by the REAL vLLM venv's python: vLLM's own OpenAI API app, built as `vllm serve` builds it, on CPU
with no model, served by uvicorn on 127.0.0.1.

    python vllm_gate_app.py PORT [--no-gate]

The app is vLLM 0.11.2's `build_app(args)` (every router, vLLM's own AuthenticationMiddleware from
env VLLM_API_KEY, the SageMaker routes, the /metrics mount, and `--middleware gate.Gate` unless
--no-gate), from args parsed by vLLM's own `make_arg_parser`. What needs a GPU is stood in for at
the app's state, where `init_app_state` would put vLLM's serving objects: an engine that is healthy,
a model list, and chat/completion handlers that stream a few tokens (with a pause, so a proxy that
buffered would show) and record each request they get in $GATE_APP_RECORD (JSON lines) — what
reached "vLLM" through the gate. Nothing else is stood in for: a route whose state is missing
answers 500, which still says the request got past every middleware.

Prints one line `ROUTES <json>` (every route of the app: path, methods) before serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from http import HTTPStatus

from vllm import platforms
from vllm.platforms.cpu import CpuPlatform

platforms.current_platform = CpuPlatform()

import uvicorn  # noqa: E402
from starlette.routing import Mount  # noqa: E402
from vllm.entrypoints.openai import api_server  # noqa: E402
from vllm.entrypoints.openai.cli_args import make_arg_parser  # noqa: E402
from vllm.entrypoints.openai.protocol import (  # noqa: E402
    ChatCompletionResponse,
    CompletionResponse,
    ErrorInfo,
    ErrorResponse,
    ModelCard,
    ModelList,
)
from vllm.utils.argparse_utils import FlexibleArgumentParser  # noqa: E402

SERVED = "olmocr"
TOKENS = ["Hel", "lo", " from", " the", " stand", "-in"]


def record(kind: str, request) -> None:
    path = os.environ.get("GATE_APP_RECORD")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"kind": kind, "request": request.model_dump(mode="json")}) + "\n")


class Engine:
    async def check_health(self) -> None:
        return None


class Models:
    async def show_available_models(self) -> ModelList:
        return ModelList(data=[ModelCard(id=SERVED, root=SERVED, max_model_len=16384)])


def _chunk(i: int, text: str, chat: bool) -> str:
    if chat:
        choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text, "finish_reason": None}
        obj = "text_completion"
    return "data: " + json.dumps({"id": "stand-in", "object": obj, "created": 0, "model": SERVED,
                                  "choices": [choice], "seq": i}) + "\n\n"


async def _stream(chat: bool):
    for i, text in enumerate(TOKENS):
        yield _chunk(i, text, chat)
        await asyncio.sleep(0.2)
    yield "data: [DONE]\n\n"


class Base:
    def create_error_response(self, message: str, err_type: str = "BadRequestError",
                              status_code: HTTPStatus = HTTPStatus.BAD_REQUEST) -> ErrorResponse:
        return ErrorResponse(error=ErrorInfo(message=message, type=err_type, code=status_code.value))


class Chat:
    async def create_chat_completion(self, request, raw_request):
        record("chat", request)
        if request.stream:
            return _stream(True)
        return ChatCompletionResponse(
            id="stand-in", created=0, model=SERVED,
            choices=[{"index": 0, "message": {"role": "assistant", "content": "".join(TOKENS)},
                      "finish_reason": "stop"}],
            usage={"prompt_tokens": 1, "completion_tokens": len(TOKENS), "total_tokens": 1 + len(TOKENS)})


class Completion:
    async def create_completion(self, request, raw_request):
        record("completion", request)
        if request.stream:
            return _stream(False)
        return CompletionResponse(
            id="stand-in", created=0, model=SERVED,
            choices=[{"index": 0, "text": "".join(TOKENS), "finish_reason": "stop"}],
            usage={"prompt_tokens": 1, "completion_tokens": len(TOKENS), "total_tokens": 1 + len(TOKENS)})


def build(gate: bool):
    argv = ["--model", "stand-in/model", "--served-model-name", SERVED, "--host", "127.0.0.1"]
    if gate:
        argv += ["--middleware", "gate.Gate"]
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    app = api_server.build_app(args)
    state = app.state
    state.engine_client = Engine()
    state.log_stats = False
    state.enable_server_load_tracking = False
    state.openai_serving_models = Models()
    state.openai_serving_chat = Chat()
    state.openai_serving_completion = Completion()
    state.openai_serving_tokenization = Base()  # what vLLM's routes build their error answers with
    state.server_load_metrics = 0
    for name in ("openai_serving_responses", "anthropic_serving_messages", "openai_serving_pooling",
                 "openai_serving_embedding", "openai_serving_scores", "openai_serving_classification",
                 "openai_serving_transcription", "openai_serving_translation", "serving_tokens"):
        setattr(state, name, None)  # as init_app_state leaves them for a model without those tasks
    return app


def routes(app) -> list[dict]:
    """Every route the app answers, with included routers flattened (FastAPI >= 0.16x keeps an
    included router as one `_IncludedRouter` entry in app.routes)."""
    out: list[dict] = []

    def walk(items, prefix: str) -> None:
        for r in items:
            if hasattr(r, "original_router"):
                walk(r.original_router.routes, prefix + (getattr(r.include_context, "prefix", "") or ""))
            elif isinstance(r, Mount):
                out.append({"path": prefix + r.path, "methods": [], "mount": True})
            else:
                out.append({"path": prefix + r.path, "methods": sorted(getattr(r, "methods", None) or []),
                            "mount": False})

    walk(app.routes, "")
    return out


def main() -> None:
    port = int(sys.argv[1])
    gate = "--no-gate" not in sys.argv
    t0 = time.monotonic()
    app = build(gate)
    middleware = [getattr(m.cls, "__name__", str(m.cls)) for m in app.user_middleware]
    print("ROUTES " + json.dumps({"routes": routes(app), "middleware": middleware,
                                  "build_s": round(time.monotonic() - t0, 1)}), flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")


if __name__ == "__main__":
    main()
