#!/usr/bin/env bash
# Real NATS with JetStream (Debian package nats-server) on 127.0.0.1: one server, or a
# cluster of N on loopback; no auth, user/password, nkey, or operator JWTs with a .creds
# file. See README.md in this folder.
SERVICE=nats
# shellcheck source=_common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/_common.sh"

usage() {
    cat >&2 <<'EOF'
usage: nats.sh [start] [PORT|auto] [--cluster N] [--auth MODES] [--record SUBJECTS] [--state-dir DIR]
                                   start (or reuse) one server, or N (2..7) clustered ones
       nats.sh stop [PORT|--all]   stop every server of the instance
       nats.sh status|env [PORT]   print the facts (exit 1 unless every server runs)
       nats.sh down [PORT] [--node I] [--kill]   stop server I (default 1; --kill: SIGKILL)
       nats.sh up [PORT] [--node I]              start server I again, with its data (back once it serves with JetStream on)
       nats.sh restart [PORT] [--node I] [--kill]  down, then up
       nats.sh messages [N] [--port PORT]        the last N (all without N) messages kept by
                                                 --record, oldest first, one JSON object a line
       nats.sh logs [PORT]         print the servers' logs
       nats.sh install             install what it needs, start nothing
  PORT is server 1's client port (the other servers' ports are picked free).
  MODES: none (default), user (user/password), nkey, user,nkey (both users on one server),
  or creds (operator mode: signed operator/account/user JWTs and a user .creds file).
  --record SUBJECTS (comma list, e.g. 'herald.>') keeps what is published there in the
  JetStream stream RECORDED, for `messages`.
env:   NATS_PORT (default 14222), NATS_CLUSTER (N, default 1), NATS_AUTH, NATS_USER (default
       herald), NATS_PASSWORD (default herald-secret), NATS_RECORD, HERALD_PEERS_STATE,
       HERALD_PEERS_HOME
prints URL= (nats:// URLs of every server, comma-separated) PORT= NODES= CLUSTER= MONITOR_URL=
       NODE<i>_URL= NODE<i>_PORT= NODE<i>_MONITOR_URL= NODE<i>_PID= NODE<i>_DIR= AUTH=
       [USER= PASSWORD=] [NKEY_SEED= NKEY_PUBLIC= NKEY_SEED_FILE=]
       [CREDS_FILE= ACCOUNT_PUBLIC= USER_PUBLIC= OPERATOR_JWT=] [RECORD_SUBJECTS= RECORD_STREAM=]
       PID= (server 1) PID_FILE= STATE_DIR= LOG= (server 1's log)
EOF
}

VALUE_OPTS="--cluster --auth --record --node" FLAG_OPTS="--kill"
parse_args 14222 "${NATS_PORT:-}" "$@"
[ "$CMD" = help ] && { usage; exit 0; }

HELPER="$PEERS_DIR/nats_helper.py"
VENV="$PEERS_HOME/venv-nats"
BIN=${NATS_SERVER_BIN:-/usr/sbin/nats-server}

ensure_server() {
    if [ -n "${NATS_SERVER_BIN:-}" ]; then apt_ensure curl python3; else apt_ensure nats-server curl python3; fi
    [ -x "$BIN" ] || install_failed "$BIN missing after installing nats-server"
}
# nats-py and nkeys: key and JWT generation, the recording stream, the self-test client.
ensure_client() {
    venv_ensure nats 'import nats, nkeys, nacl' "nats-py==2.16.0" "nkeys==0.2.1"
}

# One instance is servers n1..nN, each in its own folder below the instance's state dir.
node_dirs() { local d; for d in "$1"/n[1-9]; do [ -d "$d" ] && echo "$d"; done; return 0; }
instance_running() {
    local d any=''
    while IFS= read -r d; do instance_pid "$d" >/dev/null || return 1; any=1; done < <(node_dirs "$1")
    [ -n "$any" ]
}
instance_stop() {
    local d
    while IFS= read -r d; do stop_instance "$d"; done < <(node_dirs "$1")
    rm -f "$1/pid"
}

# node_healthy MONITOR_URL NODES [HEALTHZ_QUERY]: the server answers /healthz (with the
# query, if given), has a route to every other server, and sees a JetStream meta leader.
node_healthy() {
    python3 - "$1" "$2" "${3:-}" <<'EOF'
import json, sys, urllib.request
base, nodes, query = sys.argv[1], int(sys.argv[2]), sys.argv[3]
get = lambda p: json.load(urllib.request.urlopen(base + p, timeout=2))
assert get("/healthz" + query).get("status") == "ok"
if nodes > 1:
    assert get("/routez").get("num_routes", 0) >= nodes - 1
    assert (get("/jsz").get("meta_cluster") or {}).get("leader")
EOF
}

# free_ports K: K distinct free loopback ports, bound at once so none repeats.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

fact_of() { sed -n "s/^$1=//p" "$STATE_DIR/facts.env" | head -n 1; }
set_fact() { # KEY VALUE: replace the fact in facts.env
    local tmp="$STATE_DIR/facts.env.tmp"
    grep -v "^$1=" "$STATE_DIR/facts.env" >"$tmp" || true
    printf '%s=%s\n' "$1" "$2" >>"$tmp"
    mv "$tmp" "$STATE_DIR/facts.env"
}

# launch_node I: start server I from its config (its data is kept), wait until it is healthy.
launch_node() {
    local i=$1 nd="$STATE_DIR/n$1" nodes
    nodes=$(fact_of NODES)
    STATE_DIR=$nd launch "$nd/nats.log" "$BIN" -c "$nd/nats.conf"
    if [ "$i" = 1 ]; then echo "$LAUNCHED_PID" >"$STATE_DIR/pid"; fi
    NODE_PID=$LAUNCHED_PID
}

# wait_node I PID [HEALTHZ_QUERY]: wait until server I is healthy, with a route to every
# server that runs (a server brought back while another is still down cannot reach that one).
wait_node() {
    local i=$1 pid=$2 query=${3:-} nd="$STATE_DIR/n$1" d running=0
    while IFS= read -r d; do
        if instance_pid "$d" >/dev/null; then running=$((running + 1)); fi
    done < <(node_dirs "$STATE_DIR")
    wait_ready "$pid" "$nd/nats.log" "nats-server $i" node_healthy "$(fact_of "NODE${i}_MONITOR_URL")" "$running" "$query"
}

node_command() {
    resolve_instance
    [ -s "$STATE_DIR/facts.env" ] || die 1 "no nats instance on port $PORT in $STATE_BASE"
    local i=${OPT[--node]:-1} pid
    [[ "$i" =~ ^[1-9]$ ]] && [ -f "$STATE_DIR/n$i/nats.conf" ] || die $EXIT_USAGE "the instance on port $PORT has no server $i"
    local nd="$STATE_DIR/n$i"
    if [ "$CMD" = down ] || [ "$CMD" = restart ]; then
        if pid=$(instance_pid "$nd"); then
            if [ -n "${OPT[--kill]:-}" ]; then
                kill -KILL "$pid" 2>/dev/null || true
                for _ in $(seq 1 50); do pid_ours "$pid" "$nd" || break; sleep 0.1; done
                log "killed server $i (pid $pid)"
                echo "KILLED=$pid"
            else
                stop_instance "$nd"
            fi
        fi
        rm -f "$nd/pid"
        [ "$i" = 1 ] && rm -f "$STATE_DIR/pid"
    fi
    if [ "$CMD" = up ] || [ "$CMD" = restart ]; then
        if pid=$(instance_pid "$nd"); then
            log "server $i is already running (pid $pid)"
        else
            ensure_server
            launch_node "$i"
            # Back means serving with JetStream on: its copies of the streams and consumers
            # catch up by themselves, which under load can take longer than any wait here.
            wait_node "$i" "$NODE_PID" "?js-server-only=true"
            set_fact "NODE${i}_PID" "$NODE_PID"
            [ "$i" = 1 ] && set_fact PID "$NODE_PID"
            log "server $i is up again (pid $NODE_PID)"
        fi
        print_facts
    fi
    exit 0
}

common_cmd || true
case "$CMD" in
    install) ensure_server; ensure_client; exit 0 ;;
    down|up|restart) node_command ;;
    messages)
        resolve_instance
        [ -s "$STATE_DIR/facts.env" ] || die 1 "no nats instance on port $PORT in $STATE_BASE"
        [ -n "$(fact_of RECORD_STREAM)" ] || die 1 "the instance on port $PORT was started without --record"
        exec "$VENV/bin/python" "$HELPER" messages "$STATE_DIR/client.json" "${POSITIONAL[0]:-0}"
        ;;
    start) ;;
    *) usage; exit $EXIT_USAGE ;;
esac

NODES=${OPT[--cluster]:-${NATS_CLUSTER:-1}}
[[ "$NODES" =~ ^[1-7]$ ]] || die $EXIT_USAGE "--cluster takes a number of servers from 1 to 7"
AUTH=${OPT[--auth]:-${NATS_AUTH:-none}}
[[ "$AUTH" =~ ^(none|user|nkey|user,nkey|nkey,user|creds)$ ]] || die $EXIT_USAGE "--auth must be none, user, nkey, user,nkey or creds"
USER_NAME=${NATS_USER:-herald}
PASSWORD=${NATS_PASSWORD:-herald-secret}
[[ "$USER_NAME$PASSWORD" =~ ^[A-Za-z0-9._-]+$ ]] || die $EXIT_USAGE "NATS_USER and NATS_PASSWORD take letters, digits, '.', '_' and '-'"
RECORD=${OPT[--record]:-${NATS_RECORD:-}}

ensure_server
NEEDS_CLIENT=
if [ "$AUTH" != none ] || [ -n "$RECORD" ]; then NEEDS_CLIENT=1; ensure_client; fi

begin_start
# Ports: server 1 takes PORT; every other port (clients, monitoring, routes) is picked free.
read -r -a SPARE <<<"$(free_ports $((NODES * 3)))"
CLIENT_PORTS=("$PORT") MONITOR_PORTS=() ROUTE_PORTS=()
for i in $(seq 1 "$NODES"); do
    [ "$i" -gt 1 ] && CLIENT_PORTS+=("${SPARE[$(( (i - 1) * 3 ))]}")
    MONITOR_PORTS+=("${SPARE[$(( (i - 1) * 3 + 1 ))]}")
    ROUTE_PORTS+=("${SPARE[$(( (i - 1) * 3 + 2 ))]}")
done
URLS=()
for p in "${CLIENT_PORTS[@]}"; do URLS+=("nats://127.0.0.1:$p"); done
URL=$(IFS=,; echo "${URLS[*]}")

# Authentication, in one file every server includes.
if [ -n "$NEEDS_CLIENT" ]; then
    AUTH_FACTS=$("$VENV/bin/python" "$HELPER" auth "$STATE_DIR" "$AUTH" "$USER_NAME" "$PASSWORD" "$URL") \
        || die $EXIT_START "could not write the authentication config"
else
    echo "# no authentication" >"$STATE_DIR/auth.conf"
    AUTH_FACTS=
fi

ROUTES=()
for p in "${ROUTE_PORTS[@]}"; do ROUTES+=("nats-route://127.0.0.1:$p"); done
for i in $(seq 1 "$NODES"); do
    nd="$STATE_DIR/n$i"
    mkdir -p "$nd/js"
    {
        echo "server_name: herald-n$i"
        echo "listen: 127.0.0.1:${CLIENT_PORTS[$((i - 1))]}"
        echo "http: 127.0.0.1:${MONITOR_PORTS[$((i - 1))]}"
        echo "logtime: true"
        echo "jetstream {"
        echo "  store_dir: \"$nd/js\""
        echo "  max_memory_store: 256MB"
        echo "  max_file_store: 4GB"
        echo "}"
        if [ "$NODES" -gt 1 ]; then
            echo "cluster {"
            echo "  name: herald"
            echo "  listen: 127.0.0.1:${ROUTE_PORTS[$((i - 1))]}"
            echo "  routes: [$(IFS=,; echo "${ROUTES[*]}")]"
            echo "}"
        fi
        echo "include ../auth.conf"
    } >"$nd/nats.conf"
done

fact URL "$URL"
fact PORT "$PORT"
fact NODES "$NODES"
fact CLUSTER "$([ "$NODES" -gt 1 ] && echo herald)"
fact MONITOR_URL "http://127.0.0.1:${MONITOR_PORTS[0]}"
fact AUTH "$AUTH"
[ -n "$AUTH_FACTS" ] && printf '%s\n' "$AUTH_FACTS" >>"$STATE_DIR/facts.env"
PIDS=()
for i in $(seq 1 "$NODES"); do
    fact "NODE${i}_URL" "${URLS[$((i - 1))]}"
    fact "NODE${i}_PORT" "${CLIENT_PORTS[$((i - 1))]}"
    fact "NODE${i}_MONITOR_URL" "http://127.0.0.1:${MONITOR_PORTS[$((i - 1))]}"
    fact "NODE${i}_DIR" "$STATE_DIR/n$i"
    launch_node "$i"
    PIDS+=("$NODE_PID")
done
# All are launched before any is waited for: a cluster's servers find each other by routes.
for i in $(seq 1 "$NODES"); do
    wait_node "$i" "${PIDS[$((i - 1))]}"
    fact "NODE${i}_PID" "${PIDS[$((i - 1))]}"
done
if [ -n "$NEEDS_CLIENT" ]; then
    "$VENV/bin/python" "$HELPER" wait-js "$STATE_DIR/client.json" "$READY_TIMEOUT" \
        || { instance_stop "$STATE_DIR" >/dev/null; die $EXIT_START "JetStream did not answer a client (see $STATE_DIR/n1/nats.log)"; }
fi
if [ -n "$RECORD" ]; then
    "$VENV/bin/python" "$HELPER" record "$STATE_DIR/client.json" "$RECORD" "$(( NODES < 3 ? NODES : 3 ))" \
        || { instance_stop "$STATE_DIR" >/dev/null; die $EXIT_START "could not create the stream RECORDED on $RECORD"; }
    fact RECORD_SUBJECTS "$RECORD"
    fact RECORD_STREAM RECORDED
fi
fact PID "${PIDS[0]}"
fact PID_FILE "$STATE_DIR/pid"
fact STATE_DIR "$STATE_DIR"
fact LOG "$STATE_DIR/n1/nats.log"
log "ready at $URL ($NODES server(s), auth $AUTH, pids ${PIDS[*]})"
finish_start
