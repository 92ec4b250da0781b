# shellcheck shell=bash
# Shared helpers for the localstack/ scripts (sourced, not run).
#
# Everything the scripts leave behind at run time lives in $GARDEN_RUN_DIR
# (default localstack/.run): PID files, logs, LocalStack's state directory.

GARDEN_LS_DIR=${GARDEN_LS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
GARDEN_REPO_DIR=$(cd "$GARDEN_LS_DIR/.." && pwd) # used by up.sh
export GARDEN_REPO_DIR
GARDEN_RUN_DIR=${GARDEN_RUN_DIR:-$GARDEN_LS_DIR/.run}
mkdir -p "$GARDEN_RUN_DIR" && GARDEN_RUN_DIR=$(cd "$GARDEN_RUN_DIR" && pwd) # absolute from here on

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# now_ms: milliseconds since the epoch (for timing figures).
now_ms() { date +%s%3N; }

# http_ok URL: exit 0 when URL answers 2xx within 2 s. Prints the body on stdout.
http_ok() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 2 "$1" 2>/dev/null
  else
    python3 - "$1" <<'EOF' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.stdout.write(r.read().decode())
EOF
  fi
}

# tcp_open HOST PORT: exit 0 when something accepts TCP connections there.
tcp_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# pid_alive PIDFILE [PATTERN]: exit 0 when the PID file names a live process whose command line
# contains PATTERN (guards against a recycled PID). Removes a stale PID file and exits 1.
pid_alive() {
  local file=$1 pattern=${2:-} pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    if [ -z "$pattern" ] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"; then
      return 0
    fi
  fi
  log "removing stale PID file $file (pid ${pid:-?} is gone or is another program)"
  rm -f "$file"
  return 1
}

# stop_pid NAME PIDFILE [PATTERN] [GRACE_SECONDS]: SIGTERM, wait, SIGKILL after the grace period.
# Safe when the process is not running. Removes the PID file.
stop_pid() {
  local name=$1 file=$2 pattern=${3:-} grace=${4:-15} pid i
  if ! pid_alive "$file" "$pattern"; then
    log "$name is not running"
    return 0
  fi
  pid=$(cat "$file")
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop within ${grace}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  # only if it still names the process stopped here (a concurrent start may have written a new one)
  [ "$(cat "$file" 2>/dev/null || true)" = "$pid" ] && rm -f "$file"
  log "$name stopped"
}

# take_lock FD NAME [SECONDS]: serialise with other scripts holding $GARDEN_RUN_DIR/NAME.lock.
# start.sh/stop.sh use fd 9 and start.lock, up.sh/down.sh fd 8 and up.lock; background processes
# are started with both descriptors closed so that they never hold a lock.
take_lock() {
  local fd=$1 name=$2 wait=${3:-600}
  command -v flock >/dev/null 2>&1 || return 0
  eval "exec $fd>\"\$GARDEN_RUN_DIR/$name.lock\""
  flock -w "$wait" "$fd" || die "timed out after ${wait}s waiting for $GARDEN_RUN_DIR/$name.lock"
}

# show_log_tail FILE: the last lines of a log, for failure messages.
show_log_tail() {
  [ -f "$1" ] || return 0
  log "last lines of $1:"
  tail -n 30 "$1" >&2 || true
}

# wait_check NAME CHECK PID LOGFILE TIMEOUT: poll CHECK (a shell command) until it succeeds; fail
# with the log path when the process PID exits or TIMEOUT seconds pass.
wait_check() {
  local name=$1 check=$2 pid=$3 logfile=$4 timeout=$5 t0
  t0=$(now_ms)
  local deadline=$((SECONDS + timeout))
  until eval "$check" >/dev/null 2>&1; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      show_log_tail "$logfile"
      die "$name exited during startup; log: $logfile"
    fi
    if ((SECONDS >= deadline)); then
      show_log_tail "$logfile"
      die "$name not healthy after ${timeout}s; log: $logfile"
    fi
    sleep 0.2
  done
  log "$name healthy after $(($(now_ms) - t0)) ms (log: $logfile)"
}

# start_proc NAME PATTERN CHECK -- COMMAND...: start COMMAND in the background (PID file and log
# under $GARDEN_RUN_DIR/NAME.{pid,log}) unless it already runs, then wait for CHECK.
# PATTERN must occur in the command line (to recognise the process behind a PID file).
start_proc() {
  local name=$1 pattern=$2 check=$3 pidfile logfile pid
  shift 4
  pidfile=$GARDEN_RUN_DIR/$name.pid
  logfile=$GARDEN_RUN_DIR/$name.log
  mkdir -p "$GARDEN_RUN_DIR"
  if pid_alive "$pidfile" "$pattern"; then
    pid=$(cat "$pidfile")
    if eval "$check" >/dev/null 2>&1; then
      log "$name already running (pid $pid)"
      return 0
    fi
    log "$name (pid $pid) is running but not healthy yet; waiting"
    wait_check "$name" "$check" "$pid" "$logfile" "${GARDEN_START_TIMEOUT:-60}"
    return 0
  fi
  if eval "$check" >/dev/null 2>&1; then
    log "warning: $name's port already answers, served by a process this script did not start; leaving it"
    return 0
  fi
  [ -f "$logfile" ] && mv -f "$logfile" "$logfile.1"
  log "starting $name: $*"
  nohup "$@" >"$logfile" 2>&1 </dev/null 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$pidfile"
  wait_check "$name" "$check" "$pid" "$logfile" "${GARDEN_START_TIMEOUT:-60}"
}
