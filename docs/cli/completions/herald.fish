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
complete -c herald -n "__fish_herald_needs_command" -f -a "validate" -d 'Check manifests: syntax, fields, references, and that every provider can be built'
complete -c herald -n "__fish_herald_needs_command" -f -a "receive" -d 'Run a webhook receiver that prints what it gets and checks generic-hmac signatures'
complete -c herald -n "__fish_herald_needs_command" -f -a "healthcheck" -d 'Probe a running daemon\'s `/readyz` (or any http:// URL): exit 0 when it answers 2xx. For container health checks in images without curl'
complete -c herald -n "__fish_herald_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c herald -n "__fish_herald_using_subcommand serve" -l manifests -d 'A manifest file or folder (read recursively for .yaml and .yml); repeatable' -r -F
complete -c herald -n "__fish_herald_using_subcommand serve" -l events-addr -d 'Where Flux controllers post events (`:9090` means every interface)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l metrics-addr -d 'Where Prometheus metrics are served (`/metrics`)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l health-addr -d 'Where `/healthz` and `/readyz` are served' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l rate-limit-interval -d 'Window in which a duplicate event is answered 429 (Go duration; `0s` turns it off)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l data-dir -d 'Where herald keeps its state (created if missing)' -r -F
complete -c herald -n "__fish_herald_using_subcommand serve" -l reload-interval -d 'How often manifest files are checked for changes (`0s`: only on SIGHUP)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l shutdown-timeout -d 'How long SIGTERM waits for accepted deliveries to finish' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l concurrency -d 'Deliveries running at once over all providers (each provider still gets its events one at a time, in arrival order)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l max-pending -d 'Undelivered deliveries held before new events are answered 503' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l log-level -d 'Log level: error, warn, info, debug or trace (or a tracing filter)' -r
complete -c herald -n "__fish_herald_using_subcommand serve" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c herald -n "__fish_herald_using_subcommand serve" -l no-cross-namespace-refs -d 'Reject events from namespaces other than the Alert\'s own'
complete -c herald -n "__fish_herald_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herald -n "__fish_herald_using_subcommand send" -l manifests -d 'A manifest file or folder (read recursively for .yaml and .yml); repeatable' -r -F
complete -c herald -n "__fish_herald_using_subcommand send" -l provider -d 'The provider to deliver to, as NAMESPACE/NAME (or NAME in namespace `default`)' -r
complete -c herald -n "__fish_herald_using_subcommand send" -l event -d 'The Flux event, as a JSON file, or `-` for standard input' -r -F
complete -c herald -n "__fish_herald_using_subcommand send" -l log-level -d 'Log level: error, warn, info, debug or trace (or a tracing filter)' -r
complete -c herald -n "__fish_herald_using_subcommand send" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c herald -n "__fish_herald_using_subcommand send" -l raw -d 'Send the event\'s metadata as given, without Flux\'s cleanup and prefix stripping'
complete -c herald -n "__fish_herald_using_subcommand send" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herald -n "__fish_herald_using_subcommand validate" -l manifests -d 'A manifest file or folder (read recursively for .yaml and .yml); repeatable' -r -F
complete -c herald -n "__fish_herald_using_subcommand validate" -l log-level -d 'Log level: error, warn, info, debug or trace (or a tracing filter)' -r
complete -c herald -n "__fish_herald_using_subcommand validate" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c herald -n "__fish_herald_using_subcommand validate" -s h -l help -d 'Print help (see more with \'--help\')'
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
complete -c herald -n "__fish_herald_using_subcommand help; and not __fish_seen_subcommand_from serve send validate receive healthcheck help" -f -a "serve" -d 'Run the daemon: receive Flux events, match Alerts, deliver to Providers'
complete -c herald -n "__fish_herald_using_subcommand help; and not __fish_seen_subcommand_from serve send validate receive healthcheck help" -f -a "send" -d 'Deliver one event to one provider now, and report the outcome'
complete -c herald -n "__fish_herald_using_subcommand help; and not __fish_seen_subcommand_from serve send validate receive healthcheck help" -f -a "validate" -d 'Check manifests: syntax, fields, references, and that every provider can be built'
complete -c herald -n "__fish_herald_using_subcommand help; and not __fish_seen_subcommand_from serve send validate receive healthcheck help" -f -a "receive" -d 'Run a webhook receiver that prints what it gets and checks generic-hmac signatures'
complete -c herald -n "__fish_herald_using_subcommand help; and not __fish_seen_subcommand_from serve send validate receive healthcheck help" -f -a "healthcheck" -d 'Probe a running daemon\'s `/readyz` (or any http:// URL): exit 0 when it answers 2xx. For container health checks in images without curl'
complete -c herald -n "__fish_herald_using_subcommand help; and not __fish_seen_subcommand_from serve send validate receive healthcheck help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
