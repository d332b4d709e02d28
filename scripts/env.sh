# Source this (`. scripts/env.sh`) to use the project's pulumi and venv in your shell.
# Local state by default: a file backend inside the project, unless you chose a backend already
# (PULUMI_BACKEND_URL, or `pulumi login` to Pulumi Cloud / S3 — see the README's Team use).
_rd_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export PATH="$_rd_root/.tools/bin:$_rd_root/.venv/bin:$PATH"
export PULUMI_SKIP_UPDATE_CHECK=true
if [ -z "${PULUMI_BACKEND_URL:-}" ] && ! grep -qs '"current"' "${PULUMI_HOME:-$HOME/.pulumi}/credentials.json"; then
  mkdir -p "$_rd_root/.pulumi-state"
  export PULUMI_BACKEND_URL="file://$_rd_root/.pulumi-state"
fi
unset _rd_root
