#!/usr/bin/env bash
# Stop the whole local stack that up.sh started (and the `garden worker` that demo.sh starts):
# the worker, the stand-ins, the agent process, then
# LocalStack (stop.sh). Each by its PID file (SIGTERM, SIGKILL after a grace period); safe to
# run when some or all parts are not running. GARDEN_KEEP_LOCALSTACK=1 leaves LocalStack up.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

take_lock 8 up # one up.sh/down.sh at a time (parallel test binaries call up.sh)
# The worker gets longer: on SIGTERM it finishes or releases what it holds.
stop_pid worker "$GARDEN_RUN_DIR/worker.pid" "garden worker" 40
stop_pid tools "$GARDEN_RUN_DIR/tools.pid" "garden-standins tools" 10
stop_pid converse "$GARDEN_RUN_DIR/converse.pid" "garden-standins converse" 10
stop_pid agent "$GARDEN_RUN_DIR/agent.pid" "agent/agent.py" 10
if [ "${GARDEN_KEEP_LOCALSTACK:-0}" != 1 ]; then
  "$GARDEN_LS_DIR/stop.sh"
fi
