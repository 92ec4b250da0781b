#!/usr/bin/env bash
# Start LocalStack community on 127.0.0.1:4566 and wait until it is healthy.
#
# Two routes, chosen automatically:
#   docker  when a Docker engine answers (`docker info`): docker-compose.yml beside this file
#           (pinned community image; DynamoDB there is LocalStack's built-in provider).
#   venv    otherwise: LocalStack installed from PyPI into localstack/.venv (pinned with the
#           committed constraints file) and run on the host as `python -m garden_localstack.run`;
#           DynamoDB is served from moto by the plugin in localstack/plugins/ (offline, no Java).
# Force one with GARDEN_LOCALSTACK_MODE=docker|venv.
#
# Idempotent: a healthy LocalStack already on the port is left alone; a stale PID file is removed.
# The install is skipped when the venv is complete (stamp file matching the constraints, the
# plugin sources and the Python version).
#
# Environment (all optional):
#   GARDEN_LOCALSTACK_MODE     auto (default) | docker | venv
#   GARDEN_LOCALSTACK_TIMEOUT  seconds to wait for health (default 120)
#   GARDEN_LOCALSTACK_SERVICES services to enable (default below)
#   GARDEN_PYTHON              interpreter for the venv (default: newest supported under ~/.pyenv)
#   GARDEN_RUN_DIR             PID file, log and state directory (default localstack/.run)
#   GARDEN_LOCALSTACK_PORT     port on 127.0.0.1 (default 4566; the rest of the stack expects 4566)
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

VENV=$GARDEN_LS_DIR/.venv
PID_FILE=$GARDEN_RUN_DIR/localstack.pid
LOG_FILE=$GARDEN_RUN_DIR/localstack.log
DOCKER_MARK=$GARDEN_RUN_DIR/localstack.docker
VOLUME_DIR=$GARDEN_RUN_DIR/localstack-volume
PORT=${GARDEN_LOCALSTACK_PORT:-4566}
HEALTH_URL=http://127.0.0.1:$PORT/_localstack/health
READY_URL=http://127.0.0.1:$PORT/_localstack/init/ready
TIMEOUT=${GARDEN_LOCALSTACK_TIMEOUT:-120}
MODE=${GARDEN_LOCALSTACK_MODE:-auto}
# sqs: job and task queues; stepfunctions: the state machines; dynamodb: the garden table;
# events: EventBridge rules for schedules; scheduler: EventBridge Scheduler schedules (created,
# never fired by LocalStack); iam: state machine and worker roles; sts: caller identity/account;
# cloudwatch: alarms. logs is left out: nothing in the project calls CloudWatch Logs.
SERVICES=${GARDEN_LOCALSTACK_SERVICES:-sqs,stepfunctions,dynamodb,events,scheduler,iam,sts,cloudwatch}
mkdir -p "$GARDEN_RUN_DIR"

# One start at a time: concurrent callers (parallel tests) wait here, then find it healthy.
take_lock 9 start $((TIMEOUT + 300))

healthy() {
  local body
  body=$(http_ok "$HEALTH_URL") || return 1
  case $body in *'"services"'*) ;; *) return 1 ;; esac
  # init/ready reports completed once the startup hooks have run (both routes serve it)
  body=$(http_ok "$READY_URL") || return 1
  case $body in *'"completed": true'* | *'"completed":true'*) return 0 ;; *) return 1 ;; esac
}

wait_healthy() {
  local started=$1 pid=${2:-}
  local deadline=$((SECONDS + TIMEOUT))
  until healthy; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      show_log_tail "$LOG_FILE"
      die "LocalStack exited during startup; log: $LOG_FILE"
    fi
    if ((SECONDS >= deadline)); then
      if [ -f "$DOCKER_MARK" ]; then docker logs --tail 100 garden-localstack >>"$LOG_FILE" 2>&1 || true; fi
      show_log_tail "$LOG_FILE"
      die "LocalStack not healthy after ${TIMEOUT}s; log: $LOG_FILE (stop it with localstack/stop.sh)"
    fi
    sleep 0.25
  done
  log "LocalStack healthy on 127.0.0.1:$PORT after $(($(now_ms) - started)) ms (log: $LOG_FILE)"
}

# --- already running? --------------------------------------------------------------------------
if healthy; then
  log "LocalStack already healthy on 127.0.0.1:$PORT; nothing to do"
  exit 0
fi
if pid_alive "$PID_FILE" garden_localstack.run; then
  log "LocalStack (pid $(cat "$PID_FILE")) is running but not healthy yet; waiting"
  wait_healthy "$(now_ms)" "$(cat "$PID_FILE")"
  exit 0
fi
if tcp_open 127.0.0.1 "$PORT"; then
  die "port $PORT is taken by something that is not a healthy LocalStack; free it (ss -ltnp 'sport = :$PORT')"
fi

# --- docker route ------------------------------------------------------------------------------
compose=()
if [ "$MODE" != venv ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
  else
    log "a Docker engine answers but neither 'docker compose' nor 'docker-compose' exists"
  fi
fi
if [ "$MODE" = docker ] && [ ${#compose[@]} -eq 0 ]; then
  die "GARDEN_LOCALSTACK_MODE=docker needs a running Docker engine and docker compose"
fi
if [ ${#compose[@]} -gt 0 ]; then
  LOG_FILE=$GARDEN_RUN_DIR/localstack-docker.log # compose output, container logs on failure
  log "Docker engine found: starting LocalStack with ${compose[*]} (localstack/docker-compose.yml)"
  started=$(now_ms)
  GARDEN_LOCALSTACK_SERVICES=$SERVICES GARDEN_RUN_DIR=$GARDEN_RUN_DIR GARDEN_LOCALSTACK_PORT=$PORT \
    "${compose[@]}" -f "$GARDEN_LS_DIR/docker-compose.yml" up -d >>"$LOG_FILE" 2>&1 ||
    { show_log_tail "$LOG_FILE"; die "docker compose up failed; log: $LOG_FILE"; }
  echo "${compose[*]}" >"$DOCKER_MARK"
  wait_healthy "$started"
  exit 0
fi
[ "$MODE" = auto ] || [ "$MODE" = venv ] || die "GARDEN_LOCALSTACK_MODE must be auto, docker or venv (got $MODE)"

# --- venv route: choose the interpreter and the LocalStack release -----------------------------
py_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
choose_python() {
  local want cand
  if [ -n "${GARDEN_PYTHON:-}" ]; then echo "$GARDEN_PYTHON"; return; fi
  # 2026.3.0 needs >= 3.12 (seen working on 3.13); 4.9.2 is the last release that runs on 3.11.
  for want in 3.13 3.12 3.11; do
    # shellcheck disable=SC2012 # version directories have plain names
    for cand in $(ls -d "$HOME"/.pyenv/versions/"$want".*/bin/python3 2>/dev/null | sort -V -r) \
      "$(command -v "python$want" || true)"; do
      [ -n "$cand" ] && [ -x "$cand" ] && [ "$(py_version "$cand")" = "$want" ] && { echo "$cand"; return; }
    done
  done
  return 1
}
PYTHON=$(choose_python) || die "no Python 3.11-3.13 found (looked in ~/.pyenv/versions and PATH); set GARDEN_PYTHON"
PYV=$(py_version "$PYTHON") || die "cannot run $PYTHON"
case $PYV in
  3.11) LS_VERSION=4.9.2 CONSTRAINTS=$GARDEN_LS_DIR/constraints-4.9.2-py3.11.txt ;;
  3.1[2-9]) LS_VERSION=2026.3.0 CONSTRAINTS=$GARDEN_LS_DIR/constraints-2026.3.0-py3.13.txt ;;
  *) die "$PYTHON is Python $PYV; LocalStack needs 3.11 (4.9.2) or 3.12+ (2026.3.0)" ;;
esac

# --- venv route: install unless complete -------------------------------------------------------
# Two stamps: .garden-stamp (interpreter + release + constraints: a change rebuilds the venv) and
# .garden-plugin-stamp (plugins/ sources: a change reinstalls only the plugin, a few seconds).
sha() { sha256sum | cut -d' ' -f1; }
BASE_STAMP=$({ echo "python $PYTHON $PYV localstack-core $LS_VERSION"; cat "$CONSTRAINTS"; } | sha)
PLUGIN_STAMP=$(find "$GARDEN_LS_DIR/plugins" -type f \( -name '*.py' -o -name '*.toml' \) -not -path '*/build/*' \
  -print0 | sort -z | xargs -0 cat | sha)
install_step() { # run "$@" with output to the install log; on failure show it and stop
  "$@" >>"$GARDEN_RUN_DIR/install.log" 2>&1 || {
    show_log_tail "$GARDEN_RUN_DIR/install.log"
    die "install failed; log: $GARDEN_RUN_DIR/install.log"
  }
}
if [ "$(cat "$VENV/.garden-stamp" 2>/dev/null || true)" != "$BASE_STAMP" ]; then
  log "installing localstack-core[runtime]==$LS_VERSION for Python $PYV ($PYTHON) into $VENV"
  log "install log: $GARDEN_RUN_DIR/install.log"
  t0=$(now_ms)
  : >"$GARDEN_RUN_DIR/install.log"
  rm -f "$VENV/.garden-stamp" "$VENV/.garden-plugin-stamp"
  install_step "$PYTHON" -m venv --clear "$VENV"
  install_step "$VENV/bin/python" -m pip install --disable-pip-version-check -c "$CONSTRAINTS" \
    "localstack-core[runtime]==$LS_VERSION"
  install_step "$VENV/bin/python" -c 'import localstack.runtime.main'
  echo "$BASE_STAMP" >"$VENV/.garden-stamp"
  log "installed LocalStack in $(($(now_ms) - t0)) ms"
fi
if [ "$(cat "$VENV/.garden-plugin-stamp" 2>/dev/null || true)" != "$PLUGIN_STAMP" ]; then
  log "installing the plugin package localstack/plugins (garden-localstack) into $VENV"
  # built from a copy so the source tree gets no build/ or egg-info directories
  tmp=$(mktemp -d)
  cp -r "$GARDEN_LS_DIR/plugins/." "$tmp/"
  rm -rf "$tmp/build" "$tmp"/*.egg-info
  install_step "$VENV/bin/python" -m pip install --disable-pip-version-check --no-deps --force-reinstall "$tmp"
  rm -rf "$tmp"
  install_step "$VENV/bin/python" -c 'import garden_localstack.providers, garden_localstack.run'
  echo "$PLUGIN_STAMP" >"$VENV/.garden-plugin-stamp"
fi

# --- venv route: start -------------------------------------------------------------------------
mkdir -p "$VOLUME_DIR"
[ -f "$LOG_FILE" ] && mv -f "$LOG_FILE" "$LOG_FILE.1"
log "starting LocalStack $LS_VERSION (services: $SERVICES); log: $LOG_FILE"
started=$(now_ms)
(
  cd "$GARDEN_RUN_DIR"
  # OVERRIDE_IN_DOCKER=0 + FILESYSTEM_ROOT keep LocalStack's files under .run/ (in a container
  # image it would otherwise write to /var/lib/localstack). The launcher
  # garden_localstack.run (plugins/) binds the gateway to 127.0.0.1: LocalStack's twisted server
  # alone ignores the host of GATEWAY_LISTEN and binds 0.0.0.0.
  export GATEWAY_LISTEN=127.0.0.1:$PORT LOCALSTACK_HOST=127.0.0.1:$PORT \
    DNS_ADDRESS=0 DISABLE_EVENTS=1 SQS_ENDPOINT_STRATEGY=path \
    SERVICES="$SERVICES" PROVIDER_OVERRIDE_DYNAMODB=moto \
    LOCALSTACK_VOLUME_DIR="$VOLUME_DIR" FILESYSTEM_ROOT="$VOLUME_DIR/filesystem" OVERRIDE_IN_DOCKER=0 \
    SKIP_SSL_CERT_DOWNLOAD=1 PYTHONUNBUFFERED=1
  nohup "$VENV/bin/python" -m garden_localstack.run >>"$LOG_FILE" 2>&1 </dev/null 8>&- 9>&- &
  echo $! >"$PID_FILE"
)
wait_healthy "$started" "$(cat "$PID_FILE")"
# the port must be ours: a LocalStack that could not bind keeps running without serving
if command -v ss >/dev/null 2>&1; then
  owner=$(ss -Hltnp "sport = :$PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2 || true)
  if [ -n "$owner" ] && [ "$owner" != "$(cat "$PID_FILE")" ]; then
    die "port $PORT is served by pid $owner, not by the LocalStack just started (pid $(cat "$PID_FILE"));" \
      "run localstack/stop.sh and stop pid $owner"
  fi
fi
