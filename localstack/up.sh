#!/usr/bin/env bash
# Bring the whole local stack up, each part idempotently (already running parts are left alone,
# stale PID files removed), waiting for each to be healthy:
#   1. LocalStack on 127.0.0.1:4566 (start.sh; installs its venv on first use)
#   2. the writer agent process (agent/agent.py, bedrock-agentcore) on 127.0.0.1:4630, GET /ping
#   3. the Bedrock Converse + AgentCore Runtime stand-in on 127.0.0.1:4610, GET /_standin/health
#   4. the MCP tool server on 127.0.0.1:4620 (/mcp), TCP connect
# 3 and 4 need the Rust binary garden-standins (cargo build -p garden-standins); without it they
# are skipped with a warning, or built first when GARDEN_BUILD_STANDINS=1.
# PID files and logs: localstack/.run/{localstack,agent,converse,tools}.{pid,log}.
# Afterwards: `source localstack/env.sh` configures a shell; localstack/down.sh stops everything.
#
# Environment: GARDEN_STANDINS_BIN (default <repo>/target/debug/garden-standins, or under
# CARGO_TARGET_DIR), GARDEN_BUILD_STANDINS=1, GARDEN_START_TIMEOUT (seconds per process, default 60),
# GARDEN_NO_LOCALSTACK=1 (skip step 1), plus those of start.sh.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

take_lock 8 up # one up.sh/down.sh at a time (parallel test binaries call up.sh)
t_all=$(now_ms)
if [ "${GARDEN_NO_LOCALSTACK:-0}" != 1 ]; then
  "$GARDEN_LS_DIR/start.sh"
fi

"$GARDEN_LS_DIR/agent/install.sh"
start_proc agent "agent/agent.py" "http_ok http://127.0.0.1:4630/ping" -- \
  "$GARDEN_LS_DIR/.venv-agent/bin/python" "$GARDEN_LS_DIR/agent/agent.py" --host 127.0.0.1 --port 4630

BIN=${GARDEN_STANDINS_BIN:-${CARGO_TARGET_DIR:-$GARDEN_REPO_DIR/target}/debug/garden-standins}
if [ "${GARDEN_BUILD_STANDINS:-0}" = 1 ]; then
  log "building garden-standins (cargo build -p garden-standins)"
  (cd "$GARDEN_REPO_DIR" && cargo build -p garden-standins) || die "cargo build -p garden-standins failed"
fi
if [ -x "$BIN" ]; then
  start_proc converse "garden-standins converse" "http_ok http://127.0.0.1:4610/_standin/health" -- \
    "$BIN" converse --port 4610 --agent-url http://127.0.0.1:4630
  start_proc tools "garden-standins tools" "tcp_open 127.0.0.1 4620" -- \
    "$BIN" tools --port 4620
else
  log "warning: $BIN not found: Converse/AgentCore stand-in (4610) and MCP tools (4620) NOT started;"
  log "warning: build it with 'cargo build -p garden-standins' and run up.sh again"
fi
log "local stack up in $(($(now_ms) - t_all)) ms; configure a shell with: source $GARDEN_LS_DIR/env.sh"
