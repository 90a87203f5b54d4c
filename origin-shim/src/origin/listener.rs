//! The origin's accept loops: the main listener, which fault injection can
//! close and re-open (`refuse`), and the optional control listener.
//!
//! Closing means dropping the listening socket, so new connections get
//! ECONNREFUSED, and starting a graceful shutdown of the open connections:
//! idle keep-alive connections close at once, in-flight requests finish. A
//! pooled client therefore sees the origin as down, as it would a dead region.
//! Re-opening binds the same address again (the port chosen at start when
//! listening on port 0).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::Error;

/// How long a re-bind keeps retrying while the address is still in use.
const REBIND_PATIENCE: Duration = Duration::from_secs(2);

struct Command {
    accept: bool,
    ack: oneshot::Sender<Result<(), Error>>,
}

/// Opens and closes the main listener from a handler.
#[derive(Debug, Clone)]
pub struct ListenerControl {
    tx: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("accept", &self.accept)
            .finish()
    }
}

impl ListenerControl {
    /// A control and the receiving end for [`run_main`].
    pub(crate) fn channel() -> (Self, Commands) {
        let (tx, rx) = mpsc::channel(4);
        (Self { tx }, Commands(rx))
    }

    /// Opens (`true`) or closes (`false`) the main listener; returns once done.
    pub async fn set_accepting(&self, accept: bool) -> Result<(), Error> {
        let gone = || Error::Task("the main listener task has stopped".to_owned());
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Command { accept, ack })
            .await
            .map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }
}

/// The receiving end of a [`ListenerControl`].
pub(crate) struct Commands(mpsc::Receiver<Command>);

/// Serves one accepted connection with `app` until it ends or `graceful` fires.
fn serve_connection(socket: TcpStream, app: &Router, graceful: &GracefulShutdown) {
    // Small JSON responses: don't let Nagle delay them.
    let _ = socket.set_nodelay(true);
    let conn = ConnBuilder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(socket), TowerToHyperService::new(app.clone()))
        .into_owned();
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        let _ = conn.await;
    });
}

async fn accept_on(listener: Option<&TcpListener>) -> std::io::Result<TcpStream> {
    match listener {
        Some(l) => l.accept().await.map(|(socket, _peer)| socket),
        None => std::future::pending().await,
    }
}

/// Transient accept errors (e.g. EMFILE): back off briefly.
async fn accept_backoff() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

async fn rebind(addr: SocketAddr) -> Result<TcpListener, Error> {
    let deadline = tokio::time::Instant::now() + REBIND_PATIENCE;
    loop {
        match crate::server::bind(addr).await {
            Err(Error::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// Lets the connections of a closed listener finish on their own.
fn drain(graceful: GracefulShutdown) {
    tokio::spawn(graceful.shutdown());
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which is a stop request as well.
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves the main listener until `stop`, obeying open/close commands.
pub(crate) async fn run_main(
    listener: TcpListener,
    addr: SocketAddr,
    app: Router,
    commands: Commands,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let Commands(mut commands) = commands;
    let mut commands_open = true;
    let mut current = Some(listener);
    let mut graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            cmd = commands.recv(), if commands_open => {
                let Some(Command { accept, ack }) = cmd else {
                    commands_open = false;
                    continue;
                };
                let result = match (accept, current.is_some()) {
                    (true, false) => rebind(addr).await.map(|l| current = Some(l)),
                    (false, true) => {
                        current = None;
                        drain(std::mem::replace(&mut graceful, GracefulShutdown::new()));
                        Ok(())
                    }
                    // Already in the requested state.
                    _ => Ok(()),
                };
                // The requester may have gone away; nothing to tell it then.
                let _ = ack.send(result);
            }
            res = accept_on(current.as_ref()) => match res {
                Ok(socket) => serve_connection(socket, &app, &graceful),
                Err(_) => accept_backoff().await,
            },
        }
    }
    drop(current);
    graceful.shutdown().await;
    Ok(())
}

/// Serves `listener` with `app` until `stop`.
pub(crate) async fn run_plain(
    listener: TcpListener,
    app: Router,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            res = listener.accept() => match res {
                Ok((socket, _peer)) => serve_connection(socket, &app, &graceful),
                Err(_) => accept_backoff().await,
            },
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
