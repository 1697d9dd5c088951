#!/usr/bin/env bash
# The quickstart: builds herald, starts `herald receive` (a webhook receiver that prints
# what it gets and checks the HMAC signature) and `herald serve` on this folder's manifests,
# posts two example Flux events the way Flux controllers do, and keeps running so you can
# post your own (see README.md). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --quiet -p herald
bin=target/debug/herald
events=127.0.0.1:9090

cleanup() { kill "${receiver:-}" "${daemon:-}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$bin" receive --addr 127.0.0.1:9999 --hmac-key quickstart-hmac-key &
receiver=$!
"$bin" serve --manifests examples/quickstart --events-addr "$events" \
  --metrics-addr 127.0.0.1:8080 --health-addr 127.0.0.1:9440 --data-dir "${TMPDIR:-/tmp}/herald-quickstart" &
daemon=$!

for _ in $(seq 1 100); do
  curl -fsS http://127.0.0.1:9440/readyz >/dev/null 2>&1 && break
  sleep 0.1
done

for event in examples/events/kustomization-ready.json examples/events/kustomization-failed.json; do
  echo "--> POST $event to http://$events/"
  curl -sS -o /dev/null -w "<-- HTTP %{http_code}\n" -H 'Content-Type: application/json' \
    --data-binary "@$event" "http://$events/"
done

echo "herald is running: events on http://$events/, metrics on http://127.0.0.1:8080/metrics. Ctrl-C to stop."
wait "$daemon"
