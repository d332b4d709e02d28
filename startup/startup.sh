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
# Idle stop (optional; see the "idle stop" functions below):
IDLE_STOP_MINUTES="${IDLE_STOP_MINUTES:-}"            # from the model's idleStopMinutes; empty: off
IDLE_STOP_MINUTE_S="${IDLE_STOP_MINUTE_S:-60}"        # seconds in one of those minutes (tests: 1)
IDLE_STOP_CHECK_S="${IDLE_STOP_CHECK_S:-30}"          # how often vLLM's /metrics is read
IDLE_STOP_API_URL="${IDLE_STOP_API_URL:-https://api.runpod.io/v2}"   # RunPod REST v2 (tests: the emulator)
# RunPod's pod-scoped key: kept in a shell variable, out of every child's env (vLLM, Open WebUI, the
# installers); only the stop request gets it.
IDLE_STOP_KEY="${RUNPOD_API_KEY:-}"
unset RUNPOD_API_KEY
VENV_ROOT="${VENV_ROOT:-/opt/runpod-deploy/venvs}"    # container disk: the venvs (archived on the volume)
HF_HUB_REQ="${HF_HUB_REQ:-huggingface_hub[hf_xet]==0.36.2}" # the downloader: vLLM 0.11.2's huggingface_hub

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
  stop_download
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

# ------------------------------------------------------------------ installs (venvs on the container disk)
# A venv on the network volume costs a round trip per file at every import (vLLM opens ~7,000 files
# per process), so the venvs live on the container disk, under VENV_ROOT. The volume keeps one tar
# per venv, written once after the install (bytecode compiled), which every later start restores:
# one sequential read, no uv, no index. The numbers behind this: startup/README.md, "Where the venvs
# live". A venv works only at the absolute path it was created at (script shebangs, pyvenv.cfg), so
# an archive's key names that path as well as the requirements and Python.
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

install_venv() { # $1 name, $2 venv dir (container disk), $3 python version, $4... requirements
  # Ready on the container disk (a restart that kept it) > restored from the volume's archive > a uv
  # install, then archived. "$venv.complete" is written last, so a cut-short restore or install is
  # redone. A Python that uv downloads goes to "$venv.python" (not ~/.local/share/uv) and into the
  # archive with the venv: the restored venv's interpreter must exist on a fresh container disk.
  local name=$1 venv=$2 py=$3 key archive attempt=1
  shift 3
  key="$* python=$py path=$venv"
  archive="$VENV_ARCHIVE_DIR/${venv##*/}.tar"
  if [ "$(head -n 1 "$venv.complete" 2>/dev/null)" = "$key" ]; then
    say "$name: $* is ready in $venv (container disk kept since the last start)"
    return 0
  fi
  rm -f "$venv.complete"
  mkdir -p "${venv%/*}" "$VENV_ARCHIVE_DIR" || return 1
  restore_venv "$name" "$venv" "$key" "$archive" && return 0
  lock_acquire "$archive.lock" # two pods sharing the volume build the archive once
  if restore_venv "$name" "$venv" "$key" "$archive" quiet; then
    lock_release
    return 0
  fi
  if ! ensure_uv; then
    lock_release
    return 1
  fi
  while :; do
    if [ -e "$venv" ]; then say "$name: removing the unfinished install in $venv"; fi
    rm -rf "$venv" "$venv.python"
    mkdir -p "$venv.python"
    say "$name: installing $* into $venv (attempt $attempt/$INSTALL_ATTEMPTS)"
    if UV_PYTHON_INSTALL_DIR="$venv.python" run_logged "install-$name" "$LOG_DIR/install.log" \
      "${UV[@]}" venv --python "$py" "$venv" &&
      run_logged "install-$name" "$LOG_DIR/install.log" \
        "${UV[@]}" pip install --compile-bytecode --python "$venv/bin/python" "$@"; then
      printf '%s\n' "$key" >"$venv.complete"
      say "$name: installed"
      archive_venv "$name" "$venv" "$key" "$archive"
      lock_release
      return 0
    fi
    [ "$attempt" -ge "$INSTALL_ATTEMPTS" ] && break
    nap $((RESTART_BACKOFF_S * attempt))
    attempt=$((attempt + 1))
  done
  lock_release
  return 1
}

restore_venv() { # $1 name, $2 venv dir, $3 key, $4 archive, [$5 quiet]: true once restored and runnable
  local name=$1 venv=$2 key=$3 archive=$4 want="" size="" t0=$SECONDS
  { IFS= read -r want && IFS= read -r size; } 2>/dev/null <"$archive.complete"
  if [ -z "$want" ]; then
    [ -n "${5:-}" ] || say "$name: no complete archive $archive on the volume: installing"
    return 1
  fi
  if [ "$want" != "$key" ]; then
    say "$name: $archive was built for '$want', not '$key': installing"
    return 1
  fi
  if [ "$(stat -c %s "$archive" 2>/dev/null)" != "$size" ]; then
    error "$name: $archive is missing or not the size its marker says ($size bytes): rebuilding it"
    return 1
  fi
  rm -rf "$venv" "$venv.python"
  if run_logged "restore-$name" "$LOG_DIR/install.log" tar -xf "$archive" -C "${venv%/*}" &&
    "$venv/bin/python" -c '' >/dev/null 2>&1; then
    printf '%s\n' "$key" >"$venv.complete"
    say "$name: restored $venv from $archive ($size bytes) in $((SECONDS - t0))s; nothing installed"
    return 0
  fi
  error "$name: restoring $archive failed (corrupt archive, or its Python is missing): rebuilding it"
  rm -rf "$venv" "$venv.python"
  return 1
}

archive_venv() { # $1 name, $2 venv dir, $3 key, $4 archive: write it atomically, marker last
  # Uncompressed: restoring is bound by the volume's read speed or the disk's write speed, not by a
  # decompressor (measured: startup/README.md). A failure here costs the next start an install, not
  # this one its services.
  local name=$1 venv=$2 key=$3 archive=$4 tmp="$4.tmp.$$" size t0=$SECONDS
  say "$name: writing $archive for the next starts"
  # We hold the archive's lock: a temp file left here is from a pod stopped while writing one.
  rm -f "$archive.complete" "$archive".tmp.* "$archive".complete.tmp.*
  if run_logged "archive-$name" "$LOG_DIR/install.log" \
    tar -cf "$tmp" -C "${venv%/*}" "${venv##*/}" "${venv##*/}.python" &&
    size=$(stat -c %s "$tmp") && mv -f "$tmp" "$archive" &&
    printf '%s\n%s\n' "$key" "$size" >"$archive.complete.tmp.$$" &&
    mv -f "$archive.complete.tmp.$$" "$archive.complete"; then
    say "$name: archived ($size bytes) in $((SECONDS - t0))s"
    return 0
  fi
  rm -f "$tmp" "$archive.complete.tmp.$$"
  error "$name: could not write $archive; the next start installs $name again"
  return 1
}

# ------------------------------------------------------------------ model
# shellcheck disable=SC2317  # invoked indirectly (trap / run_logged / supervise)
with_hf_env() { # run "$@" with the model-cache env. HF_TOKEN is used from env only, never on argv.
  export HF_HOME HF_HUB_CACHE
  # HF_HUB_ENABLE_HF_TRANSFER=0 and the Xet cache size are exported for every child (main).
  export HF_XET_HIGH_PERFORMANCE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
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

model_marker() { # $1 HF repo id, $2 revision: the file that says the download is complete
  local marker="$HF_HUB_CACHE/models--${1//\//--}/.runpod-deploy-complete@${2:-default}"
  printf '%s\n' "${marker//[^A-Za-z0-9@._\/-]/_}"
}

download_model() { # $1 HF repo id, $2 revision (may be empty). Resumable; a marker makes it once only.
  local repo=$1 rev=$2 dir marker attempt=1 dl=() args
  dir="$HF_HUB_CACHE/models--${repo//\//--}"
  marker="$(model_marker "$repo" "$rev")"
  if [ -f "$marker" ]; then
    say "warm start: $repo${rev:+@$rev} is complete in $HF_HUB_CACHE; no download, vLLM runs offline"
    return 0
  fi
  # The downloader runs alongside the installs, so it cannot come from the vLLM venv: uv runs the
  # hf CLI from its own cached environment (the same huggingface_hub as vLLM's venv).
  ensure_uv || return 1
  dl=("${UV[@]}" tool run --from "$HF_HUB_REQ" hf download)
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
  DL_PROGRESS=$!
  while :; do
    say "downloading $repo${rev:+ at revision $rev} into $HF_HUB_CACHE (attempt $attempt/$INSTALL_ATTEMPTS)"
    if run_logged download-model "$LOG_DIR/install.log" with_hf_env "${dl[@]}" "${args[@]}"; then
      printf '%s %s\n' "$repo" "${rev:-default}" >"$marker"
      break
    fi
    if [ "$attempt" -ge "$INSTALL_ATTEMPTS" ]; then
      kill "$DL_PROGRESS" 2>/dev/null
      lock_release
      return 1
    fi
    nap $((RESTART_BACKOFF_S * attempt))
    attempt=$((attempt + 1))
  done
  kill "$DL_PROGRESS" 2>/dev/null
  lock_release
  say "downloaded $repo"
}

# The download runs in the background while the venvs install (a cold start needs both; neither
# needs the other). A failed download stops the setup at once (SIGUSR1 to this script), rather than
# after minutes of installs; a failed install or a signal stops the download.
DOWNLOAD_PID=""
DOWNLOAD_REPO=""
DL_PROGRESS=""
start_download() { # $1 HF repo id, $2 revision
  if [ -f "$(model_marker "$1" "$2")" ]; then
    download_model "$1" "$2" # says "warm start" and returns
    return 0
  fi
  ensure_uv || return 1 # once, here: the installs use the same uv
  DOWNLOAD_REPO=$1
  trap on_download_failed USR1
  (
    # shellcheck disable=SC2317  # invoked by the trap
    on_download_signal() {
      if [ -n "$CURRENT_CHILD" ]; then kill -TERM "$CURRENT_CHILD" 2>/dev/null; fi
      if [ -n "$DL_PROGRESS" ]; then kill "$DL_PROGRESS" 2>/dev/null; fi
      exit 143
    }
    trap on_download_signal TERM INT
    download_model "$1" "$2" || {
      kill -USR1 "$$" 2>/dev/null
      exit 1
    }
  ) &
  DOWNLOAD_PID=$!
  say "downloading $1 alongside the installs"
}

wait_download() { # returns once the download has finished, or stops the script if it failed
  local rc=0
  if [ -n "$DOWNLOAD_PID" ]; then
    wait "$DOWNLOAD_PID"
    rc=$?
    DOWNLOAD_PID=""
  fi
  trap - USR1
  [ "$rc" = 0 ] || on_download_failed
}

stop_download() {
  if [ -n "$DOWNLOAD_PID" ]; then kill -TERM "$DOWNLOAD_PID" 2>/dev/null; fi
}

# shellcheck disable=SC2317  # invoked by the USR1 trap
on_download_failed() { # stop the install that is running, and the setup
  trap - USR1
  if [ -n "$CURRENT_CHILD" ]; then kill -TERM "$CURRENT_CHILD" 2>/dev/null; fi
  die 1 "download of $DOWNLOAD_REPO failed; see $LOG_DIR/install.log"
}

# ------------------------------------------------------------------ services
# shellcheck disable=SC2317  # invoked indirectly (trap / run_logged / supervise)
run_vllm() { # exec'd by the supervisor: vLLM gets only the secrets it needs
  unset HF_TOKEN HUGGING_FACE_HUB_TOKEN WEBUI_ADMIN_EMAIL WEBUI_ADMIN_PASSWORD WEBUI_SECRET_KEY STARTUP_B64
  # The key goes through env VLLM_API_KEY (vLLM reads it when --api-key is absent), not argv: argv
  # shows in `ps` and vLLM logs its non-default CLI args at startup.
  export VLLM_API_KEY
  export HF_HOME HF_HUB_CACHE VLLM_CACHE_ROOT
  # With torch >= 2.8 vLLM compiles with InductorStandaloneAdaptor, which (unlike InductorAdaptor)
  # does not point TRITON_CACHE_DIR at its cache (vllm 0.11.2 compilation/compiler_interface.py), so
  # Triton kernels (e.g. block-FP8 GEMMs) would recompile into ~/.triton on the wiped container disk
  # at every start. Same directory name as InductorAdaptor uses.
  export TRITON_CACHE_DIR="$VLLM_CACHE_ROOT/triton_cache"
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
  # Its built-in "arena-model" would be listed next to the served model (open_webui/config.py).
  export ENABLE_EVALUATION_ARENA_MODELS=False
  # False: env wins over values Open WebUI saved in its DB at first launch (so a rotated key applies).
  export ENABLE_PERSISTENT_CONFIG="$WEBUI_PERSISTENT_CONFIG"
  export WEBUI_ADMIN_EMAIL WEBUI_ADMIN_PASSWORD
  # `open-webui serve` writes .webui_secret_key into the working directory if WEBUI_SECRET_KEY is
  # unset: running from the per-pod DATA_DIR keeps that file with the pod's data.
  cd "$WEBUI_DATA_DIR" || exit 1
  webui_set_admin
  exec "$WEBUI_VENV/bin/open-webui" serve --host 0.0.0.0 --port "$WEBUI_PORT"
}

# shellcheck disable=SC2317  # invoked indirectly (run_webui)
webui_set_admin() { # the configured admin password is the one that works, after every start
  # Open WebUI creates the WEBUI_ADMIN_* admin only while no user exists (open_webui/main.py
  # lifespan -> utils/auth.py create_admin_user), so a new password (e.g. after `pulumi destroy` and
  # `up`, with the old webui.db still on the volume) would never reach the DB. This sets it with
  # Open WebUI's own code, in its venv and env, before it serves: the account with that email gets
  # the password hash (and the admin role); with users but none of that email, it is created as
  # admin; with no user at all Open WebUI creates it itself. The password is read from env only.
  # In the background, so the supervisor's SIGTERM (a pod stop) ends it too: a foreground child would
  # outlive this shell and keep the instance lock.
  local pid rc
  "$WEBUI_VENV/bin/python" - <<'PY' &
import os

from open_webui.models.auths import Auths
from open_webui.models.users import Users
from open_webui.utils.auth import get_password_hash

email = os.environ["WEBUI_ADMIN_EMAIL"].strip().lower()
password_hash = get_password_hash(os.environ["WEBUI_ADMIN_PASSWORD"])
user = Users.get_user_by_email(email)
if user is not None:
    if not Auths.update_user_password_by_id(user.id, password_hash):
        raise SystemExit("runpod-deploy: Open WebUI did not store the admin password")
    if user.role != "admin":
        Users.update_user_role_by_id(user.id, "admin")
    print("runpod-deploy: Open WebUI admin password set from WEBUI_ADMIN_PASSWORD", flush=True)
elif Users.has_users():
    name = os.environ.get("WEBUI_ADMIN_NAME") or "Admin"
    if Auths.insert_new_auth(email=email, password=password_hash, name=name, role="admin") is None:
        raise SystemExit("runpod-deploy: Open WebUI did not create the admin")
    print("runpod-deploy: Open WebUI admin created from WEBUI_ADMIN_EMAIL / WEBUI_ADMIN_PASSWORD", flush=True)
PY
  pid=$!
  trap 'kill -TERM "$pid" 2>/dev/null; exit 143' TERM
  wait "$pid"
  rc=$?
  trap - TERM
  if [ "$rc" != 0 ]; then
    echo "runpod-deploy: could not set the Open WebUI admin password (exit status $rc, see above); Open WebUI starts anyway"
  fi
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

# ------------------------------------------------------------------ idle stop
# With IDLE_STOP_MINUTES set, the pod stops itself after that many minutes without a request to vLLM,
# through the RunPod API, with the identity RunPod gives every pod: RUNPOD_POD_ID and the pod-scoped
# RUNPOD_API_KEY ("Runpod-provided variables", https://docs.runpod.io/pods/templates/environment-variables).
# A stop keeps the network volume, so `pulumi up` brings the pod back with a warm start.

idle_stop_wanted() { # checks the idle-stop settings once; true when the pod should watch for idleness
  [ -n "$IDLE_STOP_MINUTES" ] || return 1
  [[ "$IDLE_STOP_MINUTES" =~ ^[1-9][0-9]*$ ]] ||
    die 2 "IDLE_STOP_MINUTES must be a whole number of minutes (1 or more), or empty for no idle stop (got '$IDLE_STOP_MINUTES')"
  for var in IDLE_STOP_MINUTE_S IDLE_STOP_CHECK_S; do
    [[ "${!var}" =~ ^[0-9]+([.][0-9]+)?$ ]] || die 2 "$var must be a number of seconds (got '${!var}')"
  done
  if [ -z "${RUNPOD_POD_ID:-}" ] || [ -z "$IDLE_STOP_KEY" ]; then
    error "idle stop is off: RUNPOD_POD_ID and RUNPOD_API_KEY, which RunPod sets in every pod, are not both set"
    return 1
  fi
}

idle_metrics() { # prints "<requests finished> <requests running or waiting>", read from vLLM's /metrics
  # vLLM 0.11 (vllm/v1/metrics/loggers.py, PrometheusStatLogger): the counter vllm:request_success_total
  # (one series per finished_reason; it grows when a request ends, whatever the reason) and the gauges
  # vllm:num_requests_running / vllm:num_requests_waiting (a long request counts while it runs).
  # /metrics needs no key: vLLM checks the key only on /v1 paths (vllm/entrypoints/openai/api_server.py).
  local url="http://127.0.0.1:$VLLM_PORT/metrics" body
  if command -v curl >/dev/null 2>&1; then
    body="$(curl -sf -m 5 --noproxy '*' "$url" 2>/dev/null)" || return 1
  else
    body="$(python3 -c 'import sys, urllib.request as u; sys.stdout.write(u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=5).read().decode())' "$url" 2>/dev/null)" || return 1
  fi
  awk '/^vllm:request_success_total[{ ]/ { done += $NF }
       /^vllm:num_requests_(running|waiting)[{ ]/ { busy += $NF }
       END { printf "%.0f %.0f\n", done, busy }' <<<"$body"
}

idle_stop_request() { # asks RunPod to stop this pod; prints the answer, never the key. False if refused.
  RUNPOD_API_KEY="$IDLE_STOP_KEY" python3 - <<'PY'
import json, os, sys, urllib.error, urllib.request
# REST v2 operation podAction: POST /pods/{id}/action {"action": "stop"} -> 200 with the pod (EXITED).
url = os.environ["IDLE_STOP_API_URL"].rstrip("/") + "/pods/" + os.environ["RUNPOD_POD_ID"] + "/action"
req = urllib.request.Request(url, data=b'{"action": "stop"}', method="POST", headers={
    "Authorization": "Bearer " + os.environ["RUNPOD_API_KEY"], "Content-Type": "application/json",
    # Cloudflare in front of the API refuses urllib's default User-Agent.
    "User-Agent": "runpod-deploy-startup"})
try:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=30) as r:
        print(f"HTTP {r.status}")
except urllib.error.HTTPError as e:
    detail = e.read().decode(errors="replace")
    try:
        detail = json.loads(detail).get("detail") or detail
    except (ValueError, AttributeError):
        pass
    print(f"HTTP {e.code}: {' '.join(str(detail).split())[:200]}")
    sys.exit(1)
except Exception as e:  # no answer at all
    print(f"no answer: {type(e).__name__}: {e}"[:200])
    sys.exit(1)
PY
}

idle_now_ms() { # wall clock in ms (EPOCHREALTIME, bash >= 5; else whole seconds)
  local t="${EPOCHREALTIME:-}"
  if [ -z "$t" ]; then
    echo $(($(date +%s) * 1000))
    return
  fi
  t="${t/,/.}"
  echo $((${t%.*} * 1000 + 10#${t#*.} / 1000))
}

# shellcheck disable=SC2317  # invoked indirectly (trap)
watch_idle() { # background: stops this pod after IDLE_STOP_MINUTES without a request; one attempt only
  local limit_ms seen=0 last="" idle_since=0 sample finished busy outcome
  trap 'exit 0' TERM
  limit_ms=$(awk -v m="$IDLE_STOP_MINUTES" -v s="$IDLE_STOP_MINUTE_S" 'BEGIN { printf "%d", m * s * 1000 }')
  say "idle stop: on; the pod stops itself after $IDLE_STOP_MINUTES min without a request to vLLM"
  while :; do
    nap "$IDLE_STOP_CHECK_S"
    sample="$(idle_metrics)" || continue # vLLM not answering (yet): the clock waits for its first answer
    read -r finished busy <<<"$sample"
    # The clock starts at vLLM's first answer, so it never runs while installing, downloading or loading.
    if [ "$seen" = 0 ] || [ "$finished" != "$last" ] || [ "$busy" -gt 0 ]; then
      seen=1 last=$finished idle_since=$(idle_now_ms)
    elif [ $(($(idle_now_ms) - idle_since)) -ge "$limit_ms" ]; then
      break
    fi
  done
  say "idle stop: no request for $IDLE_STOP_MINUTES min: stopping pod $RUNPOD_POD_ID through the RunPod API (the volume is kept; \`pulumi up\` starts it again)"
  if outcome="$(idle_stop_request)"; then
    say "idle stop: RunPod accepted the stop ($outcome)"
  else
    error "idle stop refused ($outcome): the pod keeps serving; stop it with \`pulumi up\` and running: false if wanted"
  fi
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
[[ "$VENV_ROOT" == /* ]] || die 2 "VENV_ROOT must be an absolute path (got '$VENV_ROOT')"
for var in VLLM_PORT WEBUI_PORT RESTART_BACKOFF_S RESTART_BACKOFF_MAX_S MAX_RESTARTS RESTART_RESET_S \
  STOP_TIMEOUT_S INSTALL_ATTEMPTS LOCK_WAIT_S DOWNLOAD_PROGRESS_S LOG_MAX_BYTES; do
  [[ "${!var}" =~ ^[0-9]+$ ]] || die 2 "$var must be a whole number (got '${!var}')"
done
[[ "$HEALTH_INTERVAL_S" =~ ^[0-9]+([.][0-9]+)?$ ]] || die 2 "HEALTH_INTERVAL_S must be a number of seconds"
for var in VLLM_VERSION OPENWEBUI_VERSION VLLM_PYTHON WEBUI_PYTHON; do
  [[ "${!var}" =~ ^[A-Za-z0-9][A-Za-z0-9.+_-]*$ ]] || die 2 "$var is not a version (got '${!var}')"
done
command -v python3 >/dev/null 2>&1 || die 2 "python3 is required"
IDLE_STOP=0
if idle_stop_wanted; then IDLE_STOP=1; fi

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
# For every child (the downloader, vLLM and Open WebUI, which fetches its embedding model itself):
# - the runpod/pytorch image sets HF_HUB_ENABLE_HF_TRANSFER=1, and huggingface_hub 0.x (0.36 in both
#   venvs) then raises on every plain download unless the hf_transfer package is installed, which
#   neither venv has (huggingface_hub/file_download.py http_get). Open WebUI swallows that error:
#   /health is 200 but document search never gets its embedding model. hf_xet is the fast path;
# - Xet's chunk cache (up to 10 GB, under HF_HOME = the volume) only helps re-downloads of the same
#   chunks, which the completion marker already prevents:
#   https://docs.rs/xet-runtime/latest/xet_runtime/config/type.ChunkCacheConfig.html
export HF_HUB_ENABLE_HF_TRANSFER=0 HF_XET_CHUNK_CACHE_SIZE_BYTES=0
# The venvs on the container disk; their archives on the volume (see "installs" above).
VLLM_VENV="$VENV_ROOT/vllm-$VLLM_VERSION"
WEBUI_VENV="$VENV_ROOT/openwebui-$OPENWEBUI_VERSION"
VENV_ARCHIVE_DIR="$WORKSPACE/venvs"
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
# max_model_len, gpu_memory_utilization, then the vLLM args (--max-cudagraph-capture-size if the
# profile sets it, then its extraArgs, then VLLM_EXTRA_ARGS_JSON).
import json, os, re, sys

# The GpuProfile fields of runpod_deploy/schema.py: a field the schema gained but this script does
# not use yet stops the start, rather than being dropped without a word.
REQUIRED = ("modelId", "maxModelLen", "gpuMemoryUtilization", "extraArgs")
FIELDS = set(REQUIRED) | {"revision", "maxCudagraphCaptureSize"}


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
cg = prof.get("maxCudagraphCaptureSize")
if cg is not None:
    if not (isinstance(cg, int) and not isinstance(cg, bool) and cg > 0):
        fail(f"GPU profile {choice!r}: maxCudagraphCaptureSize must be a positive integer")
    vllm_args = ["--max-cudagraph-capture-size", str(cg)] + vllm_args
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

# The model: an old complete local copy, else the Hub cache, downloaded alongside the installs.
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
  start_download "$SERVE_MODEL_ID" "$SERVE_REVISION" || die 1 "cannot start the download of $SERVE_MODEL_ID (no uv)"
  SERVE_REF="$SERVE_MODEL_ID"
fi

phase install-vllm
if ! install_venv vllm "$VLLM_VENV" "$VLLM_PYTHON" "vllm==$VLLM_VERSION"; then
  stop_download
  die 1 "vLLM $VLLM_VERSION install failed; see $LOG_DIR/install.log"
fi

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
wait_download

mkdir -p "$VLLM_CACHE_ROOT" "$WEBUI_DATA_DIR" || die 1 "cannot create $VLLM_CACHE_ROOT or $WEBUI_DATA_DIR"
chmod 700 "$WEBUI_DATA_DIR" 2>/dev/null || true

VLLM_ARGS=(serve "$SERVE_REF" --host 0.0.0.0 --port "$VLLM_PORT" --served-model-name "$SERVED_MODEL_NAME")
if [ "$SERVE_MODEL_ID" != "$SERVED_MODEL_NAME" ]; then VLLM_ARGS+=("$SERVE_MODEL_ID"); fi
if [ "$SERVE_REF" = "$SERVE_MODEL_ID" ] && [ -n "$SERVE_REVISION" ]; then VLLM_ARGS+=(--revision "$SERVE_REVISION"); fi
# The weights are on the network volume: vLLM recommends reading each safetensors file whole there
# rather than mmap's random reads (vllm 0.11.2 config/load.py, safetensors_load_strategy). A profile's
# extraArgs come after, so they can still choose another strategy.
VLLM_ARGS+=(--max-model-len "$MAX_MODEL_LEN" --gpu-memory-utilization "$GPU_MEM_UTIL" --safetensors-load-strategy eager
  "${EXTRA_ARGS[@]}")

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
if [ "$IDLE_STOP" = 1 ]; then
  watch_idle &
  SUPERVISORS+=("$!") # stopped with the services
fi

# Never exit on our own: a service that gave up stays down, but the pod stays inspectable.
while [ "$STOPPING" = 0 ]; do nap 60; done
say "stopping: SIGTERM to the services"
kill -TERM "$WATCHER" "${SUPERVISORS[@]}" 2>/dev/null
for pid in "${SUPERVISORS[@]}" "$WATCHER"; do wait "$pid" 2>/dev/null; done
say "stopped"
exit 0
