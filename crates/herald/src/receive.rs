//! `herald receive`: print every webhook received and check its `X-Signature`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct ReceiveArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9999", value_parser = herald_daemon::parse_listen_addr)]
    addr: std::net::SocketAddr,

    /// The generic-hmac key: requests without a valid `X-Signature` are answered 401.
    #[arg(
        long,
        env = "HERALD_RECEIVE_HMAC_KEY",
        conflicts_with = "hmac_key_file",
        hide_env_values = true
    )]
    hmac_key: Option<String>,

    /// A file holding the generic-hmac key (trailing newline ignored).
    #[arg(long)]
    hmac_key_file: Option<PathBuf>,

    /// Print nothing per request (a fast sink, for benchmarks).
    #[arg(long)]
    quiet: bool,
}

pub(crate) fn run(args: &ReceiveArgs) -> anyhow::Result<ExitCode> {
    let key = match (&args.hmac_key, &args.hmac_key_file) {
        (Some(k), _) => Some(k.clone().into_bytes()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the HMAC key from {}", path.display()))?
                .trim_end_matches(['\n', '\r'])
                .as_bytes()
                .to_vec(),
        ),
        (None, None) => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        output(&format!(
            "herald receive: listening on http://{}{}",
            listener.local_addr()?,
            if key.is_some() {
                " (checking X-Signature)"
            } else {
                ""
            }
        ));
        let (_stop_tx, stop_rx) = watch::channel(false);
        let report: Option<herald_daemon::receiver::Report> = if args.quiet {
            None
        } else {
            Some(Box::new(|r| output(&r.render())))
        };
        let server = herald_daemon::receiver::run(listener, key, stop_rx, report);
        tokio::select! {
            _ = server => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
