//! The time source handlers read, replaceable in tests (reminder lateness, missed horizons).

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// A source of "now". Code that compares times takes one instead of calling `Utc::now`, so a
/// test can fix or move time; cheap to clone, and [`Clock::system`] by default.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(Utc::now))
    }

    /// A clock stuck at `at`.
    pub fn fixed(at: DateTime<Utc>) -> Self {
        Self(Arc::new(move || at))
    }

    /// Any time source, such as a test clock that can be advanced.
    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// The current time by this clock: read it once per decision, since a test clock may move
    /// between two reads.
    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}
