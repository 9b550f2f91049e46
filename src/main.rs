//! The stackd binary: parse flags, start logging, bind, run until SIGTERM or Ctrl-C.

use anyhow::Context as _;
use clap::Parser;
use stackd::config::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match serve().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line a person can act on (the file, what is wrong); no backtrace.
            eprintln!("stackd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::parse();
    if config.health_probe {
        return health_probe(config.http_addr);
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let listeners = stackd::Listeners::bind(&config)?;
    stackd::run(config, listeners, shutdown_signal()?).await
}

/// `--health-probe`: GET /health of the stackd on `addr`, within 5 s.
fn health_probe(mut addr: std::net::SocketAddr) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    let timeout = std::time::Duration::from_secs(5);
    let mut conn =
        std::net::TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("health probe: cannot connect to {addr}"))?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    write!(conn, "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 64];
    let n = conn.read(&mut head).context("health probe: no answer")?;
    let status = String::from_utf8_lossy(&head[..n]);
    anyhow::ensure!(status.starts_with("HTTP/1.1 200"), "health probe: {addr} answered {:?}", status.lines().next().unwrap_or(""));
    Ok(())
}

/// SIGTERM or Ctrl-C, their handlers installed now: a signal that comes before `run` first waits
/// on the future (right after "stackd listening" is logged) still shuts down cleanly.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    })
}
