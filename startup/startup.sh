#!/usr/bin/env bash
# runpod-deploy startup script: ONE template for every model pod.
#
# Runs vLLM (OpenAI-compatible API, port 8000) and Open WebUI (port 3000) on a RunPod GPU pod, with
# venvs, model weights and compile caches kept on the network volume at $WORKSPACE. Every per-model
# setting arrives through env (contract: startup/README.md), rendered by runpod_deploy/pod_env.py from
# the config schema (runpod_deploy/schema.py): this script has no defaults of its own for them and
# refuses to start without them. The pod gets this file base64-encoded in env STARTUP_B64; the
# bootstrap command (runpod_deploy/pod_env.py) decodes and runs it, so no API ever quotes a
# character of it.
#
# Secrets (VLLM_API_KEY, HF_TOKEN, WEBUI_ADMIN_PASSWORD, WEBUI_SECRET_KEY) are read from env only and
# reach the one child that needs them through env: never argv, never printed, never logged.
# Do NOT add `set -x` anywhere.
#
# stdout carries progress lines for the provider, exactly:
#   runpod-deploy phase=<prepare|install-vllm|install-webui|download-model|start-vllm|start-webui|ready>
#   runpod-deploy error=<short text>
#   runpod-deploy phase=failed      (after the error= line of a failure that ends setup: the pod idles)
# plus "runpod-deploy: ..." detail lines and service output prefixed "[vllm] " / "[openwebui] ".
#
# No `set -e`: failures are handled explicitly, since background supervisors and `wait` statuses are
# normal control flow here. Needs bash >= 4.4 (mapfile -d) and python3 (JSON, health checks).
set -uo pipefail

# ------------------------------------------------------------------ settings (env)
# Required, from the stack (no defaults here: a missing one stops the script, see main):
REQUIRED_VARS=(WORKSPACE POD_LABEL MODEL_ID SERVED_MODEL_NAME GPU_PROFILES_JSON VLLM_VERSION OPENWEBUI_VERSION)
WORKSPACE="${WORKSPACE:-}"                   # network-volume mount
POD_LABEL="${POD_LABEL:-}"                   # short name for the log and data dirs, e.g. olmocr
MODEL_ID="${MODEL_ID:-}"                     # the model's HF id (what MODEL_LOCAL_DIR holds)
SERVED_MODEL_NAME="${SERVED_MODEL_NAME:-}"   # e.g. olmocr / qwen3-vl (old clients use these)
GPU_PROFILES_JSON="${GPU_PROFILES_JSON:-}"   # GPU type id or "default" -> resolved vLLM settings
VLLM_VERSION="${VLLM_VERSION:-}"
OPENWEBUI_VERSION="${OPENWEBUI_VERSION:-}"
# Optional:
MODEL_LOCAL_DIR="${MODEL_LOCAL_DIR:-}"       # old --local-dir copy of MODEL_ID
VLLM_EXTRA_ARGS_JSON="${VLLM_EXTRA_ARGS_JSON:-[]}"
# Script-level facts and knobs (not stack settings):
VLLM_PYTHON="${VLLM_PYTHON:-3.12}"                # what the vLLM images use
WEBUI_PYTHON="${WEBUI_PYTHON:-3.11}"              # Open WebUI needs >=3.11,<3.13; 3.11 most tested
WEBUI_PERSISTENT_CONFIG="${WEBUI_PERSISTENT_CONFIG:-False}"
# Knobs below keep their defaults in production; the tests shorten them.
VLLM_PORT="${VLLM_PORT:-8000}"
WEBUI_PORT="${WEBUI_PORT:-3000}"
RESTART_BACKOFF_S="${RESTART_BACKOFF_S:-5}"          # first restart delay, doubled per crash
RESTART_BACKOFF_MAX_S="${RESTART_BACKOFF_MAX_S:-300}"
MAX_RESTARTS="${MAX_RESTARTS:-5}"                     # consecutive crashes tolerated per service
RESTART_RESET_S="${RESTART_RESET_S:-900}"             # a run this long resets the crash count
HEALTH_INTERVAL_S="${HEALTH_INTERVAL_S:-5}"
STOP_TIMEOUT_S="${STOP_TIMEOUT_S:-30}"                # SIGTERM grace before SIGKILL
INSTALL_ATTEMPTS="${INSTALL_ATTEMPTS:-3}"             # per install / download
LOCK_WAIT_S="${LOCK_WAIT_S:-1800}"                    # wait for another pod installing the same thing
DOWNLOAD_PROGRESS_S="${DOWNLOAD_PROGRESS_S:-30}"
LOG_MAX_BYTES="${LOG_MAX_BYTES:-104857600}"           # rotate a log to .1 at (re)start above this
RUN_DIR="${RUN_DIR:-/tmp/runpod-deploy}"              # container-local: instance lock, pid files

# ------------------------------------------------------------------ output
STARTUP_LOG=""
emit() { # one line to stdout, and timestamped to startup.log once that exists
  printf '%s\n' "$1"
  if [ -n "$STARTUP_LOG" ]; then
    printf '%(%Y-%m-%dT%H:%M:%S%z)T %s\n' -1 "$1" >>"$STARTUP_LOG" 2>/dev/null || true
  fi
}
say() { emit "runpod-deploy: $*"; }
phase() { emit "runpod-deploy phase=$1"; }
error() { emit "runpod-deploy error=$*"; }
die() { # $1 exit status, then the message
  local code=$1
  shift
  error "$*"
  phase failed # the provider stops waiting at once (runpod_provider/readiness.py)
  exit "$code"
}

prefix_lines() { # $1 prefix, $2 log file: stdin -> stdout as "[prefix] line" and -> the log file
  local line fd
  { exec {fd}>>"$2"; } 2>/dev/null || exec {fd}>/dev/null # an unwritable log must not kill the pipe
  while IFS= read -r line || [ -n "$line" ]; do
    printf '[%s] %s\n' "$1" "$line"
    printf '%(%Y-%m-%dT%H:%M:%S%z)T %s\n' -1 "$line" >&"$fd"
  done
  exec {fd}>&-
}

rotate_log() { # $1 log file: keep one previous generation once it is bigger than LOG_MAX_BYTES
  if [ -f "$1" ] && [ "$(wc -c <"$1")" -gt "$LOG_MAX_BYTES" ]; then
    mv -f "$1" "$1.1"
  fi
}

nap() { # an interruptible sleep: a trapped signal ends `wait` at once. fd 9 (the instance lock)
  # is closed for it: an orphaned sleep must not keep holding the lock.
  local pid
  sleep "$1" 9>&- >/dev/null 2>&1 &
  pid=$!
  wait "$pid"
  kill "$pid" 2>/dev/null
}

CURRENT_CHILD=""
run_logged() { # $1 prefix, $2 log file, $3... command: run it in the background (so a signal can
  # stop it), output prefixed to stdout and appended to the log; returns the command's status
  local prefix=$1 log=$2 rc
  shift 2
  "$@" </dev/null > >(prefix_lines "$prefix" "$log") 2>&1 &
  CURRENT_CHILD=$!
  wait "$CURRENT_CHILD"
  rc=$?
  CURRENT_CHILD=""
  return "$rc"
}

# shellcheck disable=SC2317  # invoked indirectly (trap / run_logged / supervise)
on_setup_signal() { # before the services run: stop the current install/download and leave
  if [ -n "$CURRENT_CHILD" ]; then kill -TERM "$CURRENT_CHILD" 2>/dev/null; fi
  error "stopped by a signal during setup"
  exit 143
}

# ------------------------------------------------------------------ locks
# flock keeps two pods that share the network volume from installing or downloading into the same
# directory at once. If the volume does not support flock, work goes on without it (said so).
LOCK_FD=""
lock_acquire() { # $1 lock file
  LOCK_FD=""
  command -v flock >/dev/null 2>&1 || return 0
  touch "$1" 2>/dev/null || return 0
  exec {LOCK_FD}>>"$1"
  flock -n "$LOCK_FD" && return 0
  say "waiting for another pod holding $1 (up to ${LOCK_WAIT_S}s)"
  flock -w "$LOCK_WAIT_S" "$LOCK_FD" || say "$1 is still locked after ${LOCK_WAIT_S}s; going on without the lock"
}
lock_release() {
  if [ -n "$LOCK_FD" ]; then exec {LOCK_FD}>&-; fi
  LOCK_FD=""
}

# ------------------------------------------------------------------ installs (uv, venvs on the volume)
UV=()
ensure_uv() {
  [ "${#UV[@]}" -gt 0 ] && return 0
  if command -v uv >/dev/null 2>&1; then
    UV=(uv)
    return 0
  fi
  # uv is not on PATH (the runpod/pytorch images do not ship it): bootstrap it with pip, only then.
  # --break-system-packages is tried only if pip refuses a PEP 668 "externally managed" Python.
  say "uv is not on PATH: installing it with python3 -m pip install uv"
  run_logged install-uv "$LOG_DIR/install.log" python3 -m pip install --disable-pip-version-check uv ||
    run_logged install-uv "$LOG_DIR/install.log" python3 -m pip install --disable-pip-version-check --break-system-packages uv ||
    return 1
  hash -r
  if command -v uv >/dev/null 2>&1; then UV=(uv); else UV=(python3 -m uv); fi
}

install_venv() { # $1 name, $2 venv dir, $3 python version, $4... requirements
  # The marker is written last, so an install that was cut short is wiped and redone next time.
  local name=$1 venv=$2 py=$3 marker attempt=1
  shift 3
  marker="$venv/.runpod-deploy-complete"
  if [ -f "$marker" ]; then
    say "$name: $* already installed in $venv"
    return 0
  fi
  ensure_uv || return 1
  mkdir -p "${venv%/*}" || return 1
  lock_acquire "$venv.lock"
  if [ -f "$marker" ]; then
    lock_release
    say "$name: $* was installed meanwhile (another pod) in $venv"
    return 0
  fi
  while :; do
    if [ -e "$venv" ]; then say "$name: removing the unfinished install in $venv"; fi
    rm -rf "$venv"
    say "$name: installing $* into $venv (attempt $attempt/$INSTALL_ATTEMPTS)"
    if run_logged "install-$name" "$LOG_DIR/install.log" "${UV[@]}" venv --python "$py" "$venv" &&
      run_logged "install-$name" "$LOG_DIR/install.log" "${UV[@]}" pip install --python "$venv/bin/python" "$@"; then
      printf '%s\n' "$*" >"$marker"
      lock_release
      say "$name: installed"
      return 0
    fi
    [ "$attempt" -ge "$INSTALL_ATTEMPTS" ] && break
    nap $((RESTART_BACKOFF_S * attempt))
    attempt=$((attempt + 1))
  done
  lock_release
  return 1
}

# ------------------------------------------------------------------ model
# shellcheck disable=SC2317  # invoked indirectly (trap / run_logged / supervise)
with_hf_env() { # run "$@" with the model-cache env. HF_TOKEN is used from env only, never on argv.
  export HF_HOME HF_HUB_CACHE
  # The runpod/pytorch image sets HF_HUB_ENABLE_HF_TRANSFER=1: huggingface_hub 0.x then *requires*
  # the hf_transfer package (absent from our venv) and fails; 1.x ignores it. hf_xet is the fast path.
  export HF_HUB_ENABLE_HF_TRANSFER=0 HF_XET_HIGH_PERFORMANCE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
  unset HF_HUB_OFFLINE
  if [ -z "${HF_TOKEN:-}" ]; then unset HF_TOKEN; fi
  "$@"
}

local_dir_complete() { # $1 dir: config.json, every safetensors weight present, no *.incomplete file
  python3 - "$1" <<'PY'
import json, os, sys
d = sys.argv[1]
if not os.path.isfile(os.path.join(d, "config.json")):
    sys.exit(1)
for _root, _dirs, files in os.walk(d):  # includes .cache/huggingface/download/*.incomplete
    if any(f.endswith(".incomplete") for f in files):
        sys.exit(1)
index = os.path.join(d, "model.safetensors.index.json")
if os.path.isfile(index):
    try:
        with open(index) as f:
            shards = set(json.load(f)["weight_map"].values())
    except (OSError, ValueError, KeyError, AttributeError):
        sys.exit(1)
    sys.exit(0 if shards and all(os.path.isfile(os.path.join(d, s)) for s in shards) else 1)
names = os.listdir(d)
sys.exit(0 if any(n.endswith(".safetensors") and os.path.isfile(os.path.join(d, n)) for n in names) else 1)
PY
}

download_model() { # $1 HF repo id, $2 revision (may be empty). Resumable; a marker makes it once only.
  local repo=$1 rev=$2 dir marker attempt=1 progress dl=() args
  dir="$HF_HUB_CACHE/models--${repo//\//--}"
  marker="$dir/.runpod-deploy-complete@${rev:-default}"
  marker="${marker//[^A-Za-z0-9@._\/-]/_}"
  if [ -f "$marker" ]; then
    say "warm start: $repo${rev:+@$rev} is complete in $HF_HUB_CACHE; no download, vLLM runs offline"
    return 0
  fi
  if [ -x "$VLLM_VENV/bin/hf" ]; then
    dl=("$VLLM_VENV/bin/hf" download)
  elif [ -x "$VLLM_VENV/bin/huggingface-cli" ]; then
    dl=("$VLLM_VENV/bin/huggingface-cli" download)
  else
    error "no hf / huggingface-cli in $VLLM_VENV/bin"
    return 1
  fi
  args=("$repo")
  if [ -n "$rev" ]; then args+=(--revision "$rev"); fi
  mkdir -p "$dir" || return 1
  lock_acquire "$dir/.runpod-deploy.lock"
  if [ -f "$marker" ]; then
    lock_release
    say "$repo was downloaded meanwhile (another pod)"
    return 0
  fi
  (
    exec 9>&-
    lock_release
    while nap "$DOWNLOAD_PROGRESS_S"; do
      say "download-model: $(du -sh "$dir" 2>/dev/null | cut -f1) in $dir so far"
    done
  ) &
  progress=$!
  while :; do
    say "downloading $repo${rev:+ at revision $rev} into $HF_HUB_CACHE (attempt $attempt/$INSTALL_ATTEMPTS)"
    if run_logged download-model "$LOG_DIR/install.log" with_hf_env "${dl[@]}" "${args[@]}"; then
      printf '%s %s\n' "$repo" "${rev:-default}" >"$marker"
      break
    fi
    if [ "$attempt" -ge "$INSTALL_ATTEMPTS" ]; then
      kill "$progress" 2>/dev/null
      lock_release
      return 1
    fi
    nap $((RESTART_BACKOFF_S * attempt))
    attempt=$((attempt + 1))
  done
  kill "$progress" 2>/dev/null
  lock_release
  say "downloaded $repo"
}

# ------------------------------------------------------------------ services
# shellcheck disable=SC2317  # invoked indirectly (trap / run_logged / supervise)
run_vllm() { # exec'd by the supervisor: vLLM gets only the secrets it needs
  unset HF_TOKEN HUGGING_FACE_HUB_TOKEN WEBUI_ADMIN_EMAIL WEBUI_ADMIN_PASSWORD WEBUI_SECRET_KEY STARTUP_B64
  # The key goes through env VLLM_API_KEY (vLLM reads it when --api-key is absent), not argv: argv
  # shows in `ps` and vLLM logs its non-default CLI args at startup.
  export VLLM_API_KEY
  export HF_HOME HF_HUB_CACHE VLLM_CACHE_ROOT
  # Weights were fetched beforehand (marker) or come from MODEL_LOCAL_DIR: vLLM never calls the Hub.
  export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
  exec "$VLLM_VENV/bin/vllm" "${VLLM_ARGS[@]}"
}

# shellcheck disable=SC2317  # invoked indirectly (trap / run_logged / supervise)
run_webui() { # exec'd by the supervisor
  export OPENAI_API_KEY="$VLLM_API_KEY"
  unset VLLM_API_KEY HF_TOKEN HUGGING_FACE_HUB_TOKEN STARTUP_B64 OPENAI_API_BASE_URLS OPENAI_API_KEYS
  export DATA_DIR="$WEBUI_DATA_DIR"
  export OPENAI_API_BASE_URL="http://127.0.0.1:$VLLM_PORT/v1"
  export ENABLE_OPENAI_API=True ENABLE_OLLAMA_API=False WEBUI_AUTH=True ENABLE_SIGNUP=False
  # False: env wins over values Open WebUI saved in its DB at first launch (so a rotated key applies).
  export ENABLE_PERSISTENT_CONFIG="$WEBUI_PERSISTENT_CONFIG"
  export WEBUI_ADMIN_EMAIL WEBUI_ADMIN_PASSWORD
  # `open-webui serve` writes .webui_secret_key into the working directory if WEBUI_SECRET_KEY is
  # unset: running from the per-pod DATA_DIR keeps that file with the pod's data.
  cd "$WEBUI_DATA_DIR" || exit 1
  exec "$WEBUI_VENV/bin/open-webui" serve --host 0.0.0.0 --port "$WEBUI_PORT"
}

stop_child() { # $1 pid, already sent SIGTERM: SIGKILL after STOP_TIMEOUT_S
  local pid=$1 killer rc
  (
    exec 9>&-
    sleep "$STOP_TIMEOUT_S"
    kill -KILL "$pid" 2>/dev/null
  ) </dev/null >/dev/null 2>&1 &
  killer=$!
  while kill -0 "$pid" 2>/dev/null; do
    wait "$pid" 2>/dev/null
    rc=$?
    if [ "$rc" -eq 127 ]; then break; fi # not our child (any more)
  done
  kill "$killer" 2>/dev/null
}

supervise() { # $1 name, $2 log file, $3... command: restart on exit, capped exponential backoff
  local name=$1 log=$2 child="" rc started delay restarts=0 stopping=0 i
  shift 2
  trap 'stopping=1; if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi' TERM
  trap '' INT
  while :; do
    rotate_log "$log"
    started=$SECONDS
    "$@" </dev/null > >(prefix_lines "$name" "$log") 2>&1 &
    child=$!
    printf '%s\n' "$child" >"$RUN_DIR/$POD_LABEL.$name.pid"
    say "$name started (pid $child)"
    wait "$child"
    rc=$?
    if [ "$stopping" = 1 ]; then
      stop_child "$child"
      say "$name stopped"
      return 0
    fi
    child=""
    if [ $((SECONDS - started)) -ge "$RESTART_RESET_S" ]; then restarts=0; fi
    restarts=$((restarts + 1))
    if [ "$restarts" -gt "$MAX_RESTARTS" ]; then
      error "$name keeps failing (exit status $rc after $MAX_RESTARTS restarts): no more restarts; the pod stays up for inspection, see $log"
      phase failed
      return 1
    fi
    delay=$RESTART_BACKOFF_S
    for ((i = 1; i < restarts && delay < RESTART_BACKOFF_MAX_S; i++)); do delay=$((delay * 2)); done
    if [ "$delay" -gt "$RESTART_BACKOFF_MAX_S" ]; then delay=$RESTART_BACKOFF_MAX_S; fi
    error "$name exited with status $rc; restart $restarts/$MAX_RESTARTS in ${delay}s"
    nap "$delay"
    if [ "$stopping" = 1 ]; then return 0; fi
  done
}

http_ok() { # $1 url: true when it answers 200 within 3 s (no proxy: it is a local port)
  if command -v curl >/dev/null 2>&1; then
    [ "$(curl -s -o /dev/null -m 3 --noproxy '*' -w '%{http_code}' "$1" 2>/dev/null)" = 200 ]
  else
    python3 -c 'import sys, urllib.request as u; sys.exit(u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=3).status != 200)' "$1" >/dev/null 2>&1
  fi
}

watch_health() { # prints phase=ready each time vLLM's /health turns 200; notes Open WebUI coming up
  local vllm_up=0 webui_up=0
  trap 'exit 0' TERM
  while :; do
    if http_ok "http://127.0.0.1:$VLLM_PORT/health"; then
      if [ "$vllm_up" = 0 ]; then
        phase ready
        say "vLLM is serving '$SERVED_MODEL_NAME' ($SERVE_MODEL_ID) on port $VLLM_PORT"
        vllm_up=1
      fi
    elif [ "$vllm_up" = 1 ]; then
      say "vLLM /health stopped answering 200"
      vllm_up=0
    fi
    if [ "$WEBUI_ENABLED" = 1 ] && [ "$webui_up" = 0 ] && http_ok "http://127.0.0.1:$WEBUI_PORT/health"; then
      say "Open WebUI is up on port $WEBUI_PORT"
      webui_up=1
    fi
    nap "$HEALTH_INTERVAL_S"
  done
}

# ================================================================== main
trap on_setup_signal TERM INT
phase prepare

[ -n "${VLLM_API_KEY:-}" ] ||
  die 2 "VLLM_API_KEY is not set: refusing to start vLLM without an API key (pass it as a pod secret)"
for var in "${REQUIRED_VARS[@]}"; do
  [ -n "${!var}" ] || die 2 "$var is not set: the pod env must give it (runpod_deploy/pod_env.py renders it; see startup/README.md)"
done
[[ "$POD_LABEL" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$ ]] ||
  die 2 "POD_LABEL must be a short name of letters, digits, '.', '_' or '-' (got '$POD_LABEL')"
[[ "$WORKSPACE" == /* ]] || die 2 "WORKSPACE must be an absolute path (got '$WORKSPACE')"
for var in VLLM_PORT WEBUI_PORT RESTART_BACKOFF_S RESTART_BACKOFF_MAX_S MAX_RESTARTS RESTART_RESET_S \
  STOP_TIMEOUT_S INSTALL_ATTEMPTS LOCK_WAIT_S DOWNLOAD_PROGRESS_S LOG_MAX_BYTES; do
  [[ "${!var}" =~ ^[0-9]+$ ]] || die 2 "$var must be a whole number (got '${!var}')"
done
[[ "$HEALTH_INTERVAL_S" =~ ^[0-9]+([.][0-9]+)?$ ]] || die 2 "HEALTH_INTERVAL_S must be a number of seconds"
for var in VLLM_VERSION OPENWEBUI_VERSION VLLM_PYTHON WEBUI_PYTHON; do
  [[ "${!var}" =~ ^[A-Za-z0-9][A-Za-z0-9.+_-]*$ ]] || die 2 "$var is not a version (got '${!var}')"
done
command -v python3 >/dev/null 2>&1 || die 2 "python3 is required"

LOG_DIR="$WORKSPACE/logs/$POD_LABEL"
mkdir -p "$LOG_DIR" "$RUN_DIR" || die 1 "cannot create $LOG_DIR or $RUN_DIR"
STARTUP_LOG="$LOG_DIR/startup.log"
rotate_log "$STARTUP_LOG"

# RunPod may run the start command twice: a second copy in the same container leaves at once. The
# lock (fd 9) is container-local, and the services inherit it, so it holds while any of them runs.
if command -v flock >/dev/null 2>&1; then
  exec 9>>"$RUN_DIR/$POD_LABEL.lock"
  if ! flock -n 9; then
    say "another startup script for '$POD_LABEL' already runs in this container; this copy exits"
    exit 0
  fi
fi
say "pod '$POD_LABEL': model $MODEL_ID served as '$SERVED_MODEL_NAME'; workspace $WORKSPACE; vLLM $VLLM_VERSION; Open WebUI $OPENWEBUI_VERSION"

# Model cache. The team's old pods set HF_HOME=/workspace/hf_cache, so their Hub cache (and the blobs
# that old `--local-dir` copies may symlink to) lives in /workspace/hf_cache/hub/models--*. Setting
# HF_HUB_CACHE=$WORKSPACE/hf_cache instead would put new models one level up and never see the old
# ones (HF_HUB_CACHE defaults to $HF_HOME/hub:
# https://huggingface.co/docs/huggingface_hub/package_reference/environment_variables#hfhubcache), so
# both are set to the old layout. HF_HOME must be set explicitly anyway: the runpod/pytorch image sets
# HF_HOME=/workspace/.cache/huggingface (https://github.com/runpod/containers, official-templates/base/Dockerfile).
HF_HOME="$WORKSPACE/hf_cache"
HF_HUB_CACHE="$HF_HOME/hub"
VLLM_VENV="$WORKSPACE/venvs/vllm-$VLLM_VERSION"
WEBUI_VENV="$WORKSPACE/venvs/openwebui-$OPENWEBUI_VERSION"
# One Open WebUI data dir per pod: both pods share the volume, and two SQLite writers corrupt webui.db.
WEBUI_DATA_DIR="$WORKSPACE/open-webui/$POD_LABEL"

# Open WebUI only with a preset admin: otherwise the first visitor of the public URL becomes admin.
WEBUI_ENABLED=1
if [ -z "${WEBUI_ADMIN_EMAIL:-}" ] || [ -z "${WEBUI_ADMIN_PASSWORD:-}" ]; then
  WEBUI_ENABLED=0
  error "WEBUI_ADMIN_EMAIL and WEBUI_ADMIN_PASSWORD are not both set: Open WebUI will not start (first signup would become admin)"
elif [ -z "${WEBUI_SECRET_KEY:-}" ]; then
  say "WEBUI_SECRET_KEY is not set: Open WebUI keeps a generated key in $WEBUI_DATA_DIR/.webui_secret_key"
fi

# GPU -> profile. GPU_PROFILES_JSON maps GPU type ids (and "default") to complete settings; the
# Python below picks one. See startup/README.md.
GPU_LINE=""
if command -v nvidia-smi >/dev/null 2>&1; then
  GPU_LINE="$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null)" || GPU_LINE=""
  GPU_LINE="${GPU_LINE%%$'\n'*}"
fi
[ -n "$GPU_LINE" ] || error "nvidia-smi reported no GPU; only a \"default\" profile can apply"

SELECTION="$RUN_DIR/$POD_LABEL.profile"
if ! GPU_LINE="$GPU_LINE" GPU_PROFILES_JSON="$GPU_PROFILES_JSON" VLLM_EXTRA_ARGS_JSON="$VLLM_EXTRA_ARGS_JSON" \
  python3 - >"$SELECTION" 2>"$SELECTION.err" <<'PY'; then
# Profile choice: the key equal to the GPU name nvidia-smi reports (case-insensitive; RunPod GPU type
# ids such as "NVIDIA GeForce RTX 4090" are those names), else "default". No guess by memory size: a
# card without its own key gets "default", which is what the config means for it. The stack sends
# every profile already laid over "default", with its checkpoint and revision filled in
# (runpod_deploy/schema.py ModelConfig.resolved_profiles), so nothing is merged or defaulted here.
# Output: NUL-separated fields: key, reason, gpu name, gpu MiB, gpu slug, model id, revision,
# max_model_len, gpu_memory_utilization, then the vLLM args (profile extraArgs + VLLM_EXTRA_ARGS_JSON).
import json, os, re, sys

# The GpuProfile fields of runpod_deploy/schema.py: a field the schema gained but this script does
# not use yet stops the start, rather than being dropped without a word.
REQUIRED = ("modelId", "maxModelLen", "gpuMemoryUtilization", "extraArgs")
FIELDS = set(REQUIRED) | {"revision"}


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(2)


def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def args_list(value, what):
    if not isinstance(value, list):
        fail(f"{what} must be a JSON list")
    out = []
    for a in value:
        if isinstance(a, str) or number(a):
            out.append(str(a))
        else:
            fail(f"{what} items must be strings, got {a!r}")
    if any("\0" in a for a in out):
        fail(f"{what} items must not contain NUL")
    return out


try:
    profiles = json.loads(os.environ["GPU_PROFILES_JSON"])
except ValueError as e:
    fail(f"GPU_PROFILES_JSON is not valid JSON: {e}")
if not isinstance(profiles, dict) or not profiles:
    fail("GPU_PROFILES_JSON must be a non-empty JSON object")
for key, prof in profiles.items():
    if not isinstance(prof, dict):
        fail(f"GPU_PROFILES_JSON: profile {key!r} must be a JSON object")
    unknown = set(prof) - FIELDS
    if unknown:
        fail(f"GPU_PROFILES_JSON: profile {key!r} has fields this script does not use: {sorted(unknown)}")
    missing = [f for f in REQUIRED if f not in prof]
    if missing:
        fail(f"GPU_PROFILES_JSON: profile {key!r} lacks {missing} (the stack sends complete profiles)")
try:
    extra = args_list(json.loads(os.environ.get("VLLM_EXTRA_ARGS_JSON") or "[]"), "VLLM_EXTRA_ARGS_JSON")
except ValueError as e:
    fail(f"VLLM_EXTRA_ARGS_JSON is not valid JSON: {e}")

line = os.environ.get("GPU_LINE", "").strip()
name, mib = line, None
if "," in line:
    head, _, tail = line.rpartition(",")
    name = head.strip()
    m = re.match(r"\s*(\d+)", tail)
    mib = int(m.group(1)) if m else None

choice = reason = None
if name:
    for key in profiles:
        if key != "default" and key.strip().lower() == name.lower():
            choice, reason = key, "exact GPU name"
            break
if choice is None and "default" in profiles:
    choice, reason = "default", "no profile named after this GPU"
if choice is None:
    fail(f"no GPU profile for {name or 'an undetected GPU'!r} ({mib} MiB) and no \"default\" profile")

prof = profiles[choice]
model_id = prof["modelId"]
if not (isinstance(model_id, str) and model_id):
    fail(f"GPU profile {choice!r}: modelId must be a non-empty string")
revision = prof.get("revision") or ""
if not isinstance(revision, str):
    fail(f"GPU profile {choice!r}: revision must be a string")
mml = prof["maxModelLen"]
if not (isinstance(mml, int) and not isinstance(mml, bool) and mml > 0):
    fail(f"GPU profile {choice!r}: maxModelLen must be a positive integer")
gmu = prof["gpuMemoryUtilization"]
if not (number(gmu) and 0 < gmu <= 1):
    fail(f"GPU profile {choice!r}: gpuMemoryUtilization must be a number in (0, 1]")
vllm_args = args_list(prof["extraArgs"], f"GPU profile {choice!r} extraArgs") + extra
slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown-gpu"
fields = [choice, reason, name or "unknown", "" if mib is None else str(mib), slug, model_id,
          revision, str(mml), str(gmu)] + vllm_args
sys.stdout.write("".join(f + "\0" for f in fields))
PY
  die 2 "$(tr '\n' ' ' <"$SELECTION.err" | cut -c1-400)"
fi
mapfile -d '' -t SEL <"$SELECTION"
PROFILE_KEY="${SEL[0]}"
GPU_NAME="${SEL[2]}"
GPU_SLUG="${SEL[4]}"
SERVE_MODEL_ID="${SEL[5]}"
SERVE_REVISION="${SEL[6]}"
MAX_MODEL_LEN="${SEL[7]}"
GPU_MEM_UTIL="${SEL[8]}"
EXTRA_ARGS=("${SEL[@]:9}")
say "GPU '$GPU_NAME' (${SEL[3]:-?} MiB) -> profile '$PROFILE_KEY' (${SEL[1]}): model $SERVE_MODEL_ID${SERVE_REVISION:+@$SERVE_REVISION}, max_model_len $MAX_MODEL_LEN, gpu_memory_utilization $GPU_MEM_UTIL"
VLLM_CACHE_ROOT="$WORKSPACE/vllm_cache/$GPU_SLUG"   # per GPU: compiled kernels are arch-specific

phase install-vllm
install_venv vllm "$VLLM_VENV" "$VLLM_PYTHON" "vllm==$VLLM_VERSION" ||
  die 1 "vLLM $VLLM_VERSION install failed; see $LOG_DIR/install.log"

phase install-webui
if [ "$WEBUI_ENABLED" = 1 ]; then
  if ! install_venv openwebui "$WEBUI_VENV" "$WEBUI_PYTHON" "open-webui==$OPENWEBUI_VERSION"; then
    error "Open WebUI $OPENWEBUI_VERSION install failed; going on with vLLM only (see $LOG_DIR/install.log)"
    WEBUI_ENABLED=0
  fi
else
  say "Open WebUI install skipped (disabled)"
fi

phase download-model
SERVE_REF=""
if [ -n "$MODEL_LOCAL_DIR" ]; then
  if [ "$SERVE_MODEL_ID" != "$MODEL_ID" ]; then
    say "MODEL_LOCAL_DIR not used: it holds $MODEL_ID, but this GPU's profile serves $SERVE_MODEL_ID"
  elif local_dir_complete "$MODEL_LOCAL_DIR"; then
    SERVE_REF="$MODEL_LOCAL_DIR"
    say "serving the complete local copy $MODEL_LOCAL_DIR; no download"
  else
    say "MODEL_LOCAL_DIR $MODEL_LOCAL_DIR is missing or incomplete; using the Hub cache"
  fi
fi
if [ -z "$SERVE_REF" ]; then
  download_model "$SERVE_MODEL_ID" "$SERVE_REVISION" ||
    die 1 "download of $SERVE_MODEL_ID failed; see $LOG_DIR/install.log"
  SERVE_REF="$SERVE_MODEL_ID"
fi

mkdir -p "$VLLM_CACHE_ROOT" "$WEBUI_DATA_DIR" || die 1 "cannot create $VLLM_CACHE_ROOT or $WEBUI_DATA_DIR"
chmod 700 "$WEBUI_DATA_DIR" 2>/dev/null || true

VLLM_ARGS=(serve "$SERVE_REF" --host 0.0.0.0 --port "$VLLM_PORT" --served-model-name "$SERVED_MODEL_NAME")
if [ "$SERVE_MODEL_ID" != "$SERVED_MODEL_NAME" ]; then VLLM_ARGS+=("$SERVE_MODEL_ID"); fi
if [ "$SERVE_REF" = "$SERVE_MODEL_ID" ] && [ -n "$SERVE_REVISION" ]; then VLLM_ARGS+=(--revision "$SERVE_REVISION"); fi
VLLM_ARGS+=(--max-model-len "$MAX_MODEL_LEN" --gpu-memory-utilization "$GPU_MEM_UTIL" "${EXTRA_ARGS[@]}")

# From here on SIGTERM/SIGINT are forwarded to the services, which get STOP_TIMEOUT_S to exit.
STOPPING=0
trap 'STOPPING=1' TERM INT
SUPERVISORS=()
phase start-vllm
say "vllm ${VLLM_ARGS[*]}"
supervise vllm "$LOG_DIR/vllm.log" run_vllm &
SUPERVISORS+=("$!")
phase start-webui
if [ "$WEBUI_ENABLED" = 1 ]; then
  say "open-webui serve --host 0.0.0.0 --port $WEBUI_PORT (DATA_DIR $WEBUI_DATA_DIR)"
  supervise openwebui "$LOG_DIR/openwebui.log" run_webui &
  SUPERVISORS+=("$!")
else
  error "Open WebUI not started (disabled: see the lines above)"
fi
watch_health &
WATCHER=$!

# Never exit on our own: a service that gave up stays down, but the pod stays inspectable.
while [ "$STOPPING" = 0 ]; do nap 60; done
say "stopping: SIGTERM to the services"
kill -TERM "$WATCHER" "${SUPERVISORS[@]}" 2>/dev/null
for pid in "${SUPERVISORS[@]}" "$WATCHER"; do wait "$pid" 2>/dev/null; done
say "stopped"
exit 0
