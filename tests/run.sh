#!/usr/bin/env bash
# Runs everything CI runs, in the same order: format check, clippy with warnings as errors,
# then the whole test suite against a local stack that this script starts itself (LocalStack,
# the Bedrock/AgentCore stand-in, the MCP tool server, the agent process) and stops at the end,
# also when a step fails. Works on a fresh machine: every install happens here.
#
#   bash tests/run.sh            everything
#   bash tests/run.sh -- FILTER  only tests whose name contains FILTER (after the checks)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
FILTER=()
if [ "${1:-}" = "--" ]; then shift; FILTER=("$@"); fi

step "format"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "test tools: asl-validator, MCP server-everything, the agent process"
for dir in workflows/tests/asl-validator workers/tests/mcp; do
  if [ -f "$dir/package-lock.json" ]; then
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  fi
done
bash localstack/agent/install.sh

step "build"
# --tests too: the test build then reuses these artifacts (same features)
cargo build --workspace --bins --tests --locked

step "local stack"
if [ "${GARDEN_KEEP_STACK:-0}" != 1 ]; then
  trap 'step "stopping the local stack"; bash localstack/down.sh || true' EXIT
fi
bash localstack/up.sh

step "tests"
cargo test --workspace --locked --no-fail-fast -- "${FILTER[@]}"
