#!/usr/bin/env bash
# An OTLP/HTTP trace receiver (otlp_collector.py) on 127.0.0.1 that decodes every body with
# the official OpenTelemetry protobuf definitions (PyPI opentelemetry-proto) and records it.
# See README.md in this folder.
SERVICE=otlp
# shellcheck source=_common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/_common.sh"

usage() {
    cat >&2 <<'EOF2'
usage: otlp-collector.sh [start] [PORT|auto] [--state-dir DIR]   start (or reuse) a receiver
       otlp-collector.sh stop [PORT|--all]     stop it (--all: every instance in the state dir)
       otlp-collector.sh status|env [PORT]     print the facts of a running receiver
       otlp-collector.sh messages [N] [--port PORT]
                                               the last N requests (all without N), one JSON
                                               object a line: path, headers, body_hex, and
                                               request (decoded, proto field names) or error
       otlp-collector.sh install               install what it needs, start nothing
env:   OTLP_PORT (default 14318), OTLP_STATUS (the answer's status, default 200),
       OTEL_PROTO_VERSION (default 1.45.2), HERALD_PEERS_STATE, HERALD_PEERS_HOME
prints URL=http://127.0.0.1:PORT TRACES_URL=URL/v1/traces LOG= (requests, JSON lines)
       SERVER_LOG= PID= PID_FILE= STATE_DIR=
EOF2
}

parse_args 14318 "${OTLP_PORT:-}" "$@"
[ "$CMD" = help ] && { usage; exit 0; }
common_cmd || true

case "$CMD" in
    messages)
        resolve_instance
        [ -f "$STATE_DIR/requests.jsonl" ] || die 1 "no request log in $STATE_DIR"
        limit=${POSITIONAL[0]:-0}
        [[ "$limit" =~ ^[0-9]+$ ]] || die $EXIT_USAGE "N must be a number"
        if [ "$limit" -gt 0 ]; then tail -n "$limit" "$STATE_DIR/requests.jsonl"; else cat "$STATE_DIR/requests.jsonl"; fi
        exit 0 ;;
    start|install) ;;
    *) usage; exit $EXIT_USAGE ;;
esac

STATUS=${OTLP_STATUS:-200}
[[ "$STATUS" =~ ^[1-5][0-9][0-9]$ ]] || die $EXIT_USAGE "OTLP_STATUS must be an HTTP status"
venv_ensure otlp 'from opentelemetry.proto.collector.trace.v1 import trace_service_pb2' \
    "opentelemetry-proto==${OTEL_PROTO_VERSION:-1.45.2}"
[ "$CMD" = install ] && exit 0

begin_start
LOG="$STATE_DIR/requests.jsonl"
: >"$LOG"
launch "$STATE_DIR/server.log" "$VENV/bin/python" -u "$PEERS_DIR/otlp_collector.py" \
    --port "$PORT" --log "$LOG" --ready-file "$STATE_DIR/listening" --status "$STATUS"
wait_ready "$LAUNCHED_PID" "$STATE_DIR/server.log" "OTLP receiver" \
    test -f "$STATE_DIR/listening"

fact URL "http://127.0.0.1:$PORT"
fact TRACES_URL "http://127.0.0.1:$PORT/v1/traces"
fact LOG "$LOG"
fact SERVER_LOG "$STATE_DIR/server.log"
fact PID "$LAUNCHED_PID"
fact PID_FILE "$STATE_DIR/pid"
fact STATE_DIR "$STATE_DIR"
log "ready at http://127.0.0.1:$PORT (pid $LAUNCHED_PID)"
finish_start
