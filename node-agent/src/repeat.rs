//! Repeated failures, told once: a failure is logged when it starts (or turns into another
//! one), recalled at most once per [`REMIND`] while it lasts, and logged again with a count
//! when it ends. Never once per attempt: a loop that retries every 20 ms must not flood the
//! log. Owns no logging itself; the caller logs what [`Repeated`] says is worth saying.

use std::time::{Duration, Instant};

/// How often a failure that goes on is recalled.
pub const REMIND: Duration = Duration::from_secs(300);

/// What the caller should log about a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failed {
    /// A new failure (or a different one than before): log it in full.
    Started,
    /// The same failure goes on: recall it, with how often it happened so far.
    Still {
        /// Failed attempts so far.
        count: u64,
    },
    /// The same failure, already told: log nothing.
    Quiet,
}

/// A failure that ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// The failure, as first reported.
    pub error: String,
    /// How many attempts failed.
    pub count: u64,
    /// How long it lasted.
    pub seconds: f64,
}

struct Ongoing {
    error: String,
    count: u64,
    since: Instant,
    told: Instant,
}

/// One kind of attempt's failure state.
#[derive(Default)]
pub struct Repeated {
    current: Option<Ongoing>,
}

impl Repeated {
    /// Records a failed attempt with `error` and says what to log.
    pub fn failed(&mut self, error: &str) -> Failed {
        let now = Instant::now();
        match &mut self.current {
            Some(o) if o.error == error => {
                o.count += 1;
                if now.duration_since(o.told) >= REMIND {
                    o.told = now;
                    Failed::Still { count: o.count }
                } else {
                    Failed::Quiet
                }
            }
            _ => {
                self.current = Some(Ongoing {
                    error: error.to_owned(),
                    count: 1,
                    since: now,
                    told: now,
                });
                Failed::Started
            }
        }
    }

    /// Records a successful attempt; returns the failure it ends, if one was going on.
    pub fn succeeded(&mut self) -> Option<Ended> {
        self.current.take().map(|o| Ended {
            error: o.error,
            count: o.count,
            seconds: o.since.elapsed().as_secs_f64(),
        })
    }

    /// The failure going on, if any.
    pub fn error(&self) -> Option<&str> {
        self.current.as_ref().map(|o| o.error.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_told_once_then_counted_until_it_ends() {
        let mut r = Repeated::default();
        assert_eq!(r.succeeded(), None);
        assert_eq!(r.failed("missing"), Failed::Started);
        for _ in 0..99 {
            assert_eq!(r.failed("missing"), Failed::Quiet);
        }
        assert_eq!(r.error(), Some("missing"));
        assert_eq!(
            r.failed("bad yaml"),
            Failed::Started,
            "another failure is told"
        );
        assert_eq!(r.failed("bad yaml"), Failed::Quiet);
        let ended = r.succeeded().unwrap();
        assert_eq!((ended.error.as_str(), ended.count), ("bad yaml", 2));
        assert_eq!(r.succeeded(), None);
    }
}
