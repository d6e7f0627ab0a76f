//! Same-key ordering: rows that share a key are written one after another, in file order, even
//! when they are many look-up batches apart.
//!
//! Each group of same-key rows runs in one task. When a later group for a key is dispatched while
//! an earlier one may still be writing, it receives the earlier group's *tail*: a oneshot that
//! delivers the record as the earlier group left it. The later group waits for it instead of
//! looking the key up (which would race with the write in flight), so it never needs a GET either.

use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::m2m::client::Item;

/// What a finished group knows about its key's record.
#[derive(Debug, Clone)]
pub(crate) enum KeyState {
    /// The record as last written or read (none: no live record has the key).
    Known(Option<Item>),
    /// Several live records have the key (the target holds duplicates): rows that would write
    /// to it are rejected.
    Ambiguous(usize),
    /// The group ended without knowing (a write failed in a way that leaves the record's state
    /// unclear); the next group looks the key up again.
    Unknown,
}

/// Where a group starts from.
pub(crate) enum Start {
    /// The look-up's answer for this key.
    Looked(KeyState),
    /// Wait for the previous group with this key.
    After(oneshot::Receiver<KeyState>),
    /// Wait for the chunk's look-up, which runs in a task of its own (a failed look-up drops
    /// the sender: the state is unknown and the group looks its key up by itself).
    Pending(oneshot::Receiver<KeyState>),
}

impl Start {
    /// The state the group starts from (an abandoned predecessor counts as unknown).
    pub(crate) async fn resolve(self) -> KeyState {
        match self {
            Start::Looked(state) => state,
            Start::After(receiver) | Start::Pending(receiver) => {
                receiver.await.unwrap_or(KeyState::Unknown)
            }
        }
    }
}

/// The tails of the groups dispatched so far, by key text.
#[derive(Default)]
pub(crate) struct KeyTails {
    tails: HashMap<String, oneshot::Receiver<KeyState>>,
}

impl KeyTails {
    /// Takes the tail of the last group with `key`, if that group may still be running.
    pub(crate) fn take(&mut self, key: &str) -> Option<oneshot::Receiver<KeyState>> {
        self.tails.remove(key)
    }

    /// Registers a new group for `key`; returns the sender it reports its final state on.
    pub(crate) fn push(&mut self, key: String) -> oneshot::Sender<KeyState> {
        let (sender, receiver) = oneshot::channel();
        self.tails.insert(key, receiver);
        sender
    }

    /// Forgets the tails of groups that have finished (a later group with the same key looks
    /// it up afresh), so the map stays as small as the work in flight.
    pub(crate) fn prune(&mut self) {
        self.tails.retain(|_, receiver| {
            matches!(receiver.try_recv(), Err(oneshot::error::TryRecvError::Empty))
        });
    }

    /// Tails still registered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tails.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, etag: &str) -> Item {
        Item { id: id.into(), etag: etag.into(), body: serde_json::Map::new() }
    }

    #[tokio::test]
    async fn a_later_group_starts_from_the_state_the_earlier_one_left() {
        let mut tails = KeyTails::default();
        let first = tails.push("k".into());
        let previous = tails.take("k").expect("the first group's tail");
        let second = tails.push("k".into());
        let waiter = tokio::spawn(Start::After(previous).resolve());
        first.send(KeyState::Known(Some(item("a", "\"2\"")))).ok();
        match waiter.await.unwrap() {
            KeyState::Known(Some(item)) => assert_eq!(item.etag, "\"2\""),
            other => panic!("{other:?}"),
        }
        drop(second);
    }

    #[tokio::test]
    async fn an_abandoned_predecessor_means_unknown_state() {
        let mut tails = KeyTails::default();
        let first = tails.push("k".into());
        let previous = tails.take("k").unwrap();
        drop(first);
        assert!(matches!(Start::After(previous).resolve().await, KeyState::Unknown));
    }

    #[test]
    fn finished_tails_are_pruned_running_ones_kept() {
        let mut tails = KeyTails::default();
        let done = tails.push("done".into());
        let _running = tails.push("running".into());
        let abandoned = tails.push("abandoned".into());
        done.send(KeyState::Known(None)).ok();
        drop(abandoned);
        tails.prune();
        assert_eq!(tails.len(), 1);
        assert!(tails.take("running").is_some());
    }
}
