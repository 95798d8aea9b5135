#!/usr/bin/env bash
# A two-node Ray cluster on one machine, for trying rayflow's placement and `ray job submit`.
#
#   cluster/local.sh start    head on port 6380 (Redis holds 6379), dashboard on 127.0.0.1:8265,
#                             a second node offering the custom resource node_b=1, and
#                             `rayflow server` on http://127.0.0.1:8470 driving runs on this cluster
#   cluster/local.sh status   show the nodes and whether the server answers
#   cluster/local.sh stop     stop the server (it hands its runs back), then both nodes (only
#                             these: other Ray instances and servers are left alone)
#
# Settings (environment): RAYFLOW_CLUSTER_DIR (state, default ~/.rayflow/local-cluster),
# RAYFLOW_HEAD_PORT (6380), RAYFLOW_DASHBOARD_PORT (8265), RAYFLOW_HEAD_CPUS (2),
# RAYFLOW_NODE_B_CPUS (1), RAYFLOW_CLIENT_PORT (Ray client server; default a free port).
# The server: RAYFLOW_LOCAL_SERVER (1; 0 starts none), RAYFLOW_SERVER_PORT (8470),
# RAYFLOW_SERVER_STORE (its run store; default $RAYFLOW_STORE, else sqlite in the state
# folder), RAYFLOW_SERVER_AUTH (auto: token once the store holds a token, else none; the
# server binds 127.0.0.1 only). Its log is $RAYFLOW_CLUSTER_DIR/server.log. When the port is
# taken (another server), the cluster starts without one and says so.
# Each node's dashboard agent gets a free HTTP port (Ray's default, 52365, is often held by
# another Ray instance on the same machine, and without it `ray job submit` fails with
# "No available agent to submit job"). Run it with the project's virtualenv first on PATH so the
# cluster's workers run the same Python (`PATH=$PWD/.venv/bin:$PATH cluster/local.sh start`).
set -euo pipefail

DIR="${RAYFLOW_CLUSTER_DIR:-$HOME/.rayflow/local-cluster}"
PORT="${RAYFLOW_HEAD_PORT:-6380}"
DASH="${RAYFLOW_DASHBOARD_PORT:-8265}"
HEAD_CPUS="${RAYFLOW_HEAD_CPUS:-2}"
B_CPUS="${RAYFLOW_NODE_B_CPUS:-1}"
WITH_SERVER="${RAYFLOW_LOCAL_SERVER:-1}"
SERVER_PORT="${RAYFLOW_SERVER_PORT:-8470}"
SERVER_STORE="${RAYFLOW_SERVER_STORE:-${RAYFLOW_STORE:-sqlite:///$DIR/rayflow.db}}"
SERVER_AUTH="${RAYFLOW_SERVER_AUTH:-auto}"
SERVER_URL="http://127.0.0.1:$SERVER_PORT"
export RAY_AUTH_MODE=token   # clusters started with `ray start` require the token (written to ~/.ray/auth_token)
# On SIGTERM `ray start --block` first drains its node for up to 30 s (for Serve); a local
# test cluster has nothing to drain, so stop at once.
export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="${RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S:-0}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'; }

ip() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.connect(("10.255.255.255", 1)); print(s.getsockname()[0])
except OSError:
    print("127.0.0.1")' ; }

alive_nodes() {
  python3 - "$ADDRESS" <<'PY' 2>/dev/null || echo 0
import sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(sum(1 for n in ray.nodes() if n["Alive"]))
PY
}

wait_nodes() {  # wait until $1 nodes are alive
  local count=0
  for _ in $(seq 1 60); do
    count=$(alive_nodes | tail -n 1)
    [ "${count:-0}" -ge "$1" ] && return 0
    sleep 1
  done
  echo "cluster: only ${count:-0} of $1 nodes came up; see $DIR/*.log" >&2
  return 1
}

start() {
  if [ -f "$DIR/head.pgid" ] && kill -0 -"$(cat "$DIR/head.pgid")" 2>/dev/null; then
    echo "already running: $(cat "$DIR/address")"; return 0
  fi
  mkdir -p "$DIR"
  HOST=$(ip)
  ADDRESS="$HOST:$PORT"
  setsid ray start --head --port="$PORT" --dashboard-host=127.0.0.1 --dashboard-port="$DASH" \
      --dashboard-agent-listen-port="$(free_port)" --ray-client-server-port="${RAYFLOW_CLIENT_PORT:-$(free_port)}" \
      --num-cpus="$HEAD_CPUS" --block >"$DIR/head.log" 2>&1 < /dev/null &
  echo $! >"$DIR/head.pgid"
  echo "$ADDRESS" >"$DIR/address"
  wait_nodes 1 || { stop; return 1; }
  setsid ray start --address="$ADDRESS" --num-cpus="$B_CPUS" --resources='{"node_b": 1}' \
      --dashboard-agent-listen-port="$(free_port)" --block \
      >"$DIR/node_b.log" 2>&1 < /dev/null &
  echo $! >"$DIR/node_b.pgid"
  wait_nodes 2 || { stop; return 1; }
  echo "started: address $ADDRESS, dashboard http://127.0.0.1:$DASH"
  echo "use: RAY_ADDRESS=$ADDRESS rayflow run ...   or   ray job submit --address http://127.0.0.1:$DASH ..."
  [ "$WITH_SERVER" = "0" ] || start_server
}

port_taken() {  # something listens on 127.0.0.1:$1
  python3 -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)' "$1"
}

server_answers() {  # GET /healthz answers 200 (it needs no token)
  python3 -c 'import sys, urllib.request
try:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # loopback: never a proxy
    sys.exit(0 if opener.open(sys.argv[1] + "/healthz", timeout=2).status == 200 else 1)
except Exception:
    sys.exit(1)' "$SERVER_URL"
}

shown_url() {  # a URL with its password as *** (up to the last @, as rayflow.core.redact reads it)
  printf '%s' "$1" | sed -E 's#^([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@[]*):.*@#\1:***@#'
}

start_server() {  # `rayflow server` beside the cluster: a Ray driver joined to it, on loopback
  if ! command -v rayflow >/dev/null 2>&1; then
    echo "server: not started (no \`rayflow\` on PATH; put the virtualenv first on PATH)" >&2; return 0
  fi
  if port_taken "$SERVER_PORT"; then
    echo "server: not started (127.0.0.1:$SERVER_PORT is taken; set RAYFLOW_SERVER_PORT)" >&2; return 0
  fi
  # the store through the environment, not the command line: its URL may hold a password
  RAYFLOW_STORE="$SERVER_STORE" setsid rayflow server --host 127.0.0.1 --port "$SERVER_PORT" \
      --address "$ADDRESS" --auth "$SERVER_AUTH" >"$DIR/server.log" 2>&1 < /dev/null &
  echo $! >"$DIR/server.pgid"
  echo "$SERVER_URL" >"$DIR/server_url"
  for _ in $(seq 1 120); do
    if server_answers; then
      echo "server: $SERVER_URL (store $(shown_url "$SERVER_STORE"), log $DIR/server.log)"
      echo "use: rayflow --server $SERVER_URL submit ...   (RAYFLOW_SERVER=$SERVER_URL)"
      return 0
    fi
    kill -0 "$(cat "$DIR/server.pgid")" 2>/dev/null || break
    sleep 0.5
  done
  echo "server: did not answer on $SERVER_URL; see $DIR/server.log (the cluster is up without it)" >&2
  tail -n 5 "$DIR/server.log" >&2 || true
  stop_group server 60 80
  rm -f "$DIR/server_url"
  return 0
}

members() {  # live processes of process group $1 and their descendants (Ray workers leave the group)
  ps -eo pid=,ppid=,pgid=,stat= | awk -v g="$1" -v extra=" ${2:-} " '
    { pid[NR] = $1; ppid[NR] = $2; pg[NR] = $3; st[NR] = $4 }
    END {
      for (i = 1; i <= NR; i++) if (pg[i] == g || index(extra, " " pid[i] " ")) keep[pid[i]] = 1
      do { grown = 0
           for (i = 1; i <= NR; i++) if (!(pid[i] in keep) && (ppid[i] in keep)) { keep[pid[i]] = 1; grown = 1 }
      } while (grown)
      for (i = 1; i <= NR; i++) if ((pid[i] in keep) && st[i] !~ /^Z/) print pid[i]
    }'
}

stop_group() {  # TERM the leader ($1: `ray start` stops its node, the server hands its runs back),
                # then TERM every process left after $2 half-seconds and KILL after $3 (default 8 s, 12 s)
  local file="$DIR/$1.pgid"
  [ -f "$file" ] || return 0
  local term_at="${2:-16}" kill_at="${3:-24}"
  local pgid seen="" live signal
  pgid=$(cat "$file")
  kill -TERM "$pgid" 2>/dev/null || true
  for i in $(seq 1 $((kill_at + 6))); do
    live=$(members "$pgid" "$seen")   # remembered pids too: once a parent dies its children move to init
    [ -n "$live" ] || break
    seen=$(echo "$seen $live" | tr ' ' '\n' | sort -u | tr '\n' ' ')
    signal=""
    [ "$i" -eq "$term_at" ] && signal=TERM   # every process left
    [ "$i" -ge "$kill_at" ] && signal=KILL   # for good
    [ -z "$signal" ] || kill -"$signal" $live 2>/dev/null || true
    sleep 0.5
  done
  rm -f "$file"
}

stop() {
  stop_group server 40 50   # first, while the cluster is up: up to 20 s to hand its runs back
  rm -f "$DIR/server_url"
  stop_group node_b
  stop_group head
  rm -f "$DIR/address"
  echo "stopped"
}

status() {
  if [ ! -f "$DIR/address" ]; then echo "not running"; return 1; fi
  ADDRESS=$(cat "$DIR/address")
  echo "address $ADDRESS, alive nodes: $(alive_nodes | tail -n 1)"
  if [ -f "$DIR/server_url" ]; then
    SERVER_URL=$(cat "$DIR/server_url")
    if server_answers; then echo "server $SERVER_URL: up"; else echo "server $SERVER_URL: not answering (see $DIR/server.log)"; fi
  else
    echo "server: none"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
