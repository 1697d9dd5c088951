//! `herald outbox`: list, show, retry and drop deliveries.
//!
//! With the daemon stopped it opens the outbox in `--data-dir` itself. While the daemon runs
//! the file is locked, so it goes through the daemon's status API (`--api`, or
//! `HERALD_API_ADDR`, or the default API address), which makes the same changes in the running
//! daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use herald_daemon::api::{MAX_LIMIT, delivery_json, event_json};
use herald_daemon::outbox::{Backend, FILE_NAME, OpenError, State, Store};
use serde_json::{Value, json};

use crate::{output, report};

#[derive(Debug, clap::Args)]
pub(crate) struct OutboxArgs {
    /// The daemon's data directory (used when the daemon is stopped).
    #[arg(
        long,
        env = "HERALD_DATA_DIR",
        default_value = "./herald-data",
        global = true
    )]
    data_dir: PathBuf,

    /// A running daemon's API address (its `--api-addr`), to go through its API. Without it,
    /// the outbox file is opened directly, and the API at `HERALD_API_ADDR` (or the default
    /// API address) is used only if a running daemon holds the file.
    #[arg(long, value_name = "HOST:PORT", value_parser = herald_daemon::parse_listen_addr, global = true)]
    api: Option<SocketAddr>,

    /// File holding the daemon's API token (its `--api-token-file`), sent as
    /// `Authorization: Bearer <token>`.
    #[arg(long, env = "HERALD_API_TOKEN_FILE", global = true)]
    api_token_file: Option<PathBuf>,

    /// Print JSON (the API's shapes) instead of a table.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: OutboxCommand,
}

#[derive(Debug, clap::Subcommand)]
enum OutboxCommand {
    /// List deliveries, newest first.
    List {
        /// Only this state: pending, failed, delivered or dead.
        #[arg(long, value_parser = parse_state)]
        state: Option<State>,
        /// Only this provider (`namespace/name`).
        #[arg(long, value_name = "NAMESPACE/NAME")]
        provider: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one delivery, with its event.
    Show {
        /// The delivery id.
        id: u64,
    },
    /// Attempt deliveries again now: one, a provider's dead ones, or every dead one.
    Retry {
        /// The delivery id.
        #[arg(required_unless_present_any = ["provider", "all_dead"], conflicts_with_all = ["provider", "all_dead"])]
        id: Option<u64>,
        /// Every dead delivery of this provider (`namespace/name`).
        #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "all_dead")]
        provider: Option<String>,
        /// Every dead delivery.
        #[arg(long)]
        all_dead: bool,
    },
    /// Remove a delivery from the outbox for good.
    Drop {
        /// The delivery id.
        id: u64,
    },
}

fn parse_state(s: &str) -> Result<State, String> {
    s.parse()
}

/// The API address `herald serve` uses by default.
const DEFAULT_API: &str = "127.0.0.1:9441";

pub(crate) fn run(args: &OutboxArgs) -> anyhow::Result<ExitCode> {
    let via_api = |addr: SocketAddr| run_api(args, addr);
    if let Some(addr) = args.api {
        return via_api(addr);
    }
    let file = args.data_dir.join(FILE_NAME);
    if !file.exists() {
        bail!(
            "there is no outbox in {} (no {FILE_NAME}): is --data-dir (or HERALD_DATA_DIR) the daemon's?",
            args.data_dir.display()
        );
    }
    match Store::open(&args.data_dir) {
        Ok(store) => {
            let result = run_offline(args, &store);
            store.close();
            result
        }
        Err(OpenError::Locked(_)) => {
            let addr: SocketAddr = std::env::var("HERALD_API_ADDR")
                .ok()
                .and_then(|a| herald_daemon::parse_listen_addr(&a).ok())
                .unwrap_or_else(|| DEFAULT_API.parse().expect("a valid address"));
            report(&format!(
                "the daemon holds {}; going through its API at {addr}",
                file.display()
            ));
            via_api(addr)
        }
        Err(e) => Err(anyhow!("{e}")),
    }
}

fn run_offline(args: &OutboxArgs, store: &Store) -> anyhow::Result<ExitCode> {
    match &args.command {
        OutboxCommand::List {
            state,
            provider,
            limit,
        } => {
            let list = store.list((*limit).clamp(1, MAX_LIMIT), &mut |r| {
                state.is_none_or(|s| s == r.state)
                    && provider.as_deref().is_none_or(|p| p == r.provider)
            })?;
            let items: Vec<Value> = list.iter().map(|r| delivery_json(r, false)).collect();
            print_list(args.json, &items);
        }
        OutboxCommand::Show { id } => {
            let Some((r, event)) = store.get_with_event(*id)? else {
                bail!("delivery {id} is not in the outbox");
            };
            let mut v = delivery_json(&r, false);
            v["event"] = event_json(event.as_ref());
            print_one(args.json, &v);
        }
        OutboxCommand::Retry {
            id,
            provider,
            all_dead,
        } => {
            let ids = match (id, provider, all_dead) {
                (Some(id), _, _) => vec![*id],
                (None, Some(p), _) => store.dead_ids(Some(p))?,
                _ => store.dead_ids(None)?,
            };
            let retried = store.retry_stopped(&ids)?;
            print_retried(args.json, &json!({ "retried": retried }), true);
        }
        OutboxCommand::Drop { id } => {
            if !store.remove_blocking(*id)? {
                bail!("delivery {id} is not in the outbox");
            }
            print_dropped(args.json, *id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_api(args: &OutboxArgs, addr: SocketAddr) -> anyhow::Result<ExitCode> {
    let token = match &args.api_token_file {
        Some(file) => Some(read_token(file)?),
        None => None,
    };
    let call = |method: &str, path: &str| call(addr, token.as_deref(), method, path);
    match &args.command {
        OutboxCommand::List {
            state,
            provider,
            limit,
        } => {
            let mut query = format!("limit={limit}");
            if let Some(s) = state {
                query.push_str(&format!("&state={}", s.as_str()));
            }
            if let Some(p) = provider {
                query.push_str(&format!("&provider={}", encode(p)));
            }
            let v = call("GET", &format!("/api/v1/deliveries?{query}"))?;
            let items = v["deliveries"].as_array().cloned().unwrap_or_default();
            print_list(args.json, &items);
        }
        OutboxCommand::Show { id } => {
            let v = call("GET", &format!("/api/v1/deliveries/{id}"))?;
            print_one(args.json, &v);
        }
        OutboxCommand::Retry {
            id,
            provider,
            all_dead,
        } => {
            let path = match (id, provider, all_dead) {
                (Some(id), _, _) => format!("/api/v1/deliveries/{id}/retry"),
                (None, Some(p), _) => format!("/api/v1/deliveries/retry?provider={}", encode(p)),
                _ => "/api/v1/deliveries/retry?all-dead=true".to_owned(),
            };
            let v = call("POST", &path)?;
            print_retried(args.json, &v, false);
        }
        OutboxCommand::Drop { id } => {
            call("DELETE", &format!("/api/v1/deliveries/{id}"))?;
            print_dropped(args.json, *id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `s` percent-encoded for a query value.
fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The token in `file`, without surrounding whitespace (as the daemon reads it).
fn read_token(file: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the API token file {}", file.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!("the API token file {} is empty", file.display());
    }
    Ok(token.to_owned())
}

/// One request to the daemon's API; its JSON answer, or its error message.
fn call(addr: SocketAddr, token: Option<&str>, method: &str, path: &str) -> anyhow::Result<Value> {
    let authorization = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|a| ("Authorization", a.as_str()))
        .collect();
    let answer = crate::http1::request_with(
        &addr.to_string(),
        method,
        path,
        &headers,
        Duration::from_secs(10),
    )
    .map_err(|e| {
        anyhow!("cannot reach the daemon's API at {addr} (is it running, and is that its --api-addr?): {e}")
    })?;
    let status = answer.status;
    if status == 401 {
        bail!(
            "the daemon's API at {addr} answered 401: it requires a token (--api-token-file or HERALD_API_TOKEN_FILE), and this one is {}",
            if token.is_some() { "wrong" } else { "missing" }
        );
    }
    let value: Value = serde_json::from_slice(&answer.body).with_context(|| {
        format!("{addr} answered {status} without JSON: is it herald's API address (--api-addr)?")
    })?;
    if status >= 400 {
        let message = value["error"].as_str().unwrap_or("unknown error");
        bail!("the daemon answered {status}: {message}");
    }
    Ok(value)
}

fn print_list(as_json: bool, items: &[Value]) {
    if as_json {
        output(&Value::Array(items.to_vec()).to_string());
        return;
    }
    if items.is_empty() {
        report("no deliveries match");
        return;
    }
    output(&format!(
        "{:>8}  {:<10} {:<28} {:>8}  {:<25} {:<32} LAST ERROR",
        "ID", "STATE", "PROVIDER", "ATTEMPTS", "ACCEPTED", "OBJECT"
    ));
    for v in items {
        let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
        output(&format!(
            "{:>8}  {:<10} {:<28} {:>8}  {:<25} {:<32} {}",
            v["id"],
            s("state"),
            s("provider"),
            v["attempts"],
            s("accepted"),
            s("object"),
            s("last_error")
        ));
    }
}

fn print_one(as_json: bool, v: &Value) {
    if as_json {
        output(&v.to_string());
        return;
    }
    let s = |k: &str| match &v[k] {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for key in [
        "id",
        "state",
        "provider",
        "type",
        "alert",
        "object",
        "reason",
        "attempts",
        "accepted",
        "last_attempt",
        "next_attempt",
        "finished",
        "dead_reason",
        "last_error",
    ] {
        output(&format!("{:<13} {}", format!("{key}:"), s(key)));
    }
    if v["event"].is_null() {
        output("event:        - (delivered: herald keeps only the fields above)");
    } else {
        output("event:");
        output(&serde_json::to_string_pretty(&v["event"]).unwrap_or_default());
    }
}

fn print_retried(as_json: bool, v: &Value, offline: bool) {
    if as_json {
        output(&v.to_string());
        return;
    }
    let ids: Vec<String> = v["retried"]
        .as_array()
        .map(|a| a.iter().map(Value::to_string).collect())
        .unwrap_or_default();
    if ids.is_empty() {
        report("nothing to retry (only dead or failed deliveries can be retried)");
    } else if offline {
        output(&format!(
            "{} delivery(ies) set to pending; the daemon attempts them when it starts: {}",
            ids.len(),
            ids.join(", ")
        ));
    } else {
        output(&format!(
            "{} delivery(ies) queued again: {}",
            ids.len(),
            ids.join(", ")
        ));
    }
}

fn print_dropped(as_json: bool, id: u64) {
    if as_json {
        output(&json!({ "dropped": id }).to_string());
    } else {
        output(&format!("delivery {id} dropped"));
    }
}
