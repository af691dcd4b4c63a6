//! The agent's buffer on disk: every event is appended here before it is sent, and stays until a
//! 2xx acknowledges it, so neither an absent receiver nor an agent restart loses one.
//!
//! Files in the spool directory:
//! - `spool-<generation>.jsonl`: append-only, one [`HostEvent`] as JSON per line, synced to disk
//!   before the event counts as taken.
//! - `cursor.json` ([`Cursor`]): which spool file is current, how many of its first lines are
//!   settled (acknowledged, or dropped because the spool was full), the time of the newest
//!   acknowledged event (Docker's `since` on the next start), the ids of the last settled events
//!   and the drop count not yet reported. Replaced atomically (write, sync, rename).
//! - `lock`: held (`flock`) by the one agent that owns the directory.
//!
//! Settled lines always form a prefix of the current file, since batches are taken and events
//! dropped from the oldest end. Once that prefix is long, the unsettled tail is copied into the
//! next generation's file, the cursor switched to it, and the old file removed; a crash at any
//! point leaves a cursor that names a complete file. Opening always starts a new generation, which
//! also drops a line cut short by a crash mid-append.
//!
//! Dedup: an event whose id is pending or among the last [`RECENT_IDS`] settled ones is refused
//! as a duplicate. Docker replays at most its last 256 events on a restart, all at or after
//! `since`, so that window covers every re-read as long as the spool holds at least 256 events.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::event::HostEvent;

/// How many settled ids the cursor remembers, for dedup across restarts.
pub const RECENT_IDS: usize = 1024;
/// A new generation is started once this many lines of the current file are settled.
const COMPACT_AFTER_LINES: u64 = 256;
const CURSOR_FILE: &str = "cursor.json";
const LOCK_FILE: &str = "lock";

/// The durable state beside the spool file (`cursor.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The current spool file is `spool-<generation>.jsonl`.
    pub generation: u64,
    /// How many lines at the start of the current file are settled.
    pub settled_lines: u64,
    /// Docker's `timeNano` of the newest event a 2xx acknowledged.
    pub acknowledged_through: Option<i64>,
    /// Ids of the last settled events (acknowledged or dropped), oldest first.
    pub recent_ids: VecDeque<String>,
    /// Events dropped since the last acknowledged batch: the next batch reports them.
    pub dropped_unreported: u64,
    /// Events dropped over the spool's whole life.
    pub dropped_total: u64,
}

/// What a batch takes from the spool, and what acknowledging it settles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The oldest pending events, oldest first.
    pub events: Vec<HostEvent>,
    /// The drop count to report with them.
    pub dropped: u64,
}

/// What [`Spool::append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Written to disk; `dropped` oldest pending events made room for it.
    Added { dropped: u64 },
    /// The id is pending or was settled already: nothing written.
    Duplicate,
}

/// Why the spool cannot be used. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("cannot {operation} `{path}`")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the spool directory `{dir}` is in use by another agent\nhint: run one agent per spool directory"
    )]
    Locked { dir: PathBuf },
    #[error(
        "the cursor file `{path}` is not valid JSON of a cursor\nhint: move it away; the agent then sends everything the spool file holds again and resumes with Docker's new events"
    )]
    Cursor {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The open spool of one agent (it holds the directory's lock until dropped).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    _lock: File,
    file: File,
    cursor: Cursor,
    pending: VecDeque<HostEvent>,
    known: HashSet<String>,
    max_pending: usize,
    unreadable_lines: u64,
}

/// A look at a spool without opening it (no lock taken): for tests and operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSnapshot {
    pub cursor: Cursor,
    pub pending: Vec<HostEvent>,
}

impl Spool {
    /// Opens (creating) the spool in `dir`, keeping at most `max_pending` unacknowledged events
    /// (at least 1).
    pub fn open(dir: &Path, max_pending: usize) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io("create the spool directory", dir))?;
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
                return Err(SpoolError::Locked { dir: dir.to_owned() });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(SpoolError::Io { operation: "lock", path: lock_path, source });
            }
        }
        let (cursor, pending, unreadable_lines) = read_state(dir)?;
        let mut spool = Spool {
            dir: dir.to_owned(),
            _lock: lock,
            // Replaced by `start_generation` below, which every open runs.
            file: File::open(dir).map_err(io("open", dir))?,
            cursor,
            pending: VecDeque::new(),
            known: HashSet::new(),
            max_pending: max_pending.max(1),
            unreadable_lines,
        };
        spool.known.extend(spool.cursor.recent_ids.iter().cloned());
        for event in pending {
            if spool.known.insert(event.id.clone()) {
                spool.pending.push_back(event);
            }
        }
        while spool.pending.len() > spool.max_pending {
            spool.drop_oldest();
        }
        spool.start_generation()?;
        Ok(spool)
    }

    /// Reads a spool directory's state without taking its lock.
    pub fn inspect(dir: &Path) -> Result<SpoolSnapshot, SpoolError> {
        let (cursor, pending, _) = read_state(dir)?;
        Ok(SpoolSnapshot { cursor, pending })
    }

    /// Where Docker's event stream should resume: the newest acknowledged event's time, or the
    /// oldest pending event's if that is older (or nothing was ever acknowledged). Docker's
    /// `since` is inclusive, and events read twice are duplicates [`Spool::append`] refuses.
    pub fn resume_since(&self) -> Option<i64> {
        let oldest_pending = self.pending.front().map(|event| event.at);
        match (self.cursor.acknowledged_through, oldest_pending) {
            (Some(acknowledged), Some(pending)) => Some(acknowledged.min(pending)),
            (acknowledged, pending) => acknowledged.or(pending),
        }
    }

    /// Takes an event: refused if its id is known, else synced to disk (dropping the oldest
    /// pending event when the spool is full).
    pub fn append(&mut self, event: &HostEvent) -> Result<Appended, SpoolError> {
        if self.known.contains(&event.id) {
            return Ok(Appended::Duplicate);
        }
        let mut line = serde_json::to_vec(event).expect("a HostEvent always serializes");
        line.push(b'\n');
        let path = self.current_path();
        self.file.write_all(&line).map_err(io("append to", &path))?;
        self.file.sync_data().map_err(io("sync", &path))?;
        self.known.insert(event.id.clone());
        self.pending.push_back(event.clone());
        let mut dropped = 0;
        while self.pending.len() > self.max_pending {
            self.drop_oldest();
            dropped += 1;
        }
        if dropped > 0 {
            self.write_cursor()?;
        }
        Ok(Appended::Added { dropped })
    }

    /// The next batch: up to `max_events` oldest pending events and the drop count to report.
    pub fn outgoing(&self, max_events: usize) -> Outgoing {
        Outgoing {
            events: self.pending.iter().take(max_events.max(1)).cloned().collect(),
            dropped: self.cursor.dropped_unreported,
        }
    }

    /// A 2xx answered `sent`: its events are settled and its drop count reported. Events of it
    /// dropped meanwhile (the spool filled up during the request) are simply gone already.
    pub fn acknowledge(&mut self, sent: &Outgoing) -> Result<(), SpoolError> {
        let ids: HashSet<&str> = sent.events.iter().map(|event| event.id.as_str()).collect();
        while let Some(front) = self.pending.front() {
            if !ids.contains(front.id.as_str()) {
                break;
            }
            let event = self.pending.pop_front().expect("front exists");
            self.cursor.acknowledged_through =
                Some(self.cursor.acknowledged_through.map_or(event.at, |at| at.max(event.at)));
            self.settle(event);
        }
        self.cursor.dropped_unreported =
            self.cursor.dropped_unreported.saturating_sub(sent.dropped);
        if self.cursor.settled_lines >= COMPACT_AFTER_LINES {
            self.start_generation()
        } else {
            self.write_cursor()
        }
    }

    /// How many events wait for a 2xx.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether anything (events or a drop count) is waiting to be reported.
    pub fn has_news(&self) -> bool {
        !self.pending.is_empty() || self.cursor.dropped_unreported > 0
    }

    /// The durable state as it stands.
    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    /// Lines of the spool file that could not be read when it was opened (cut short by a crash,
    /// or damaged): those events are lost.
    pub fn unreadable_lines(&self) -> u64 {
        self.unreadable_lines
    }

    fn drop_oldest(&mut self) {
        if let Some(event) = self.pending.pop_front() {
            self.cursor.dropped_unreported += 1;
            self.cursor.dropped_total += 1;
            self.settle(event);
        }
    }

    /// Moves the oldest pending event (just popped) into the settled prefix.
    fn settle(&mut self, event: HostEvent) {
        self.cursor.settled_lines += 1;
        self.cursor.recent_ids.push_back(event.id);
        while self.cursor.recent_ids.len() > RECENT_IDS {
            if let Some(old) = self.cursor.recent_ids.pop_front() {
                self.known.remove(&old);
            }
        }
    }

    /// Writes the pending events as the next generation's file, switches the cursor to it and
    /// removes every other spool file.
    fn start_generation(&mut self) -> Result<(), SpoolError> {
        let generation = self.cursor.generation + 1;
        let path = spool_path(&self.dir, generation);
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(io("create", &path))?;
        let mut contents = Vec::new();
        for event in &self.pending {
            contents.extend(serde_json::to_vec(event).expect("a HostEvent always serializes"));
            contents.push(b'\n');
        }
        file.write_all(&contents).map_err(io("write", &path))?;
        file.sync_all().map_err(io("sync", &path))?;
        self.cursor.generation = generation;
        self.cursor.settled_lines = 0;
        self.write_cursor()?;
        self.file = OpenOptions::new().append(true).open(&path).map_err(io("open", &path))?;
        let entries = std::fs::read_dir(&self.dir).map_err(io("list", &self.dir))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("spool-") && entry.path() != path {
                // A leftover is harmless (the cursor never names it again): ignore failures.
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    fn write_cursor(&self) -> Result<(), SpoolError> {
        let path = self.dir.join(CURSOR_FILE);
        let temporary = self.dir.join(format!("{CURSOR_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(&self.cursor).expect("a cursor always serializes");
        let mut file = File::create(&temporary).map_err(io("create", &temporary))?;
        file.write_all(&json).map_err(io("write", &temporary))?;
        file.sync_all().map_err(io("sync", &temporary))?;
        std::fs::rename(&temporary, &path).map_err(io("replace", &path))?;
        // The rename itself is durable once the directory is synced.
        File::open(&self.dir).and_then(|dir| dir.sync_all()).map_err(io("sync", &self.dir))
    }

    fn current_path(&self) -> PathBuf {
        spool_path(&self.dir, self.cursor.generation)
    }
}

fn spool_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("spool-{generation}.jsonl"))
}

/// The cursor, the pending events of its current file (after the settled prefix) and how many
/// lines could not be read.
fn read_state(dir: &Path) -> Result<(Cursor, Vec<HostEvent>, u64), SpoolError> {
    let cursor_path = dir.join(CURSOR_FILE);
    let cursor = match std::fs::read(&cursor_path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|source| SpoolError::Cursor { path: cursor_path.clone(), source })?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Cursor::default(),
        Err(source) => return Err(SpoolError::Io { operation: "read", path: cursor_path, source }),
    };
    let path = spool_path(dir, cursor.generation);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok((cursor, Vec::new(), 0));
        }
        Err(source) => return Err(SpoolError::Io { operation: "open", path, source }),
    };
    let mut pending = Vec::new();
    let mut unreadable = 0;
    for (index, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(io("read", &path))?;
        if (index as u64) < cursor.settled_lines || line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<HostEvent>(&line) {
            Ok(event) => pending.push(event),
            Err(_) => unreadable += 1,
        }
    }
    Ok((cursor, pending, unreadable))
}

fn io(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError {
    let path = path.to_owned();
    move |source| SpoolError::Io { operation, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn event(number: i64) -> HostEvent {
        HostEvent {
            id: format!("id-{number}"),
            server: "server".to_owned(),
            container_id: "c".to_owned(),
            container_name: "n".to_owned(),
            tenant: "t".to_owned(),
            stack: "s".to_owned(),
            kind: EventKind::Died { exit_code: number },
            at: 1_000 + number,
        }
    }

    fn ids(events: &[HostEvent]) -> Vec<&str> {
        events.iter().map(|event| event.id.as_str()).collect()
    }

    #[test]
    fn append_acknowledge_and_resume() {
        let directory = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(directory.path(), 100).unwrap();
        assert_eq!(spool.resume_since(), None);
        for number in 1..=3 {
            assert_eq!(spool.append(&event(number)).unwrap(), Appended::Added { dropped: 0 });
        }
        assert_eq!(spool.resume_since(), Some(1_001));
        let batch = spool.outgoing(2);
        assert_eq!(ids(&batch.events), ["id-1", "id-2"]);
        spool.acknowledge(&batch).unwrap();
        assert_eq!(spool.pending_len(), 1);
        assert_eq!(spool.cursor().acknowledged_through, Some(1_002));
        drop(spool);

        // A restart: the acknowledged events are neither pending nor accepted again; the
        // unacknowledged one is pending.
        let mut spool = Spool::open(directory.path(), 100).unwrap();
        assert_eq!(ids(&spool.outgoing(10).events), ["id-3"]);
        assert_eq!(spool.resume_since(), Some(1_002));
        for number in 1..=3 {
            assert_eq!(spool.append(&event(number)).unwrap(), Appended::Duplicate, "{number}");
        }
        assert_eq!(spool.append(&event(4)).unwrap(), Appended::Added { dropped: 0 });
        let batch = spool.outgoing(10);
        assert_eq!(ids(&batch.events), ["id-3", "id-4"]);
        spool.acknowledge(&batch).unwrap();
        assert!(!spool.has_news());
        drop(spool);
        let snapshot = Spool::inspect(directory.path()).unwrap();
        assert!(snapshot.pending.is_empty());
        assert_eq!(snapshot.cursor.acknowledged_through, Some(1_004));
        let mut spool = Spool::open(directory.path(), 100).unwrap();
        assert_eq!(spool.append(&event(4)).unwrap(), Appended::Duplicate);
    }

    #[test]
    fn one_agent_per_directory() {
        let directory = tempfile::tempdir().unwrap();
        let _spool = Spool::open(directory.path(), 10).unwrap();
        assert!(matches!(Spool::open(directory.path(), 10), Err(SpoolError::Locked { .. })));
    }

    #[test]
    fn a_full_spool_drops_the_oldest_and_reports_the_count_once() {
        let directory = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(directory.path(), 3).unwrap();
        for number in 1..=3 {
            spool.append(&event(number)).unwrap();
        }
        assert_eq!(spool.append(&event(4)).unwrap(), Appended::Added { dropped: 1 });
        assert_eq!(spool.append(&event(5)).unwrap(), Appended::Added { dropped: 1 });
        // A dropped event read again (Docker's replay) is not taken back.
        assert_eq!(spool.append(&event(1)).unwrap(), Appended::Duplicate);
        let batch = spool.outgoing(10);
        assert_eq!(ids(&batch.events), ["id-3", "id-4", "id-5"]);
        assert_eq!(batch.dropped, 2);
        drop(spool);
        // The count survives a restart.
        let mut spool = Spool::open(directory.path(), 3).unwrap();
        assert_eq!(spool.outgoing(10), batch);
        // One more drop while the batch is under way: the batch's events that were dropped are
        // gone, the new drop is reported next time.
        spool.append(&event(6)).unwrap();
        spool.acknowledge(&batch).unwrap();
        let next = spool.outgoing(10);
        assert_eq!(ids(&next.events), ["id-6"]);
        assert_eq!(next.dropped, 1);
        assert_eq!(spool.cursor().dropped_total, 3);
    }

    #[test]
    fn a_smaller_limit_at_open_drops_the_oldest() {
        let directory = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(directory.path(), 10).unwrap();
        for number in 1..=5 {
            spool.append(&event(number)).unwrap();
        }
        drop(spool);
        let spool = Spool::open(directory.path(), 2).unwrap();
        let batch = spool.outgoing(10);
        assert_eq!(ids(&batch.events), ["id-4", "id-5"]);
        assert_eq!(batch.dropped, 3);
    }

    #[test]
    fn generations_keep_the_file_bounded() {
        let directory = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(directory.path(), 1_000).unwrap();
        for number in 0..600 {
            spool.append(&event(number)).unwrap();
            let batch = spool.outgoing(10);
            spool.acknowledge(&batch).unwrap();
        }
        spool.append(&event(600)).unwrap();
        let files: Vec<String> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("spool-"))
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let lines =
            std::fs::read_to_string(directory.path().join(&files[0])).unwrap().lines().count();
        assert!(lines <= COMPACT_AFTER_LINES as usize + 1, "{lines} lines");
        drop(spool);
        let mut spool = Spool::open(directory.path(), 1_000).unwrap();
        assert_eq!(ids(&spool.outgoing(10).events), ["id-600"]);
        // The recent ids still refuse the last acknowledged events, in any generation.
        assert_eq!(spool.append(&event(599)).unwrap(), Appended::Duplicate);
        assert_eq!(spool.cursor().recent_ids.len(), 600);
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_skipped() {
        let directory = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(directory.path(), 10).unwrap();
        spool.append(&event(1)).unwrap();
        let path = spool.current_path();
        drop(spool);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"id":"id-2","serv"#).unwrap();
        drop(file);
        let mut spool = Spool::open(directory.path(), 10).unwrap();
        assert_eq!(spool.unreadable_lines(), 1);
        spool.append(&event(3)).unwrap();
        drop(spool);
        let spool = Spool::open(directory.path(), 10).unwrap();
        assert_eq!(spool.unreadable_lines(), 0);
        assert_eq!(ids(&spool.outgoing(10).events), ["id-1", "id-3"]);
    }
}
