#!/usr/bin/env bash
# Idempotent setup: .venv with pinned deps, and a `pulumi` CLI of at least PULUMI_VERSION with the
# Python language host (`pulumi up` needs it to run __main__.py).
# Order: a pulumi on PATH that is new enough; else the official installer when the internet is
# reachable; else a build from the Go module proxy, cached by version outside git. The proxy does not
# serve the language host's module, so that path builds it from a vendored copy of its source
# (VENDOR, see its README.md).
# Portable to macOS (bash 3.2, BSD tools): no GNU-only flags, no associative arrays.
set -euo pipefail

PULUMI_VERSION="${PULUMI_VERSION:-3.274.1}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${RUNPOD_DEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/runpod-deploy}"
TOOLS="$CACHE/pulumi-v$PULUMI_VERSION"     # keyed by version: a bump rebuilds, a rerun reuses
BIN="$ROOT/.tools/bin"                      # gitignored; what env.sh puts on PATH
PYTHON="${PYTHON:-python3}"
# The language host's source: shared/ sits beside the clone in CI (and beside /work/main here).
VENDOR="${RUNPOD_DEPLOY_VENDOR:-$ROOT/../shared/vendor}/pulumi-language-python"
HOST=pulumi-language-python

say() { printf 'setup: %s\n' "$*" >&2; }

# --- Python env -------------------------------------------------------------------------------
venv() {
  if [ ! -x "$ROOT/.venv/bin/python" ]; then
    say "creating .venv with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$ROOT/.venv"
  fi
  # Reinstall only when the pinned requirements changed (a stamp holds their checksum).
  local stamp="$ROOT/.venv/.requirements.sum" sum
  sum="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" "$ROOT/pyproject.toml" | cksum)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ]; then
    say "installing Python requirements"
    # The project itself, editable, with its pins and the dev extra (pyproject.toml holds them all);
    # its package metadata gives the RunPod client's User-Agent the project's version.
    "$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[dev]"
    printf '%s' "$sum" >"$stamp"
  fi
}

# --- Pulumi CLI -------------------------------------------------------------------------------
version_ok() { # $1: a pulumi binary; true when its version >= PULUMI_VERSION
  local have
  have="$("$1" version 2>/dev/null | sed 's/^v//')" || return 1
  [ -n "$have" ] || return 1
  [ "$(printf '%s\n%s\n' "$PULUMI_VERSION" "$have" | sort -t. -k1,1n -k2,2n -k3,3n | head -n 1)" = "$PULUMI_VERSION" ]
}

# A throwaway wrapper module requiring pkg and sdk at PULUMI_VERSION, with pkg's replaces that name
# real versions (pkg/go.mod has replace directives, so `go install pkg@v` refuses it). $1: its dir.
wrapper_module() {
  local mod
  mod="$(go env GOMODCACHE)/cache/download/github.com/pulumi/pulumi/pkg/v3/@v/v$PULUMI_VERSION.mod"
  (cd "$1" && go mod download "github.com/pulumi/pulumi/pkg/v3@v$PULUMI_VERSION")
  {
    printf 'module runpod-deploy/pulumi-build\n\ngo %s\n\n' "$(awk '$1=="go"{print $2; exit}' "$mod")"
    printf 'require (\n\tgithub.com/pulumi/pulumi/pkg/v3 v%s\n\tgithub.com/pulumi/pulumi/sdk/v3 v%s\n)\n\n' \
      "$PULUMI_VERSION" "$PULUMI_VERSION"
    # replace lines whose target is a module version (local paths like ../sdk are dropped)
    awk '$1=="replace" && $NF ~ /^v[0-9]/ {print}' "$mod"
  } >"$1/go.mod"
}

GO_LDFLAGS_VERSION="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION"

build_from_go_proxy() {
  command -v go >/dev/null || { say "no 'go' on PATH: cannot build pulumi v$PULUMI_VERSION"; exit 1; }
  local work sdk
  work="$(mktemp -d)"
  say "building pulumi v$PULUMI_VERSION from the Go module proxy (cold: several minutes)"
  wrapper_module "$work"
  printf 'package main\n\nimport _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"\n' >"$work/tools.go"
  (
    cd "$work"
    go mod tidy >/dev/null 2>&1 || true   # tidy may drop the blank import; `go get` below is what counts
    go get "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@v$PULUMI_VERSION"
    mkdir -p "$TOOLS.tmp"
    CGO_ENABLED=0 go build -trimpath -tags osusergo,grpcnotrace \
      -ldflags "-w -s $GO_LDFLAGS_VERSION" -o "$TOOLS.tmp/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  )
  # The launchers the Python runtime needs ship in the sdk module zip (read-only, no exec bits).
  sdk="$(cd "$work" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
  install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$TOOLS.tmp/"
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$TOOLS.tmp/"
  rm -rf "$TOOLS" && mv "$TOOLS.tmp" "$TOOLS"
  rm -rf "$work"
}

# The Python language host, into $TOOLS beside `pulumi-language-python-exec` (it looks for the
# executor beside itself). Its module is not on the Go module proxy; its one Go file is vendored and
# builds against the pkg/sdk modules of the CLI (recipe: $VENDOR/README.md). Adds to an existing
# cache instead of rebuilding the CLI.
build_language_host() {
  command -v go >/dev/null || { say "no 'go' on PATH: cannot build $HOST"; exit 1; }
  local work start
  work="$(mktemp -d)"
  start="$(date +%s)"
  say "building $HOST v$PULUMI_VERSION from $VENDOR (needs the CLI's Go modules; cold: a few minutes)"
  wrapper_module "$work"
  cp "$VENDOR/main.go" "$work/main.go"
  (
    cd "$work"
    go mod tidy >/dev/null
    CGO_ENABLED=0 go build -trimpath -ldflags "-w -s $GO_LDFLAGS_VERSION" -o "$TOOLS/.$HOST.tmp" .
  )
  mv "$TOOLS/.$HOST.tmp" "$TOOLS/$HOST"
  rm -rf "$work"
  say "built $HOST in $(( $(date +%s) - start )) s"
}

pulumi_cli() {
  mkdir -p "$BIN"
  if [ "${RUNPOD_DEPLOY_BUILD_PULUMI:-}" != 1 ] && command -v pulumi >/dev/null \
     && [ "$(command -v pulumi)" != "$BIN/pulumi" ] && version_ok "$(command -v pulumi)"; then
    say "using $(command -v pulumi) ($(pulumi version))"
    rm -f "$BIN"/pulumi*
    command -v "$HOST" >/dev/null || [ -x "$(dirname "$(command -v pulumi)")/$HOST" ] \
      || say "warning: no $HOST beside $(command -v pulumi): \`pulumi up\` cannot run this Python program"
    return
  fi
  if [ -x "$TOOLS/pulumi" ] && version_ok "$TOOLS/pulumi"; then
    say "using cached $TOOLS/pulumi"
  elif [ "${RUNPOD_DEPLOY_BUILD_PULUMI:-}" != 1 ] && curl -fsS -m 5 -o /dev/null https://get.pulumi.com 2>/dev/null; then
    say "installing pulumi v$PULUMI_VERSION with the official installer"
    curl -fsSL https://get.pulumi.com | sh -s -- --version "$PULUMI_VERSION" --install-root "$TOOLS.tmp" --no-edit-path
    mkdir -p "$TOOLS" && cp -p "$TOOLS.tmp"/bin/* "$TOOLS/" && rm -rf "$TOOLS.tmp"
  else
    build_from_go_proxy
  fi
  # A cache built before the language host was part of it (or without its source) gets it added.
  if [ ! -x "$TOOLS/$HOST" ] && [ -f "$VENDOR/main.go" ]; then
    build_language_host
  elif [ ! -x "$TOOLS/$HOST" ]; then
    say "NO PYTHON LANGUAGE HOST: $TOOLS has no $HOST and its source ($VENDOR/main.go) is absent, so"
    say "plain \`pulumi up\` cannot run this Python program and the end-to-end tests fail. Fix: set"
    say "RUNPOD_DEPLOY_VENDOR to the folder holding pulumi-language-python/, or install Pulumi officially."
  fi
  for f in "$TOOLS"/*; do ln -sf "$f" "$BIN/$(basename "$f")"; done
}

venv
pulumi_cli
say "ready: source scripts/env.sh (pulumi $("${BIN}/pulumi" version 2>/dev/null || pulumi version))"
