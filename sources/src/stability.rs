//! [`StabilityTracker`]: decides when a listed file has finished arriving.
//!
//! A file is **ready** when
//! 1. it is not a temp upload (no `temp_file_extensions` ending), and
//! 2. two consecutive polls saw it with the same size, modification time and version, and
//! 3. at least `min_quiet` (monotonic time) has passed since the poll that first saw it in that
//!    state — so two polls a few milliseconds apart (an event-driven wake-up right after a timed
//!    poll) cannot mistake a slow upload for a finished one.
//!
//! A file that changes starts over; a file that disappears is forgotten. A ready file is reported
//! as ready on every poll while it stays unchanged: deciding whether it was already taken is the
//! claim's job (the engine's), which keeps a crashed or failed import from losing the file.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use crate::FileEntry;

/// What the tracker remembers about one path.
#[derive(Debug, Clone)]
struct Observation {
    size: u64,
    modified: Option<SystemTime>,
    version: Option<String>,
    first_seen: Instant,
    polls_unchanged: u32,
}

/// The result of one [`StabilityTracker::observe`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Files that finished arriving: unchanged across two polls and not temp uploads.
    pub ready: Vec<FileEntry>,
    /// Files seen for the first time in their current state, or changed since the last poll,
    /// or not yet quiet for `min_quiet`.
    pub settling: Vec<FileEntry>,
    /// Files still carrying a temp-upload ending.
    pub temp_uploads: Vec<FileEntry>,
}

/// Remembers size, modification time and version of every listed file across polls; see the
/// module docs for the rule.
#[derive(Debug, Clone)]
pub struct StabilityTracker {
    min_quiet: Duration,
    seen: HashMap<String, Observation>,
}

impl StabilityTracker {
    /// A tracker that also requires `min_quiet` between the first and the confirming sighting
    /// (the poller uses one second; `Duration::ZERO` means "two polls are enough").
    pub fn new(min_quiet: Duration) -> Self {
        Self { min_quiet, seen: HashMap::new() }
    }

    /// Takes one complete listing (the whole source, not a page) seen at `now` and sorts it into
    /// ready, settling and temp uploads. Paths missing from the listing are forgotten.
    pub fn observe(&mut self, listing: Vec<FileEntry>, now: Instant) -> Observed {
        let mut out = Observed::default();
        let mut next = HashMap::with_capacity(listing.len());
        for entry in listing {
            if entry.is_temp_upload {
                out.temp_uploads.push(entry);
                continue;
            }
            let observation = match self.seen.remove(&entry.path) {
                Some(prev)
                    if prev.size == entry.size
                        && prev.modified == entry.modified
                        && prev.version == entry.version =>
                {
                    Observation { polls_unchanged: prev.polls_unchanged.saturating_add(1), ..prev }
                }
                _ => Observation {
                    size: entry.size,
                    modified: entry.modified,
                    version: entry.version.clone(),
                    first_seen: now,
                    polls_unchanged: 0,
                },
            };
            let quiet_long_enough =
                now.saturating_duration_since(observation.first_seen) >= self.min_quiet;
            if observation.polls_unchanged >= 1 && quiet_long_enough {
                next.insert(entry.path.clone(), observation);
                out.ready.push(entry);
            } else {
                next.insert(entry.path.clone(), observation);
                out.settling.push(entry);
            }
        }
        self.seen = next;
        out
    }

    /// Forgets a path (after it was moved or deleted).
    pub fn forget(&mut self, path: &str) {
        self.seen.remove(path);
    }

    /// How many paths the tracker remembers.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether the tracker remembers nothing.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, size: u64, temp: bool) -> FileEntry {
        FileEntry {
            path: path.into(),
            size,
            modified: Some(SystemTime::UNIX_EPOCH),
            version: None,
            is_temp_upload: temp,
        }
    }

    #[test]
    fn ready_only_after_two_unchanged_polls() {
        let mut t = StabilityTracker::new(Duration::ZERO);
        let now = Instant::now();
        let o = t.observe(vec![entry("a", 1, false)], now);
        assert!(o.ready.is_empty());
        assert_eq!(o.settling.len(), 1);
        let o = t.observe(vec![entry("a", 2, false)], now);
        assert!(o.ready.is_empty(), "grew: starts over");
        let o = t.observe(vec![entry("a", 2, false)], now);
        assert_eq!(o.ready, vec![entry("a", 2, false)]);
        let o = t.observe(vec![entry("a", 2, false)], now);
        assert_eq!(o.ready.len(), 1, "still ready while unchanged");
    }

    #[test]
    fn min_quiet_holds_back_quick_second_polls() {
        let mut t = StabilityTracker::new(Duration::from_secs(1));
        let start = Instant::now();
        t.observe(vec![entry("a", 1, false)], start);
        let o = t.observe(vec![entry("a", 1, false)], start + Duration::from_millis(10));
        assert!(o.ready.is_empty());
        let o = t.observe(vec![entry("a", 1, false)], start + Duration::from_secs(1));
        assert_eq!(o.ready.len(), 1);
    }

    #[test]
    fn temp_uploads_never_ready_and_vanished_files_forgotten() {
        let mut t = StabilityTracker::new(Duration::ZERO);
        let now = Instant::now();
        for _ in 0..3 {
            let o = t.observe(vec![entry("a.part", 1, true)], now);
            assert!(o.ready.is_empty());
            assert_eq!(o.temp_uploads.len(), 1);
        }
        t.observe(vec![entry("b", 1, false)], now);
        assert_eq!(t.len(), 1);
        t.observe(vec![], now);
        assert!(t.is_empty());
    }
}
