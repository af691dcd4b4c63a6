//! The local spool: an outbox in a directory, for when PocketBase itself is down, and for
//! everything that must outlive a crash without it.
//!
//! Files in the directory:
//! - `outbox.jsonl`: a journal, one JSON object per line: `{"enqueued": <Delivery>}`,
//!   `{"delivered": {"id"}}`, `{"failed": {"id", "error", "next_attempt_at"}}` (a `null` time
//!   abandons it), `{"settled": {"id"}}` (an id remembered from before the last compaction).
//!   Every line is written and synced to disk (`fdatasync`) before the call returns.
//! - `lock`: held (`flock`) by the one process that owns the directory.
//!
//! Opening replays the journal (a line cut short by a crash mid-write is skipped and counted)
//! and compacts it: the pending deliveries and the ids of the last [`RECENT_SETTLED`] settled
//! ones are written to a new file, synced, and renamed over the old one, so a crash at any
//! point leaves one complete journal. The journal is compacted again whenever settled lines
//! outnumber live ones by far.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{Delivery, DeliveryStatus, Outbox, OutboxError, apply_failure, select_due};

/// How many settled ids the journal keeps after a compaction, so enqueuing a recently delivered
/// message again (a pass repeated after a crash) stays a no-op.
const RECENT_SETTLED: usize = 4096;
const JOURNAL_FILE: &str = "outbox.jsonl";
const LOCK_FILE: &str = "lock";

/// An outbox in a local directory (see the module docs).
#[derive(Debug)]
pub struct SpoolOutbox {
    state: Arc<Mutex<SpoolState>>,
}

#[derive(Debug)]
struct SpoolState {
    dir: PathBuf,
    _lock: File,
    journal: File,
    journal_lines: usize,
    pending: BTreeMap<String, Delivery>,
    settled: VecDeque<String>,
    settled_set: HashSet<String>,
    unreadable_lines: usize,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    Enqueued(Box<Delivery>),
    Delivered {
        id: String,
    },
    Failed {
        id: String,
        error: String,
        #[serde(with = "optional_rfc3339")]
        next_attempt_at: Option<SystemTime>,
    },
    Settled {
        id: String,
    },
}

impl SpoolOutbox {
    /// Opens (creating) the spool in `dir`: takes its lock, replays and compacts the journal.
    /// Blocking: call it at startup (or in `spawn_blocking`).
    pub fn open(dir: &Path) -> Result<SpoolOutbox, OutboxError> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OutboxError::Locked { dir: dir.to_owned() });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(OutboxError::Io { operation: "lock", path: lock_path, source });
            }
        }
        let journal_path = dir.join(JOURNAL_FILE);
        let mut state = SpoolState {
            dir: dir.to_owned(),
            _lock: lock,
            // Replaced by `compact` below; opened here so the struct is whole.
            journal: OpenOptions::new()
                .create(true)
                .append(true)
                .open(&journal_path)
                .map_err(io("open", &journal_path))?,
            journal_lines: 0,
            pending: BTreeMap::new(),
            settled: VecDeque::new(),
            settled_set: HashSet::new(),
            unreadable_lines: 0,
        };
        let file = File::open(&journal_path).map_err(io("open", &journal_path))?;
        for line in BufReader::new(file).split(b'\n') {
            let line = line.map_err(io("read", &journal_path))?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Entry>(&line) {
                Ok(entry) => state.apply(entry),
                Err(_) => state.unreadable_lines += 1,
            }
        }
        if state.unreadable_lines > 0 {
            tracing::warn!(
                dir = %dir.display(),
                lines = state.unreadable_lines,
                "skipped unreadable lines of the alert spool (a write cut short by a crash)"
            );
        }
        state.compact()?;
        Ok(SpoolOutbox { state: Arc::new(Mutex::new(state)) })
    }

    /// The pending deliveries, oldest first.
    pub fn pending(&self) -> Vec<Delivery> {
        let state = lock(&self.state);
        let mut pending: Vec<Delivery> = state.pending.values().cloned().collect();
        pending.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        pending
    }

    /// Lines of the journal that could not be read when it was opened.
    pub fn unreadable_lines(&self) -> usize {
        lock(&self.state).unreadable_lines
    }

    /// Runs `change` on the state in a blocking thread (it writes and syncs files).
    async fn blocking<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut SpoolState) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let state = Arc::clone(&self.state);
        match tokio::task::spawn_blocking(move || change(&mut lock(&state))).await {
            Ok(result) => result,
            Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
        }
    }
}

impl Outbox for SpoolOutbox {
    async fn enqueue(&self, delivery: Delivery) -> Result<(), OutboxError> {
        self.blocking(move |state| {
            if state.knows(&delivery.id) {
                return Ok(());
            }
            state.write(Entry::Enqueued(Box::new(delivery)))
        })
        .await
    }

    async fn due(
        &self,
        channel: &str,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<Delivery>, OutboxError> {
        Ok(select_due(lock(&self.state).pending.values(), channel, now, limit))
    }

    async fn mark_delivered(&self, id: &str) -> Result<(), OutboxError> {
        let id = id.to_owned();
        self.blocking(move |state| {
            if !state.pending.contains_key(&id) {
                return Err(OutboxError::UnknownDelivery { id });
            }
            state.write(Entry::Delivered { id })
        })
        .await
    }

    async fn mark_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<SystemTime>,
    ) -> Result<(), OutboxError> {
        let (id, error) = (id.to_owned(), error.to_owned());
        self.blocking(move |state| {
            if !state.pending.contains_key(&id) {
                return Err(OutboxError::UnknownDelivery { id });
            }
            state.write(Entry::Failed { id, error, next_attempt_at })
        })
        .await
    }
}

impl SpoolState {
    fn knows(&self, id: &str) -> bool {
        self.pending.contains_key(id) || self.settled_set.contains(id)
    }

    /// Appends the entry to the journal, synced, then applies it.
    fn write(&mut self, entry: Entry) -> Result<(), OutboxError> {
        let path = self.dir.join(JOURNAL_FILE);
        let mut line = serde_json::to_vec(&entry).expect("a journal entry serializes");
        line.push(b'\n');
        self.journal.write_all(&line).map_err(io("write", &path))?;
        self.journal.sync_data().map_err(io("sync", &path))?;
        self.journal_lines += 1;
        self.apply(entry);
        let live = self.pending.len() + self.settled.len();
        if self.journal_lines > 2 * live + 1024 {
            self.compact()?;
        }
        Ok(())
    }

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Enqueued(delivery) => {
                if !self.knows(&delivery.id) && delivery.status == DeliveryStatus::Pending {
                    self.pending.insert(delivery.id.clone(), *delivery);
                }
            }
            Entry::Delivered { id } => {
                if self.pending.remove(&id).is_some() {
                    self.remember_settled(id);
                }
            }
            Entry::Failed { id, error, next_attempt_at } => {
                if let Some(delivery) = self.pending.get_mut(&id) {
                    apply_failure(delivery, &error, next_attempt_at);
                    if delivery.status == DeliveryStatus::Abandoned {
                        self.pending.remove(&id);
                        self.remember_settled(id);
                    }
                }
            }
            Entry::Settled { id } => {
                if !self.knows(&id) {
                    self.remember_settled(id);
                }
            }
        }
    }

    fn remember_settled(&mut self, id: String) {
        self.settled_set.insert(id.clone());
        self.settled.push_back(id);
        while self.settled.len() > RECENT_SETTLED {
            if let Some(oldest) = self.settled.pop_front() {
                self.settled_set.remove(&oldest);
            }
        }
    }

    /// Writes the live state to a new journal and puts it in place of the old one.
    fn compact(&mut self) -> Result<(), OutboxError> {
        let path = self.dir.join(JOURNAL_FILE);
        let temporary = self.dir.join(format!("{JOURNAL_FILE}.tmp"));
        let mut file = File::create(&temporary).map_err(io("create", &temporary))?;
        let mut lines = 0;
        let mut text = Vec::new();
        for id in &self.settled {
            serde_json::to_writer(&mut text, &Entry::Settled { id: id.clone() })
                .expect("a journal entry serializes");
            text.push(b'\n');
            lines += 1;
        }
        let mut pending: Vec<&Delivery> = self.pending.values().collect();
        pending.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        for delivery in pending {
            serde_json::to_writer(&mut text, &Entry::Enqueued(Box::new(delivery.clone())))
                .expect("a journal entry serializes");
            text.push(b'\n');
            lines += 1;
        }
        file.write_all(&text).map_err(io("write", &temporary))?;
        file.sync_all().map_err(io("sync", &temporary))?;
        std::fs::rename(&temporary, &path).map_err(io("rename", &temporary))?;
        File::open(&self.dir).and_then(|dir| dir.sync_all()).map_err(io("sync", &self.dir))?;
        self.journal = OpenOptions::new().append(true).open(&path).map_err(io("open", &path))?;
        self.journal_lines = lines;
        Ok(())
    }
}

fn lock(state: &Mutex<SpoolState>) -> std::sync::MutexGuard<'_, SpoolState> {
    // A panic mid-write leaves the in-memory state as the journal says up to the last whole
    // entry at worst; keep using it.
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn io(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError {
    let path = path.to_owned();
    move |source| OutboxError::Io { operation, path, source }
}

mod optional_rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        time: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => serializer.serialize_str(&crate::message::format_time(*time)),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| humantime::parse_rfc3339_weak(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::message::{AlertMessage, AlertStatus, NotificationType, to_millis};

    fn message(id: &str) -> AlertMessage {
        AlertMessage {
            version: 1,
            message_id: id.to_owned(),
            kind: "unhealthy".into(),
            status: AlertStatus::Firing,
            notification: NotificationType::Opened,
            resolution: None,
            title: format!("opened: {id}"),
            text: format!("opened: {id}"),
            count: 0,
            incidents: Vec::new(),
            omitted: 0,
        }
    }

    fn now() -> SystemTime {
        to_millis(SystemTime::now())
    }

    fn ids(deliveries: &[Delivery]) -> Vec<&str> {
        deliveries.iter().map(|delivery| delivery.id.as_str()).collect()
    }

    #[tokio::test]
    async fn survives_reopening_with_its_state_and_dedup() {
        let dir = tempfile::tempdir().unwrap();
        let start = now();
        {
            let spool = SpoolOutbox::open(dir.path()).unwrap();
            for (index, id) in ["a", "b", "c"].into_iter().enumerate() {
                let at = start + Duration::from_millis(index as u64);
                spool.enqueue(Delivery::new("hook", message(id), at)).await.unwrap();
            }
            spool.mark_delivered("a:hook").await.unwrap();
            let later = start + Duration::from_secs(60);
            spool.mark_failed("b:hook", "answered 503", Some(later)).await.unwrap();
            spool.mark_failed("c:hook", "answered 400", None).await.unwrap();
            assert!(matches!(SpoolOutbox::open(dir.path()), Err(OutboxError::Locked { .. })));
        }
        let spool = SpoolOutbox::open(dir.path()).unwrap();
        let pending = spool.pending();
        assert_eq!(ids(&pending), ["b:hook"]);
        assert_eq!(pending[0].attempts, 1);
        assert_eq!(pending[0].last_error.as_deref(), Some("answered 503"));
        assert!(spool.due("hook", start, 10).await.unwrap().is_empty(), "b waits for its time");
        let due = spool.due("hook", start + Duration::from_secs(60), 10).await.unwrap();
        assert_eq!(ids(&due), ["b:hook"]);
        // Settled ids are remembered across the compaction: enqueuing again is a no-op.
        for id in ["a", "c"] {
            spool.enqueue(Delivery::new("hook", message(id), start)).await.unwrap();
        }
        assert_eq!(ids(&spool.pending()), ["b:hook"]);
        let journal = std::fs::read_to_string(dir.path().join(JOURNAL_FILE)).unwrap();
        assert_eq!(journal.lines().count(), 3, "{journal}");
    }

    #[tokio::test]
    async fn a_line_cut_short_by_a_crash_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let spool = SpoolOutbox::open(dir.path()).unwrap();
            spool.enqueue(Delivery::new("hook", message("a"), now())).await.unwrap();
        }
        let mut journal =
            OpenOptions::new().append(true).open(dir.path().join(JOURNAL_FILE)).unwrap();
        journal.write_all(b"{\"enqueued\":{\"id\":\"b:ho").unwrap();
        drop(journal);
        let spool = SpoolOutbox::open(dir.path()).unwrap();
        assert_eq!(ids(&spool.pending()), ["a:hook"]);
        assert_eq!(spool.unreadable_lines(), 1);
        spool.enqueue(Delivery::new("hook", message("b"), now())).await.unwrap();
        drop(spool);
        let spool = SpoolOutbox::open(dir.path()).unwrap();
        assert_eq!(ids(&spool.pending()), ["a:hook", "b:hook"]);
        assert_eq!(spool.unreadable_lines(), 0, "the compaction dropped the broken line");
    }

    #[tokio::test]
    async fn due_is_per_channel_oldest_first_and_limited() {
        let dir = tempfile::tempdir().unwrap();
        let spool = SpoolOutbox::open(dir.path()).unwrap();
        let start = now();
        for index in 0..5u64 {
            let at = start + Duration::from_millis(index);
            spool.enqueue(Delivery::new("hook", message(&format!("m{index}")), at)).await.unwrap();
        }
        spool.enqueue(Delivery::new("mail", message("m9"), start)).await.unwrap();
        let later = start + Duration::from_secs(1);
        assert_eq!(ids(&spool.due("hook", later, 2).await.unwrap()), ["m0:hook", "m1:hook"]);
        assert_eq!(ids(&spool.due("mail", later, 2).await.unwrap()), ["m9:mail"]);
        let error = spool.mark_delivered("nope").await.unwrap_err();
        assert!(matches!(error, OutboxError::UnknownDelivery { .. }), "{error}");
    }
}
