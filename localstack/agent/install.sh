#!/usr/bin/env bash
# Install the agent process's venv (localstack/.venv-agent): bedrock-agentcore pinned, every other
# package constrained by agent/requirements.txt (a full freeze). Newest Python >= 3.10 found under
# ~/.pyenv/versions or on PATH (or GARDEN_AGENT_PYTHON). Idempotent: does nothing when the venv's
# stamp matches requirements.txt and the interpreter.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

AGENTCORE_VERSION=1.25.0
VENV=$GARDEN_LS_DIR/.venv-agent
REQS=$GARDEN_LS_DIR/agent/requirements.txt
mkdir -p "$GARDEN_RUN_DIR"

py_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
choose_python() {
  local want cand
  if [ -n "${GARDEN_AGENT_PYTHON:-}" ]; then echo "$GARDEN_AGENT_PYTHON"; return; fi
  for want in 3.13 3.12 3.11 3.10; do
    # shellcheck disable=SC2012 # version directories have plain names
    for cand in $(ls -d "$HOME"/.pyenv/versions/"$want".*/bin/python3 2>/dev/null | sort -V -r) \
      "$(command -v "python$want" || true)"; do
      [ -n "$cand" ] && [ -x "$cand" ] && [ "$(py_version "$cand")" = "$want" ] && { echo "$cand"; return; }
    done
  done
  return 1
}
PYTHON=$(choose_python) ||
  die "no Python 3.10-3.13 found (looked in ~/.pyenv/versions and PATH); set GARDEN_AGENT_PYTHON"
STAMP=$({ echo "$PYTHON $(py_version "$PYTHON") bedrock-agentcore==$AGENTCORE_VERSION"; cat "$REQS"; } |
  sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.garden-stamp" 2>/dev/null || true)" = "$STAMP" ]; then
  exit 0
fi
log "installing bedrock-agentcore==$AGENTCORE_VERSION into $VENV ($PYTHON); log: $GARDEN_RUN_DIR/agent-install.log"
t0=$(now_ms)
{
  rm -f "$VENV/.garden-stamp"
  "$PYTHON" -m venv --clear "$VENV"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -c "$REQS" "bedrock-agentcore==$AGENTCORE_VERSION"
  "$VENV/bin/python" -c 'from bedrock_agentcore.runtime import BedrockAgentCoreApp'
} >"$GARDEN_RUN_DIR/agent-install.log" 2>&1 || {
  show_log_tail "$GARDEN_RUN_DIR/agent-install.log"
  die "agent install failed; log: $GARDEN_RUN_DIR/agent-install.log"
}
echo "$STAMP" >"$VENV/.garden-stamp"
log "installed in $(($(now_ms) - t0)) ms"
