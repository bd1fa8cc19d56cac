//! Background tasks: work a function does on its own schedule rather than when Dapr calls it
//! (task-api's outbox relay), started and stopped by the runtime with the server.
//!
//! Why the runtime owns them: graceful shutdown is already the runtime's job (SIGTERM, drain,
//! deadline), and a task a function spawned by hand in its `main` would neither see that signal
//! nor be waited for, so a rolling update could cut it off half-way through a step. A task gets
//! a [`Stopping`] and must return soon after [`Stopping::stopped`] resolves; the runtime waits for
//! it within what is left of `SHUTDOWN_TIMEOUT_SECS`, then aborts it.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

/// Tells a background task that the function is shutting down. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Stopping(watch::Receiver<bool>);

/// The sending side of [`Stopping`]: [`StopSignal::stop`] (or dropping it) stops every task
/// holding a [`Stopping`] made from it.
#[derive(Debug)]
pub struct StopSignal(watch::Sender<bool>);

impl Stopping {
    /// A signal and its receiving side, for tests and for hosts other than [`super::serve`].
    pub fn channel() -> (StopSignal, Stopping) {
        let (tx, rx) = watch::channel(false);
        (StopSignal(tx), Stopping(rx))
    }

    pub(crate) fn from_receiver(rx: watch::Receiver<bool>) -> Self {
        Self(rx)
    }

    /// Whether shutdown has begun (a dropped signal counts as a stop).
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Resolves once shutdown has begun.
    pub async fn stopped(&self) {
        let mut rx = self.0.clone();
        // An error means the sender is gone: nobody can start the task's work again either.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

impl StopSignal {
    /// Begins shutdown for every [`Stopping`] of this signal. Idempotent; there is no undo: a
    /// task that saw the stop is expected to return.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }

    /// Another receiving side of this signal.
    pub fn stopping(&self) -> Stopping {
        Stopping(self.0.subscribe())
    }
}

pub(crate) type BackgroundFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One background task of a [`super::Function`]: a name for logs and how to start it.
pub struct Background {
    pub(crate) name: &'static str,
    start: Box<dyn FnOnce(Stopping) -> BackgroundFuture + Send>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background").field("name", &self.name).finish()
    }
}

impl Background {
    pub(crate) fn new<F, Fut>(name: &'static str, task: F) -> Self
    where
        F: FnOnce(Stopping) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self { name, start: Box::new(move |stopping| Box::pin(task(stopping)) as BackgroundFuture) }
    }

    /// The name given to [`super::Function::background`], which the runtime logs at start and
    /// when the task outlives the shutdown deadline.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Starts the task on the runtime.
    pub fn spawn(self, stopping: Stopping) -> tokio::task::JoinHandle<()> {
        tokio::spawn((self.start)(stopping))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stopping_resolves_on_stop_and_on_a_dropped_signal() {
        let (signal, stopping) = Stopping::channel();
        assert!(!stopping.is_stopped());
        signal.stop();
        assert!(stopping.is_stopped());
        tokio::time::timeout(std::time::Duration::from_secs(1), stopping.stopped()).await.unwrap();

        let (signal, stopping) = Stopping::channel();
        drop(signal);
        assert!(stopping.is_stopped());
        tokio::time::timeout(std::time::Duration::from_secs(1), stopping.stopped()).await.unwrap();
    }
}
