//! herald: a small, fast notifier for Flux events, as a command-line tool and daemon.
//!
//! This crate is the `herald` binary: the command line (`serve`, `send`, `render`, `validate`,
//! `outbox`, `receive`, `healthcheck`), logging, and the wiring of the provider families compiled in
//! (`registry.rs`). It is a library only so that the binary's entry point ([`main`]) and its
//! clap definition ([`command`]) can be reached from tests and the docs generator (completions,
//! man pages, the flag reference); it is not an API for other programs. Event types, manifests
//! and providers live in the library crates.

mod healthcheck;
mod http1;
mod outbox;
mod receive;
mod registry;
mod render;
mod send;
mod serve;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// herald delivers Flux events to chat, webhooks, git forges and alerting tools.
#[derive(Debug, Parser)]
#[command(name = "herald", about, long_about = None)]
struct Cli {
    /// Log level: error, warn, info, debug or trace (or a tracing filter).
    #[arg(long, global = true, env = "HERALD_LOG", default_value = "info")]
    log_level: String,

    /// Log format.
    #[arg(long, global = true, env = "HERALD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: receive Flux events, match Alerts, deliver to Providers.
    Serve(Box<serve::ServeArgs>),
    /// Deliver one event to one provider now, and report the outcome.
    Send(send::SendArgs),
    /// Print the exact requests a provider would send for an event, secrets masked; send
    /// nothing.
    Render(render::RenderArgs),
    /// Check manifests: syntax, fields, references, and that every provider can be built.
    Validate(validate::ValidateArgs),
    /// List, show, retry or drop deliveries in the outbox (directly, or through a running daemon).
    Outbox(outbox::OutboxArgs),
    /// Run a webhook receiver that prints what it gets and checks generic-hmac signatures.
    Receive(receive::ReceiveArgs),
    /// Probe a running daemon's `/readyz` (or any http:// URL): exit 0 when it answers 2xx.
    /// For container health checks in images without curl.
    Healthcheck(healthcheck::HealthcheckArgs),
}

/// `--manifests`, shared by every subcommand that reads manifests.
#[derive(Debug, Args)]
struct ManifestArgs {
    /// A manifest file or folder (read recursively for .yaml and .yml); repeatable.
    #[arg(
        long = "manifests",
        value_name = "PATH",
        required = true,
        env = "HERALD_MANIFESTS",
        value_delimiter = ','
    )]
    paths: Vec<PathBuf>,
}

fn version() -> String {
    let families: Vec<&str> = registry::families().iter().map(|f| f.name()).collect();
    let templates = if herald_core::template::ENGINE_BUILT_IN {
        "built in"
    } else {
        "not built in (cargo feature `templates`)"
    };
    let patterns = if herald_core::pattern::UNICODE_BUILT_IN {
        "Unicode classes and case folding"
    } else {
        "ASCII only (cargo feature `unicode-regex`)"
    };
    format!(
        "{}\nfamilies: {}\nmessage templates: {templates}\nalert patterns: {patterns}",
        env!("CARGO_PKG_VERSION"),
        families.join(", ")
    )
}

/// herald's command line, as clap sees it (for completions, man pages and the flag reference).
///
/// The version is the package version alone: the families line of `--version` depends on the
/// build, and generated documents must not.
pub fn command() -> clap::Command {
    Cli::command().version(env!("CARGO_PKG_VERSION"))
}

/// The `herald` binary: parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    let command = Cli::command().version(version());
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_logging(&cli.log_level, cli.log_format);
    herald_http::install_crypto_provider();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Send(args) => send::run(&args),
        Command::Render(args) => render::run(&args),
        Command::Receive(args) => receive::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Healthcheck(args) => healthcheck::run(&args),
        Command::Outbox(args) => outbox::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            report(&format!("error: {e:#}"));
            ExitCode::from(2)
        }
    }
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = log_filter(level);
    // Colour codes only for a person at a terminal, never into log files or collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    match format {
        LogFormat::Text => builder.finish().with(filter).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(filter)
            .init(),
    }
}

/// `--log-level`: a level or `target=level` directives (`info,herald_http=debug`), read by
/// tracing's `Targets` rather than `EnvFilter`, whose span and field filters bring a second
/// regex engine into the binary. A span or field filter, or anything else not understood, means
/// the default level, never a silent daemon (`Targets` alone would take `a[b]` for a target).
fn log_filter(level: &str) -> Targets {
    let understood = !level.contains(['[', ']', '{', '}', '"']);
    level
        .parse()
        .ok()
        .filter(|_| understood)
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// Writes a line for the user on stderr (results go to stdout).
fn report(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Writes a result line on stdout.
fn output(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}

#[cfg(test)]
mod cli_docs;

#[cfg(test)]
mod log_filter_tests {
    use tracing::Level;

    use super::log_filter;

    #[test]
    fn a_level_applies_to_every_target() {
        let f = log_filter("warn");
        assert!(f.would_enable("herald_daemon", &Level::WARN));
        assert!(!f.would_enable("herald_daemon", &Level::INFO));
    }

    #[test]
    fn target_directives_refine_the_default() {
        let f = log_filter("info,herald_http=debug");
        assert!(f.would_enable("herald_http::client", &Level::DEBUG));
        assert!(!f.would_enable("herald_daemon", &Level::DEBUG));
        assert!(f.would_enable("herald_daemon", &Level::INFO));
    }

    #[test]
    fn span_filters_and_nonsense_fall_back_to_info() {
        for level in ["herald[delivery{id=1}]=debug", "a[b", "info=nonsense"] {
            let f = log_filter(level);
            assert!(f.would_enable("herald_daemon", &Level::INFO), "{level}");
            assert!(!f.would_enable("herald_daemon", &Level::DEBUG), "{level}");
        }
    }
}
