//! The changes this replica has seen lately, and the open streams they go to.
//!
//! Every replica consumes every `task-events` and `reminders` event (in a consumer group of its
//! own, see [`super`]) and hands it to [`Hub::publish`]. The hub keeps the recent ones for
//! resuming ([`Limits::window`], [`Limits::window_events`]) and passes each to the streams of its
//! owner, through one bounded broadcast channel per connected user: a stream that falls
//! [`Limits::buffer`] changes behind is told to resync and closed, so a slow client never slows
//! the others nor grows memory.
//!
//! Resuming (`Last-Event-ID`): the replica a client reconnects to may have received the events
//! of different tasks in another order than the one it was connected to (Kafka orders each
//! partition, that is each task, not the topic). So a resume sends the owner's changes after the
//! named one *and* those received up to [`REORDER_MARGIN`] before it: a change may come twice
//! around a reconnect, never not at all. Every change carries the task's version, by which a
//! client ignores what it has. A change the hub no longer (or never) held means a resync.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{broadcast, watch};

/// How much earlier than the change a resume names the hub sends again (see the module doc):
/// far more than two consumers of the same topic drift apart while both are healthy.
pub const REORDER_MARGIN: Duration = Duration::from_secs(5);

/// One change as streams send it: the CloudEvent's id, type and data.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The CloudEvent id (`task:<id>:v<version>`, `reminder:<id>:<time>`): the SSE `id`.
    pub id: String,
    /// The CloudEvent type (`todo.task.created`, `todo.reminder.due`, ...): the SSE `event`.
    pub event_type: String,
    /// Whose change it is: only their streams see it.
    pub owner: String,
    /// The CloudEvent data (the task as it is after the change, or the reminder): the SSE `data`.
    pub data: Value,
}

/// The bounds of one replica's hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open streams of one user on this replica.
    pub per_user: usize,
    /// Open streams on this replica.
    pub per_replica: usize,
    /// How long a change stays resumable.
    pub window: Duration,
    /// The most changes (of all users) kept for resuming.
    pub window_events: usize,
    /// Changes a stream may fall behind before it is told to resync and closed.
    pub buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { per_user: 10, per_replica: 5_000, window: Duration::from_secs(300), window_events: 20_000, buffer: 256 }
    }
}

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The user has [`Limits::per_user`] streams open here.
    User(usize),
    /// This replica has [`Limits::per_replica`] streams open.
    Replica(usize),
    /// The replica is shutting down.
    Closing,
}

/// Where a new stream starts.
#[derive(Debug)]
pub enum Start {
    /// From now (no `Last-Event-ID`).
    Now,
    /// After the named change: these first (oldest first), then live.
    Resumed(Vec<Arc<Stamped>>),
    /// The named change is not (or no longer) here: the client must re-list, then live.
    Resync,
}

/// A change with when this replica received it.
#[derive(Debug)]
pub struct Stamped {
    pub change: Change,
    pub received: Instant,
}

/// An open stream: where it starts, its live changes, and its place in the counts (freed on
/// drop).
#[derive(Debug)]
pub struct Stream {
    pub start: Start,
    pub changes: broadcast::Receiver<Arc<Stamped>>,
    /// Turns `true` when the replica shuts down: streams end so that shutdown need not wait.
    pub closing: watch::Receiver<bool>,
    _slot: Slot,
}

#[derive(Debug)]
struct Slot {
    hub: Arc<Hub>,
    owner: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.hub.lock();
        inner.streams = inner.streams.saturating_sub(1);
        if let Some(user) = inner.users.get_mut(&self.owner) {
            user.streams = user.streams.saturating_sub(1);
            if user.streams == 0 {
                inner.users.remove(&self.owner);
            }
        }
    }
}

#[derive(Debug)]
struct Connected {
    sender: broadcast::Sender<Arc<Stamped>>,
    streams: usize,
}

#[derive(Debug, Default)]
struct Inner {
    recent: VecDeque<Arc<Stamped>>,
    /// The ids in `recent`: a redelivered event (at-least-once) is passed on once.
    ids: HashSet<String>,
    users: HashMap<String, Connected>,
    streams: usize,
}

/// The live changes of one replica.
#[derive(Debug)]
pub struct Hub {
    limits: Limits,
    inner: Mutex<Inner>,
    closing: watch::Sender<bool>,
}

impl Hub {
    pub fn new(limits: Limits) -> Arc<Self> {
        let (closing, _) = watch::channel(false);
        Arc::new(Self { limits, inner: Mutex::new(Inner::default()), closing })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing under the lock can leave the maps half-changed: a panic elsewhere must not
        // stop every stream.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `change` for resuming and sends it to its owner's open streams. Returns `false`
    /// for a change already seen (a redelivery), which goes nowhere.
    pub fn publish(&self, change: Change, now: Instant) -> bool {
        let mut inner = self.lock();
        if inner.ids.contains(&change.id) {
            return false;
        }
        let stamped = Arc::new(Stamped { change, received: now });
        inner.ids.insert(stamped.change.id.clone());
        inner.recent.push_back(stamped.clone());
        while inner.recent.len() > self.limits.window_events
            || inner.recent.front().is_some_and(|old| now.saturating_duration_since(old.received) > self.limits.window)
        {
            if let Some(old) = inner.recent.pop_front() {
                inner.ids.remove(&old.change.id);
            }
        }
        if let Some(user) = inner.users.get(&stamped.change.owner) {
            // No receiver left is fine: the last stream is closing.
            let _ = user.sender.send(stamped);
        }
        true
    }

    /// Opens a stream of `owner`'s changes, after `last_event_id` when given.
    pub fn open(self: &Arc<Self>, owner: &str, last_event_id: Option<&str>) -> Result<Stream, Refused> {
        if *self.closing.borrow() {
            return Err(Refused::Closing);
        }
        let mut inner = self.lock();
        if inner.streams >= self.limits.per_replica {
            return Err(Refused::Replica(self.limits.per_replica));
        }
        if inner.users.get(owner).is_some_and(|user| user.streams >= self.limits.per_user) {
            return Err(Refused::User(self.limits.per_user));
        }
        // Under the same lock as the subscription: nothing between the resumed changes and the
        // live ones is missed or sent twice.
        let start = match last_event_id {
            None => Start::Now,
            Some(id) => match inner.recent.iter().position(|s| s.change.id == id) {
                None => Start::Resync,
                Some(at) => {
                    let named = inner.recent[at].received;
                    let margin = named.checked_sub(REORDER_MARGIN).unwrap_or(named);
                    let from = inner.recent.iter().position(|s| s.received >= margin).unwrap_or(at);
                    Start::Resumed(
                        inner
                            .recent
                            .iter()
                            .skip(from)
                            .filter(|s| s.change.owner == owner && s.change.id != id)
                            .cloned()
                            .collect(),
                    )
                }
            },
        };
        let buffer = self.limits.buffer.max(1);
        let user = inner
            .users
            .entry(owner.to_owned())
            .or_insert_with(|| Connected { sender: broadcast::channel(buffer).0, streams: 0 });
        user.streams += 1;
        let changes = user.sender.subscribe();
        inner.streams += 1;
        Ok(Stream {
            start,
            changes,
            closing: self.closing.subscribe(),
            _slot: Slot { hub: self.clone(), owner: owner.to_owned() },
        })
    }

    /// Ends every stream and refuses new ones: the replica is shutting down, and its clients
    /// reconnect to another.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Open streams on this replica.
    pub fn streams(&self) -> usize {
        self.lock().streams
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    fn change(owner: &str, id: &str) -> Change {
        Change { id: id.into(), event_type: "todo.task.updated".into(), owner: owner.into(), data: json!({"id": id}) }
    }

    fn ids(start: &Start) -> Vec<String> {
        match start {
            Start::Resumed(changes) => changes.iter().map(|s| s.change.id.clone()).collect(),
            other => panic!("not resumed: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_stream_gets_its_owners_changes_only_once_each() {
        let hub = Hub::new(Limits::default());
        let mut alice = hub.open("alice", None).unwrap();
        let t0 = Instant::now();
        assert!(hub.publish(change("bob", "b1"), t0));
        assert!(hub.publish(change("alice", "a1"), t0));
        assert!(!hub.publish(change("alice", "a1"), t0), "a redelivery goes nowhere");
        assert!(hub.publish(change("alice", "a2"), t0));
        assert_eq!(alice.changes.recv().await.unwrap().change.id, "a1");
        assert_eq!(alice.changes.recv().await.unwrap().change.id, "a2");
        assert!(alice.changes.try_recv().is_err(), "bob's change and the duplicate never arrive");
    }

    #[tokio::test]
    async fn a_resume_sends_what_followed_and_a_margin_before() {
        let hub = Hub::new(Limits::default());
        let t0 = Instant::now();
        hub.publish(change("alice", "old"), t0);
        hub.publish(change("alice", "near"), t0 + Duration::from_secs(10));
        hub.publish(change("bob", "bobs"), t0 + Duration::from_secs(11));
        hub.publish(change("alice", "named"), t0 + Duration::from_secs(12));
        hub.publish(change("alice", "after"), t0 + Duration::from_secs(13));
        let stream = hub.open("alice", Some("named")).unwrap();
        assert_eq!(ids(&stream.start), ["near", "after"], "5 s before the named change, and everything after");
        assert!(matches!(hub.open("alice", Some("unknown")).unwrap().start, Start::Resync));
        assert!(matches!(hub.open("alice", None).unwrap().start, Start::Now));
    }

    #[test]
    fn the_window_is_bounded_by_count_and_age() {
        let hub = Hub::new(Limits { window_events: 2, window: Duration::from_secs(60), ..Limits::default() });
        let t0 = Instant::now();
        for n in 0..3 {
            hub.publish(change("alice", &format!("c{n}")), t0);
        }
        assert!(matches!(hub.open("alice", Some("c0")).unwrap().start, Start::Resync), "evicted by count");
        assert!(hub.publish(change("alice", "c0"), t0), "an evicted id is new again");
        hub.publish(change("alice", "late"), t0 + Duration::from_secs(61));
        assert!(matches!(hub.open("alice", Some("c2")).unwrap().start, Start::Resync), "evicted by age");
        assert!(matches!(hub.open("alice", Some("late")).unwrap().start, Start::Resumed(_)));
    }

    #[test]
    fn streams_are_capped_per_user_and_per_replica_and_freed_on_drop() {
        let hub = Hub::new(Limits { per_user: 2, per_replica: 3, ..Limits::default() });
        let a1 = hub.open("alice", None).unwrap();
        let _a2 = hub.open("alice", None).unwrap();
        assert_eq!(hub.open("alice", None).unwrap_err(), Refused::User(2));
        let _b1 = hub.open("bob", None).unwrap();
        assert_eq!(hub.open("carol", None).unwrap_err(), Refused::Replica(3));
        drop(a1);
        assert_eq!(hub.streams(), 2);
        assert!(hub.open("carol", None).is_ok());
        hub.close();
        assert_eq!(hub.open("dave", None).unwrap_err(), Refused::Closing);
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_is_told_so() {
        let hub = Hub::new(Limits { buffer: 2, ..Limits::default() });
        let mut slow = hub.open("alice", None).unwrap();
        let mut fast = hub.open("alice", None).unwrap();
        let t0 = Instant::now();
        for n in 0..3 {
            hub.publish(change("alice", &format!("c{n}")), t0);
            assert_eq!(fast.changes.recv().await.unwrap().change.id, format!("c{n}"));
        }
        assert!(matches!(slow.changes.recv().await, Err(broadcast::error::RecvError::Lagged(1))));
    }
}
