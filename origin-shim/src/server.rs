//! Shared plumbing: a handle to a running in-process server and OS signal waiting.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Error;

/// How long [`ServerHandle::shutdown`] waits for in-flight connections to finish
/// before aborting the server task.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A server running on the current tokio runtime.
///
/// Dropping the handle also asks the server to stop (the shutdown channel closes),
/// but only [`ServerHandle::shutdown`] waits for it.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    control_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), Error>>>,
}

impl ServerHandle {
    pub(crate) fn spawn<F, Fut>(addr: SocketAddr, serve: F) -> Self
    where
        F: FnOnce(ShutdownSignal) -> Fut,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve(ShutdownSignal(rx)));
        Self {
            addr,
            control_addr: None,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// The bound address (useful when listening on port 0).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, without a trailing slash.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn with_control_addr(mut self, addr: Option<SocketAddr>) -> Self {
        self.control_addr = addr;
        self
    }

    /// The control listener's address, when the server has one.
    #[must_use]
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// `http://CONTROL_ADDR`, when the server has a control listener.
    #[must_use]
    pub fn control_url(&self) -> Option<String> {
        self.control_addr.map(|a| format!("http://{a}"))
    }

    /// Stops accepting connections, lets in-flight requests finish (up to a few
    /// seconds) and waits for the server task.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(tx) = self.shutdown.take() {
            // The server may already have exited; nothing to tell it then.
            let _ = tx.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_err)) => Err(Error::Task(join_err.to_string())),
            Err(_elapsed) => {
                task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Resolves when the owning [`ServerHandle`] asks for shutdown or is dropped.
pub(crate) struct ShutdownSignal(oneshot::Receiver<()>);

impl ShutdownSignal {
    pub(crate) async fn wait(self) {
        // Err means the sender was dropped: treat as a shutdown request too.
        let _ = self.0.await;
    }
}

/// SIGINT/SIGTERM handlers, installed when this is created (so a signal
/// that arrives before anyone waits is not lost and does not kill the
/// process with the default action).
pub(crate) struct OsSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl OsSignals {
    pub(crate) fn install() -> Result<Self, Error> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Waits for SIGINT or SIGTERM (Ctrl-C only on non-unix platforms).
    pub(crate) async fn wait(mut self) -> Result<(), Error> {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
            }
            Ok(())
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await?;
            Ok(())
        }
    }
}

/// Binds a TCP listener, mapping the error to one that names the address.
pub(crate) async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}
