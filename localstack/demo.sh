#!/usr/bin/env bash
# The main job, from nothing: builds `garden`, brings up the local stack (LocalStack, the
# Bedrock/AgentCore stand-in, the MCP tool server, the agent process), deploys the example
# workflows, starts the workers, sends a job to the jobs queue as an SQS message, shows its
# steps as they progress, and prints the job's result and its cost estimate.
#
#   bash localstack/demo.sh [WORKFLOW]      (default: research-brief)
#
# Approval steps are answered by this script (as `garden approve` would be by a person) so
# that the job can finish unattended. Everything it starts stays up for you to explore:
#   source localstack/env.sh; target/debug/garden jobs   (or $CARGO_TARGET_DIR/debug/garden)
# and `bash localstack/down.sh` stops it all.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WORKFLOW=${1:-research-brief}
RUN=localstack/.run
GARDEN=${CARGO_TARGET_DIR:-target}/debug/garden
step() { printf '\n==> %s\n' "$*" >&2; }

[ -f "definitions/$WORKFLOW.yaml" ] || { echo "no definitions/$WORKFLOW.yaml" >&2; exit 2; }

step "build (first time: a few minutes for the AWS SDK crates)"
cargo build --locked -p garden --bin garden -p garden-standins --bin garden-standins

step "local stack"
bash localstack/up.sh
# shellcheck source=/dev/null
source localstack/env.sh
export GARDEN_PREFIX=${GARDEN_PREFIX:-garden}

step "deploy the example workflows"
$GARDEN deploy --schedule-rules

step "workers"
mkdir -p "$RUN"
if [ -f "$RUN/worker.pid" ] && kill -0 "$(cat "$RUN/worker.pid")" 2>/dev/null; then
  echo "garden worker already running (pid $(cat "$RUN/worker.pid"))" >&2
else
  nohup $GARDEN worker >"$RUN/worker.log" 2>&1 &
  echo $! >"$RUN/worker.pid"
  echo "garden worker started (pid $!, log $RUN/worker.log)" >&2
fi

step "submit a $WORKFLOW job and follow it"
input=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["input"]))' \
  "definitions/examples/$WORKFLOW.job.json")
job_id=$($GARDEN submit "$WORKFLOW" --input "$input")
# Answer approval steps when they come up, as a reviewer would.
(
  for _ in $(seq 1 600); do
    steps=$($GARDEN status "$job_id" --json 2>/dev/null || true)
    waiting=$(printf '%s' "$steps" | python3 -c '
import json, sys
try: data = json.load(sys.stdin)
except Exception: sys.exit(0)
if data["job"]["status"] != "RUNNING": print("__done__")
for s in data["steps"]:
    if s["status"] == "WAITING_APPROVAL": print(s["step"])' || true)
    case $waiting in *__done__*) exit 0 ;; esac
    for s in $waiting; do
      echo "  (reviewer) approving step $s of $job_id" >&2
      $GARDEN approve "$job_id" "$s" --reason "looks right" >/dev/null 2>&1 || true
    done
    sleep 0.5
  done
) &
reviewer=$!
set +e
$GARDEN status "$job_id" --wait
outcome=$?
set -e
kill "$reviewer" 2>/dev/null || true

step "cost estimate"
$GARDEN compile "definitions/$WORKFLOW.yaml" --explain -o "$RUN/compiled" | sed -n '/[Cc]ost/,$p'
exit $outcome
