//! Transaction conflicts as production DynamoDB raises them, which DynamoDB Local never does.
//!
//! Every request that holds its items while it runs (transactions and single-item writes)
//! registers on its items when it arrives. A request that conflicts with an earlier one on a
//! shared item (`Kind::conflicts_with`) is refused if that earlier request was still holding
//! the item when this one arrived.
//!
//! How long a request holds its items is the model's central choice. DynamoDB Local runs one
//! request at a time behind a lock, so a request's latency through it is mostly time spent
//! queued behind others, which production DynamoDB would not have. A request therefore holds
//! its items from its arrival for its own *service time* (how long DynamoDB Local worked on it,
//! estimated by the caller as a single-server queue: from the later of its dispatch and the
//! previous answer, to its answer), plus `--hold-ms` for transactions. Queueing does not widen
//! the window.
//!
//! A later request on the same items cannot be judged while an earlier conflicting one is still
//! running (its service time is not known yet), so it waits for that one to finish: requests on
//! one hot item pass the proxy one after another, as they would pass DynamoDB Local's lock.
//! Requests on different items never wait for each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::plan::Kind;

/// When to sweep finished entries, and how long after their hold they are kept.
const SWEEP_ABOVE: usize = 4096;
const KEEP_AFTER_HOLD: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum State {
    /// Registered, not yet judged or sent.
    Waiting,
    /// Sent to DynamoDB Local.
    Running,
    /// Answered (or given up): its items are held until `until`.
    Done { until: Instant },
}

#[derive(Debug)]
struct Entry {
    kind: Kind,
    items: Vec<String>,
    state: State,
    finished: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    entries: HashMap<u64, Entry>,
    by_item: HashMap<String, Vec<u64>>,
}

impl Table {
    fn sweep(&mut self, now: Instant) {
        let stale: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, entry)| {
                matches!(entry.state, State::Done { until } if until + KEEP_AFTER_HOLD < now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some(entry) = self.entries.remove(&id) {
                for item in entry.items {
                    if let Some(ids) = self.by_item.get_mut(&item) {
                        ids.retain(|other| *other != id);
                        if ids.is_empty() {
                            self.by_item.remove(&item);
                        }
                    }
                }
            }
        }
    }

    fn finish(&mut self, id: u64, until: Instant) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.state = State::Done { until };
            let _ = entry.finished.send(true);
        }
    }
}

/// The items held by requests in flight, shared by every connection.
#[derive(Debug, Default, Clone)]
pub(crate) struct Holds {
    table: Arc<Mutex<Table>>,
}

/// A request's registration on its items. Dropping it before `finish` (the client went away,
/// or the request was refused) ends its hold.
#[derive(Debug)]
pub(crate) struct Ticket {
    table: Arc<Mutex<Table>>,
    id: u64,
    kind: Kind,
    arrival: Instant,
    items: Vec<String>,
    finished: bool,
}

impl Holds {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a request of `kind` on `items`, arriving now.
    pub(crate) fn arrive(&self, kind: Kind, items: Vec<String>) -> Ticket {
        let arrival = Instant::now();
        let mut table = self.lock();
        if table.entries.len() > SWEEP_ABOVE {
            table.sweep(arrival);
        }
        let id = table.next_id;
        table.next_id += 1;
        for item in &items {
            table.by_item.entry(item.clone()).or_default().push(id);
        }
        let (finished, _) = watch::channel(false);
        table.entries.insert(
            id,
            Entry {
                kind,
                items: items.clone(),
                state: State::Waiting,
                finished,
            },
        );
        Ticket {
            table: self.table.clone(),
            id,
            kind,
            arrival,
            items,
            finished: false,
        }
    }
}

impl Ticket {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until every earlier conflicting request on these items has finished, then says
    /// which of the items (by index in the request) an earlier request still held when this one
    /// arrived. Empty: the request may run.
    pub(crate) async fn judge(&self) -> Vec<usize> {
        loop {
            let blocker = {
                let table = self.lock();
                let running = self
                    .earlier(&table)
                    .find(|entry| !matches!(entry.state, State::Done { .. }))
                    .map(|entry| entry.finished.subscribe());
                running
            };
            match blocker {
                Some(mut finished) => {
                    let _ = finished.wait_for(|done| *done).await;
                }
                None => break,
            }
        }
        let table = self.lock();
        self.items
            .iter()
            .enumerate()
            .filter(|(_, item)| {
                table.by_item.get(*item).is_some_and(|ids| {
                    ids.iter()
                        .filter(|id| **id < self.id)
                        .filter_map(|id| table.entries.get(id))
                        .any(|entry| {
                            self.kind.conflicts_with(entry.kind)
                                && matches!(entry.state, State::Done { until } if until > self.arrival)
                        })
                })
            })
            .map(|(index, _)| index)
            .collect()
    }

    /// The earlier requests on these items that this one conflicts with.
    fn earlier<'a>(&'a self, table: &'a Table) -> impl Iterator<Item = &'a Entry> + 'a {
        self.items
            .iter()
            .filter_map(|item| table.by_item.get(item))
            .flatten()
            .filter(|id| **id < self.id)
            .filter_map(|id| table.entries.get(id))
            .filter(|entry| self.kind.conflicts_with(entry.kind))
    }

    /// The request is sent to DynamoDB Local.
    pub(crate) fn start(&self) {
        if let Some(entry) = self.lock().entries.get_mut(&self.id) {
            entry.state = State::Running;
        }
    }

    /// The request was answered after `service` of DynamoDB Local's own work: its items are held
    /// from its arrival for that long, plus `extra`.
    pub(crate) fn finish(mut self, service: Duration, extra: Duration) {
        let until = self.arrival + service + extra;
        self.lock().finish(self.id, until);
        self.finished = true;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut table = self.lock();
        // Refused before it ran: it held nothing. Abandoned while running: assume it held its
        // items until now (the write may still commit).
        let until = match table.entries.get(&self.id).map(|entry| &entry.state) {
            Some(State::Running) => Instant::now(),
            _ => self.arrival,
        };
        table.finish(self.id, until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[tokio::test]
    async fn a_transaction_conflicts_only_within_the_earlier_ones_hold() {
        let holds = Holds::default();
        // GIVEN a transaction on a and b that ran for 50 ms
        let first = holds.arrive(Kind::TransactWrite, items(&["a", "b"]));
        assert!(first.judge().await.is_empty());
        first.start();
        // WHEN a second transaction on b and c arrives while the first still runs
        let second = holds.arrive(Kind::TransactWrite, items(&["c", "b"]));
        let judged = tokio::spawn(async move { (second.judge().await, second) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!judged.is_finished(), "it waits for the first to finish");
        first.finish(Duration::from_millis(50), Duration::ZERO);
        // THEN it conflicts on b (index 1), not on c
        let (conflicts, second) = judged.await.unwrap();
        assert_eq!(conflicts, vec![1]);
        drop(second);
        // AND a single write on a after the hold ended does not conflict
        tokio::time::sleep(Duration::from_millis(60)).await;
        let later = holds.arrive(Kind::SingleWrite, items(&["a"]));
        assert!(later.judge().await.is_empty());
    }

    #[tokio::test]
    async fn queueing_does_not_widen_the_hold() {
        let holds = Holds::default();
        // GIVEN a transaction that waits 30 ms in DynamoDB Local's queue for 2 ms of work
        let first = holds.arrive(Kind::TransactWrite, items(&["a"]));
        first.start();
        // AND a single write on its item 10 ms after it arrived
        tokio::time::sleep(Duration::from_millis(10)).await;
        let second = holds.arrive(Kind::SingleWrite, items(&["a"]));
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.finish(Duration::from_millis(2), Duration::ZERO);
        // THEN the write does not conflict: the hold was 2 ms of service, not 30 ms of latency
        assert!(second.judge().await.is_empty());
        // AND with 50 ms of extra hold (--hold-ms) the same timing conflicts
        let third = holds.arrive(Kind::TransactWrite, items(&["b"]));
        third.start();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let fourth = holds.arrive(Kind::SingleWrite, items(&["b"]));
        third.finish(Duration::from_millis(2), Duration::from_millis(50));
        assert_eq!(fourth.judge().await, vec![0]);
    }

    #[tokio::test]
    async fn reads_and_single_writes_never_wait_for_each_other() {
        let holds = Holds::default();
        let write = holds.arrive(Kind::SingleWrite, items(&["a"]));
        write.start();
        let other = holds.arrive(Kind::SingleWrite, items(&["a"]));
        assert!(other.judge().await.is_empty());
        drop(write);
    }
}
