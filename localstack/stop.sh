#!/usr/bin/env bash
# Stop the LocalStack that start.sh started: by PID (SIGTERM, then SIGKILL after 15 s) for the
# venv route, `docker compose down` for the Docker route. Removes the PID file. Safe to run
# when nothing is running. LocalStack's in-memory state is lost (no persistence).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

take_lock 9 start # not while a start.sh is starting it
DOCKER_MARK=$GARDEN_RUN_DIR/localstack.docker
if [ -f "$DOCKER_MARK" ]; then
  read -r -a compose <"$DOCKER_MARK"
  log "stopping the LocalStack container (${compose[*]} down)"
  "${compose[@]}" -f "$GARDEN_LS_DIR/docker-compose.yml" down || log "compose down failed; check 'docker ps'"
  rm -f "$DOCKER_MARK"
fi
stop_pid LocalStack "$GARDEN_RUN_DIR/localstack.pid" garden_localstack.run "${GARDEN_STOP_GRACE:-15}"
