# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_herald_global_optspecs
    string join \n log-level= log-format= h/help V/version
end

function __fish_herald_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_herald_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_herald_using_subcommand
    set -l cmd (__fish_herald_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c herald -n "__fish_herald_needs_command" -l log-level -d 'Log level: error, warn, info, debug or trace (or a tracing filter)' -r
complete -c herald -n "__fish_herald_needs_command" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c herald -n "__fish_herald_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herald -n "__fish_herald_needs_command" -s V -l version -d 'Print version'
complete -c herald -n "__fish_herald_needs_command" -f -a "serve" -d 'Run the daemon: receive Flux events, match Alerts, deliver to Providers'
complete -c herald -n "__fish_herald_needs_command" -f -a "send" -d 'Deliver one event to one provider now, and report the outcome'
complete -c herald -n "__fish_herald_needs_command" -f -a "render" -d 'Print the exact requests a provider would send for an event, secrets masked; send nothing'
complete -c herald -n "__fish_herald_needs_command" -f -a "validate" -d 'Check manifests: syntax, fields, references, and that every provider can be built'
complete -c herald -n "__fish_herald_needs_command" -f -a "outbox" -d 'List, show, retry or drop deliveries in the outbox (directly, or through a running daemon)'
complete -c herald -n "__fish_herald_needs_command" -f -a "receive" -d 'Run a webhook receiver that prints what it gets and checks generic-hmac signatures'
complete -c herald -n "__fish_herald_needs_command" -f -a "healthcheck" -d 'Probe a running daemon\'s `/readyz` (or any http:// URL): exit 0 when it answers 2xx. For container health checks in images without curl'
complete -c herald -n "__fish_herald_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c herald -n "__fish_herald_using_subcommand serve" -l manifests -d 'A manifest file or folder (read recursively for .yaml and .yml); repeatable' -r -F
complete -c herald -n "__fish_herald_using_subcommand serve" -l events-addr -d 'Where Flux controllers post events (`:9090` means every interface)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l metrics-addr -d 'Where Prometheus metrics are served (`/metrics`)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l health-addr -d 'Where `/healthz` and `/readyz` are served (nothing else: the kubelet\'s probes need it open)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l api-addr -d 'Where the status API (`/api/v1/`: objects, providers, deliveries with their events, retry and drop) is served. Keep it private, or set `--api-token-file`' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l api-token-file -d 'File holding a token that every status API request must present as `Authorization: Bearer <token>`; others get 401. Surrounding whitespace is ignored; re-read on reload. Off by default' -r -F
complete -c herald -n "__fish_herald_using_subcommand serve" -l rate-limit-interval -d 'Window in which a duplicate event is answered 429 (Go duration; `0s` turns it off)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l data-dir -d 'Where herald keeps its outbox of accepted deliveries (created if missing)' -r -F
complete -c herald -n "__fish_herald_using_subcommand serve" -l delivery-max-age -d 'A delivery still failing this long after it was accepted is given up and kept as dead (see `herald outbox`)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l retry-backoff-max -d 'The longest wait between two attempts of a failing delivery (the wait starts at 1s and doubles)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l retention -d 'How long delivered records are kept in the outbox' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l dead-retention -d 'How long dead deliveries are kept in the outbox' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l degraded-after -d 'A provider failing for longer than this makes `/readyz` report it as degraded' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l reload-interval -d 'How often manifest files are checked for changes (`0s`: only on SIGHUP)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l shutdown-timeout -d 'How long SIGTERM waits for accepted deliveries to finish' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l concurrency -d 'Deliveries attempted at once over all providers. A provider with nothing in flight may always start one, so providers that hang cannot hold up the others' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l provider-max-in-flight -d 'Deliveries one provider attempts at once (deliveries about the same object, or the same commit status, always go one after another). Default: by provider family (64 for webhooks, 16 alerting and Event Hubs, 4 chat, 2 git); a Provider\'s annotation `herald.dev/max-in-flight` overrides both' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l max-pending -d 'Deliveries waiting over all providers before new ones are refused; an event all of whose deliveries are refused is answered 503. With a shared outbox, the cluster\'s deliveries (see docs/scaling.md)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l provider-max-pending -d 'Deliveries waiting for one provider before its new ones are refused: kept as dead with reason `quota` (retry them with `herald outbox retry`), while the event\'s other deliveries are accepted. With a shared outbox, the cluster\'s deliveries (see docs/scaling.md)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l events-tls-cert -d 'PEM certificate chain for serving events over TLS only (with `--events-tls-key`). Re-read on reload, so a renewed certificate needs no restart. Off by default' -r -F
complete -c herald -n "__fish_herald_using_subcommand serve" -l events-tls-key -d 'PEM private key of `--events-tls-cert` (PKCS#8, PKCS#1 or SEC1)' -r -F
complete -c herald -n "__fish_herald_using_subcommand serve" -l events-token-file -d 'File holding a token that every event request must present as `Authorization: Bearer <token>`; others get 401. Surrounding whitespace is ignored; re-read on reload. Off by default (Flux controllers send no token)' -r -F
complete -c herald -n "__fish_herald_using_subcommand serve" -l events-hmac-key-file -d 'File holding an HMAC key: every event body must carry `X-Signature: sha256=<hex HMAC-SHA256(key, body)>`, as a `generic-hmac` Provider sends; others get 401. Surrounding whitespace is ignored; re-read on reload. Off by default' -r -F
complete -c herald -n "__fish_herald_using_subcommand serve" -l events-max-connections -d 'Event connections served at once; a connection over the cap is answered 503 and closed (closed without an answer over TLS). Bounds memory under a connection flood' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l events-header-timeout -d 'Time allowed for a TLS handshake and for each request\'s headers, including the wait for the next request on a kept-alive connection (Go duration)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l events-read-timeout -d 'Time allowed for each request body; a slower one gets 408 (Go duration)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l outbox -d 'Keep the outbox in NATS JetStream at these servers (comma-separated `nats://` or `tls://` URLs, user and password in them if any) instead of `--data-dir`: every herald pointed at the same JetStream shares it, so several replicas accept and deliver together and take over each other\'s work (see docs/scaling.md). Needs nats-server 2.9 or later with JetStream' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l outbox-creds -d '`.creds` file (user JWT and nkey seed) for `--outbox`' -r -F
complete -c herald -n "__fish_herald_using_subcommand serve" -l outbox-nkey -d 'File holding an nkey seed for `--outbox`' -r -F
complete -c herald -n "__fish_herald_using_subcommand serve" -l outbox-ca -d 'PEM CA certificates to trust for `--outbox` over TLS (TLS is then required)' -r -F
complete -c herald -n "__fish_herald_using_subcommand serve" -l outbox-replicas -d 'Copies JetStream keeps of the shared outbox\'s streams (set when they are created). Default: 3 when the server is in a cluster, else 1' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l replica-name -d 'This replica\'s name among those sharing `--outbox` (unique; default: the host name and the process id)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l log-level -d 'Log level: error, warn, info, debug or trace (or a tracing filter)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c herald -n "__fish_herald_using_subcommand serve" -l require-all-objects -d 'Start only if every object of the manifests is ready, and reject a reload that has a broken object (keeping the previous set). By default a broken object is reported and every other one works, as in Flux'
complete -c herald -n "__fish_herald_using_subcommand serve" -l no-cross-namespace-refs -d 'Reject events from namespaces other than the Alert\'s own'
complete -c herald -n "__fish_herald_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herald -n "__fish_herald_using_subcommand send" -l manifests -d 'A manifest file or folder (read recursively for .yaml and .yml); repeatable' -r -F
complete -c herald -n "__fish_herald_using_subcommand send" -l provider -d 'The provider to deliver to, as NAMESPACE/NAME (or NAME in namespace `default`)' -r
complete -c herald -n "__fish_herald_using_subcommand send" -l event -d 'The Flux event, as a JSON file, or `-` for standard input' -r -F
complete -c herald -n "__fish_herald_using_subcommand send" -l alert -d 'Deliver for this Alert, as NAMESPACE/NAME (or NAME in the Provider\'s namespace): its `eventMetadata` and `summary` join the event\'s metadata as in the daemon, and providers that name the Alert see it (`otel`, whose trace is the Alert\'s, needs it)' -r
complete -c herald -n "__fish_herald_using_subcommand send" -l log-level -d 'Log level: error, warn, info, debug or trace (or a tracing filter)' -r
complete -c herald -n "__fish_herald_using_subcommand send" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c herald -n "__fish_herald_using_subcommand send" -l raw -d 'Send the event\'s metadata as given, without Flux\'s cleanup and prefix stripping'
complete -c herald -n "__fish_herald_using_subcommand send" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herald -n "__fish_herald_using_subcommand render" -l manifests -d 'A manifest file or folder (read recursively for .yaml and .yml); repeatable' -r -F
complete -c herald -n "__fish_herald_using_subcommand render" -l provider -d 'The provider whose requests to show, as NAMESPACE/NAME (or NAME in namespace `default`)' -r
complete -c herald -n "__fish_herald_using_subcommand render" -l alert -d 'The Alert that delivers the event (its summary and eventMetadata apply, and providers that read the Alert see it), as NAMESPACE/NAME. Default: the one Alert naming the provider, if there is exactly one; otherwise none' -r
complete -c herald -n "__fish_herald_using_subcommand render" -l event -d 'The Flux event, as a JSON file, or `-` for standard input' -r -F
complete -c herald -n "__fish_herald_using_subcommand render" -l format -d 'Output: an HTTP-like listing, or one JSON object per request and line' -r -f -a "text\t'Method and URL, headers, a blank line and the body, per request'
json\t'One object per line: {"method","url","headers":[[name,value],...],"body"}, with "body_base64" instead of "body" for a body that is not UTF-8'"
complete -c herald -n "__fish_herald_using_subcommand render" -l log-level -d 'Log level: error, warn, info, debug or trace (or a tracing filter)' -r
complete -c herald -n "__fish_herald_using_subcommand render" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c herald -n "__fish_herald_using_subcommand render" -l raw -d 'Use the event\'s metadata as given, without Flux\'s cleanup and prefix stripping'
complete -c herald -n "__fish_herald_using_subcommand render" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herald -n "__fish_herald_using_subcommand validate" -l manifests -d 'A manifest file or folder (read recursively for .yaml and .yml); repeatable' -r -F
complete -c herald -n "__fish_herald_using_subcommand validate" -l log-level -d 'Log level: error, warn, info, debug or trace (or a tracing filter)' -r
complete -c herald -n "__fish_herald_using_subcommand validate" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c herald -n "__fish_herald_using_subcommand validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herald -n "__fish_herald_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop help" -l data-dir -d 'The daemon\'s data directory (used when the daemon is stopped)' -r -F
complete -c herald -n "__fish_herald_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop help" -l api -d 'A running daemon\'s API address (its `--api-addr`), to go through its API. Without it, the outbox file is opened directly, and the API at `HERALD_API_ADDR` (or the default API address) is used only if a running daemon holds the file' -r
complete -c herald -n "__fish_herald_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop help" -l api-token-file -d 'File holding the daemon\'s API token (its `--api-token-file`), sent as `Authorization: Bearer <token>`' -r -F
complete -c herald -n "__fish_herald_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop help" -l log-level -d 'Log level: error, warn, info, debug or trace (or a tracing filter)' -r
complete -c herald -n "__fish_herald_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop help" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c herald -n "__fish_herald_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop help" -l json -d 'Print JSON (the API\'s shapes) instead of a table'
complete -c herald -n "__fish_herald_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herald -n "__fish_herald_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop help" -f -a "list" -d 'List deliveries, newest first'
complete -c herald -n "__fish_herald_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop help" -f -a "show" -d 'Show one delivery, with its event'
complete -c herald -n "__fish_herald_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop help" -f -a "retry" -d 'Attempt deliveries again now: one, a provider\'s dead ones, or every dead one'
complete -c herald -n "__fish_herald_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop help" -f -a "drop" -d 'Remove a delivery from the outbox for good'
complete -c herald -n "__fish_herald_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from list" -l state -d 'Only this state: pending, failed, delivered or dead' -r
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from list" -l provider -d 'Only this provider (`namespace/name`)' -r
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from list" -l limit -d 'At most this many' -r
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from list" -l data-dir -d 'The daemon\'s data directory (used when the daemon is stopped)' -r -F
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from list" -l api -d 'A running daemon\'s API address (its `--api-addr`), to go through its API. Without it, the outbox file is opened directly, and the API at `HERALD_API_ADDR` (or the default API address) is used only if a running daemon holds the file' -r
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from list" -l api-token-file -d 'File holding the daemon\'s API token (its `--api-token-file`), sent as `Authorization: Bearer <token>`' -r -F
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from list" -l log-level -d 'Log level: error, warn, info, debug or trace (or a tracing filter)' -r
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from list" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from list" -l json -d 'Print JSON (the API\'s shapes) instead of a table'
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from show" -l data-dir -d 'The daemon\'s data directory (used when the daemon is stopped)' -r -F
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from show" -l api -d 'A running daemon\'s API address (its `--api-addr`), to go through its API. Without it, the outbox file is opened directly, and the API at `HERALD_API_ADDR` (or the default API address) is used only if a running daemon holds the file' -r
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from show" -l api-token-file -d 'File holding the daemon\'s API token (its `--api-token-file`), sent as `Authorization: Bearer <token>`' -r -F
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from show" -l log-level -d 'Log level: error, warn, info, debug or trace (or a tracing filter)' -r
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from show" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from show" -l json -d 'Print JSON (the API\'s shapes) instead of a table'
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l provider -d 'Every dead delivery of this provider (`namespace/name`)' -r
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l data-dir -d 'The daemon\'s data directory (used when the daemon is stopped)' -r -F
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l api -d 'A running daemon\'s API address (its `--api-addr`), to go through its API. Without it, the outbox file is opened directly, and the API at `HERALD_API_ADDR` (or the default API address) is used only if a running daemon holds the file' -r
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l api-token-file -d 'File holding the daemon\'s API token (its `--api-token-file`), sent as `Authorization: Bearer <token>`' -r -F
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l log-level -d 'Log level: error, warn, info, debug or trace (or a tracing filter)' -r
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l all-dead -d 'Every dead delivery'
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l json -d 'Print JSON (the API\'s shapes) instead of a table'
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from retry" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from drop" -l data-dir -d 'The daemon\'s data directory (used when the daemon is stopped)' -r -F
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from drop" -l api -d 'A running daemon\'s API address (its `--api-addr`), to go through its API. Without it, the outbox file is opened directly, and the API at `HERALD_API_ADDR` (or the default API address) is used only if a running daemon holds the file' -r
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from drop" -l api-token-file -d 'File holding the daemon\'s API token (its `--api-token-file`), sent as `Authorization: Bearer <token>`' -r -F
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from drop" -l log-level -d 'Log level: error, warn, info, debug or trace (or a tracing filter)' -r
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from drop" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from drop" -l json -d 'Print JSON (the API\'s shapes) instead of a table'
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from drop" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from help" -f -a "list" -d 'List deliveries, newest first'
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one delivery, with its event'
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from help" -f -a "retry" -d 'Attempt deliveries again now: one, a provider\'s dead ones, or every dead one'
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from help" -f -a "drop" -d 'Remove a delivery from the outbox for good'
complete -c herald -n "__fish_herald_using_subcommand outbox; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c herald -n "__fish_herald_using_subcommand receive" -l addr -d 'Where to listen' -r
complete -c herald -n "__fish_herald_using_subcommand receive" -l hmac-key -d 'The generic-hmac key: requests without a valid `X-Signature` are answered 401' -r
complete -c herald -n "__fish_herald_using_subcommand receive" -l hmac-key-file -d 'A file holding the generic-hmac key (trailing newline ignored)' -r -F
complete -c herald -n "__fish_herald_using_subcommand receive" -l log-level -d 'Log level: error, warn, info, debug or trace (or a tracing filter)' -r
complete -c herald -n "__fish_herald_using_subcommand receive" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c herald -n "__fish_herald_using_subcommand receive" -l quiet -d 'Print nothing per request (a fast sink, for benchmarks)'
complete -c herald -n "__fish_herald_using_subcommand receive" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herald -n "__fish_herald_using_subcommand healthcheck" -l url -d 'The URL to probe (`http://` only); the default is `serve`\'s default health address' -r
complete -c herald -n "__fish_herald_using_subcommand healthcheck" -l timeout -d 'How long connecting, asking and reading the status line may take in all (Go duration)' -r
complete -c herald -n "__fish_herald_using_subcommand healthcheck" -l log-level -d 'Log level: error, warn, info, debug or trace (or a tracing filter)' -r
complete -c herald -n "__fish_herald_using_subcommand healthcheck" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c herald -n "__fish_herald_using_subcommand healthcheck" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herald -n "__fish_herald_using_subcommand help; and not __fish_seen_subcommand_from serve send render validate outbox receive healthcheck help" -f -a "serve" -d 'Run the daemon: receive Flux events, match Alerts, deliver to Providers'
complete -c herald -n "__fish_herald_using_subcommand help; and not __fish_seen_subcommand_from serve send render validate outbox receive healthcheck help" -f -a "send" -d 'Deliver one event to one provider now, and report the outcome'
complete -c herald -n "__fish_herald_using_subcommand help; and not __fish_seen_subcommand_from serve send render validate outbox receive healthcheck help" -f -a "render" -d 'Print the exact requests a provider would send for an event, secrets masked; send nothing'
complete -c herald -n "__fish_herald_using_subcommand help; and not __fish_seen_subcommand_from serve send render validate outbox receive healthcheck help" -f -a "validate" -d 'Check manifests: syntax, fields, references, and that every provider can be built'
complete -c herald -n "__fish_herald_using_subcommand help; and not __fish_seen_subcommand_from serve send render validate outbox receive healthcheck help" -f -a "outbox" -d 'List, show, retry or drop deliveries in the outbox (directly, or through a running daemon)'
complete -c herald -n "__fish_herald_using_subcommand help; and not __fish_seen_subcommand_from serve send render validate outbox receive healthcheck help" -f -a "receive" -d 'Run a webhook receiver that prints what it gets and checks generic-hmac signatures'
complete -c herald -n "__fish_herald_using_subcommand help; and not __fish_seen_subcommand_from serve send render validate outbox receive healthcheck help" -f -a "healthcheck" -d 'Probe a running daemon\'s `/readyz` (or any http:// URL): exit 0 when it answers 2xx. For container health checks in images without curl'
complete -c herald -n "__fish_herald_using_subcommand help; and not __fish_seen_subcommand_from serve send render validate outbox receive healthcheck help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c herald -n "__fish_herald_using_subcommand help; and __fish_seen_subcommand_from outbox" -f -a "list" -d 'List deliveries, newest first'
complete -c herald -n "__fish_herald_using_subcommand help; and __fish_seen_subcommand_from outbox" -f -a "show" -d 'Show one delivery, with its event'
complete -c herald -n "__fish_herald_using_subcommand help; and __fish_seen_subcommand_from outbox" -f -a "retry" -d 'Attempt deliveries again now: one, a provider\'s dead ones, or every dead one'
complete -c herald -n "__fish_herald_using_subcommand help; and __fish_seen_subcommand_from outbox" -f -a "drop" -d 'Remove a delivery from the outbox for good'
