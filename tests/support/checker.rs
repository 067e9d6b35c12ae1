//! The history of a fault test and its verdict. Producers note every record
//! they attempt and every acknowledgement (topic, partition, offset,
//! payload id); readers note every record they read, pass by pass. At the
//! end [`Checker::verify`] reports each of:
//!
//! - lost: an acknowledged record not read back at its acknowledged offset
//!   by the last read pass;
//! - phantom: a record read that no producer attempted;
//! - offset reused: one (topic, partition, offset) seen holding two
//!   different records, across acknowledgements and reads at different
//!   times (from different leaders);
//! - duplicated: an acknowledged record of an idempotent producer seen at
//!   two offsets.
//!
//! A payload id names its producer and sequence number (`p3-s000042`), so
//! it is unique in a run; [`payload_id`] finds it at the head of a value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Mutex;

/// At most this many violations of each kind are listed in a report (all
/// are counted).
const LISTED_PER_KIND: usize = 20;

/// A place in the log.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}@{}", self.topic, self.partition, self.offset)
    }
}

/// The id of producer `producer`'s record number `sequence`.
pub fn make_id(producer: u32, sequence: u64) -> String {
    format!("p{producer}-s{sequence:09}")
}

/// The payload id a value starts with (up to its first space), if any.
pub fn payload_id(value: &[u8]) -> String {
    let head = value.split(|b| *b == b' ').next().unwrap_or_default();
    String::from_utf8_lossy(head).into_owned()
}

#[derive(Default)]
struct History {
    /// Ids some producer handed to its client.
    attempted: BTreeSet<String>,
    /// Acknowledged records: where, what, and the phase of the test.
    acked: Vec<(Position, String, String)>,
    /// Records whose delivery failed, with the error (never acked).
    failed: Vec<(String, String)>,
    /// Records read: pass number, where, what.
    read: Vec<(u32, Position, String)>,
    passes: u32,
    phase: String,
}

/// Thread-safe: delivery callbacks note acks from librdkafka's thread.
#[derive(Default)]
pub struct Checker {
    history: Mutex<History>,
}

/// Counts of a run, per phase for the acknowledgements.
#[derive(Debug, Default)]
pub struct Counts {
    pub attempted: usize,
    pub acked: usize,
    pub failed: usize,
    pub read: usize,
    pub passes: u32,
    pub acked_by_phase: BTreeMap<String, usize>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Violation {
    /// Acknowledged at `at`; the last read pass had `found` there (None:
    /// nothing).
    Lost {
        id: String,
        at: Position,
        found: Option<String>,
    },
    /// Read at `at`, never attempted.
    Phantom { id: String, at: Position },
    /// `at` seen holding each of `ids` (acks and reads).
    OffsetReused { at: Position, ids: Vec<String> },
    /// Acknowledged `id` seen at each of `at`.
    Duplicated { id: String, at: Vec<Position> },
}

/// What [`Checker::verify`] found.
#[derive(Debug)]
pub struct Verdict {
    pub counts: Counts,
    pub violations: Vec<Violation>,
}

impl Checker {
    pub fn new() -> Checker {
        Checker::default()
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        // A panicking test thread must not hide the history from the report.
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Names the phase later acknowledgements belong to.
    pub fn set_phase(&self, phase: &str) {
        self.history().phase = phase.to_string();
    }

    pub fn attempted(&self, id: &str) {
        self.history().attempted.insert(id.to_string());
    }

    pub fn acked(&self, topic: &str, partition: i32, offset: i64, id: &str) {
        let mut history = self.history();
        let phase = history.phase.clone();
        let at = Position {
            topic: topic.to_string(),
            partition,
            offset,
        };
        history.acked.push((at, id.to_string(), phase));
    }

    pub fn failed(&self, id: &str, error: &str) {
        self.history()
            .failed
            .push((id.to_string(), error.to_string()));
    }

    /// Starts a read pass; returns its number for [`Checker::read`].
    pub fn begin_pass(&self) -> u32 {
        let mut history = self.history();
        history.passes += 1;
        history.passes
    }

    pub fn read(&self, pass: u32, topic: &str, partition: i32, offset: i64, id: &str) {
        let at = Position {
            topic: topic.to_string(),
            partition,
            offset,
        };
        self.history().read.push((pass, at, id.to_string()));
    }

    pub fn counts(&self) -> Counts {
        let history = self.history();
        let mut acked_by_phase = BTreeMap::new();
        for (_, _, phase) in &history.acked {
            *acked_by_phase.entry(phase.clone()).or_insert(0) += 1;
        }
        Counts {
            attempted: history.attempted.len(),
            acked: history.acked.len(),
            failed: history.failed.len(),
            read: history.read.len(),
            passes: history.passes,
            acked_by_phase,
        }
    }

    /// Checks the whole history; `idempotent`: the producers were, so an
    /// acknowledged record must be in the log once.
    pub fn verify(&self, idempotent: bool) -> Verdict {
        let counts = self.counts();
        let history = self.history();
        let mut violations = Vec::new();
        lost(&history, &mut violations);
        phantoms(&history, &mut violations);
        reused(&history, &mut violations);
        if idempotent {
            duplicated(&history, &mut violations);
        }
        Verdict { counts, violations }
    }
}

/// Each acknowledged record must be in the last pass at its offset.
fn lost(history: &History, violations: &mut Vec<Violation>) {
    let last: BTreeMap<&Position, &String> = history
        .read
        .iter()
        .filter(|(pass, _, _)| *pass == history.passes)
        .map(|(_, at, id)| (at, id))
        .collect();
    for (at, id, _) in &history.acked {
        let found = last.get(at).map(|found| (*found).clone());
        if found.as_ref() != Some(id) {
            violations.push(Violation::Lost {
                id: id.clone(),
                at: at.clone(),
                found,
            });
        }
    }
}

fn phantoms(history: &History, violations: &mut Vec<Violation>) {
    let mut seen = BTreeSet::new();
    for (_, at, id) in &history.read {
        if !history.attempted.contains(id) && seen.insert(at) {
            violations.push(Violation::Phantom {
                id: id.clone(),
                at: at.clone(),
            });
        }
    }
}

fn reused(history: &History, violations: &mut Vec<Violation>) {
    let mut held: BTreeMap<&Position, BTreeSet<&String>> = BTreeMap::new();
    let acks = history.acked.iter().map(|(at, id, _)| (at, id));
    for (at, id) in acks.chain(history.read.iter().map(|(_, at, id)| (at, id))) {
        held.entry(at).or_default().insert(id);
    }
    for (at, ids) in held {
        if ids.len() > 1 {
            violations.push(Violation::OffsetReused {
                at: at.clone(),
                ids: ids.into_iter().cloned().collect(),
            });
        }
    }
}

fn duplicated(history: &History, violations: &mut Vec<Violation>) {
    let acked: BTreeSet<&String> = history.acked.iter().map(|(_, id, _)| id).collect();
    let mut places: BTreeMap<&String, BTreeSet<&Position>> = BTreeMap::new();
    let acks = history.acked.iter().map(|(at, id, _)| (at, id));
    for (at, id) in acks.chain(history.read.iter().map(|(_, at, id)| (at, id))) {
        if acked.contains(id) {
            places.entry(id).or_default().insert(at);
        }
    }
    for (id, at) in places {
        if at.len() > 1 {
            violations.push(Violation::Duplicated {
                id: id.clone(),
                at: at.into_iter().cloned().collect(),
            });
        }
    }
}

impl Verdict {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    /// How many violations of each kind: (lost, phantom, offset reused,
    /// duplicated).
    pub fn tally(&self) -> (usize, usize, usize, usize) {
        let mut tally = [0; 4];
        for violation in &self.violations {
            tally[violation.kind()] += 1;
        }
        (tally[0], tally[1], tally[2], tally[3])
    }

    /// Panics with the report unless the history is clean.
    pub fn assert_clean(&self) {
        assert!(self.is_clean(), "the checker found violations:\n{self}");
    }
}

impl Violation {
    /// 0 lost, 1 phantom, 2 offset reused, 3 duplicated.
    fn kind(&self) -> usize {
        match self {
            Violation::Lost { .. } => 0,
            Violation::Phantom { .. } => 1,
            Violation::OffsetReused { .. } => 2,
            Violation::Duplicated { .. } => 3,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Lost { id, at, found } => match found {
                Some(other) => write!(f, "lost: {id} acked at {at}, which holds {other}"),
                None => write!(f, "lost: {id} acked at {at}, not read there"),
            },
            Violation::Phantom { id, at } => {
                write!(f, "phantom: {at} holds {id:?}, never sent")
            }
            Violation::OffsetReused { at, ids } => {
                write!(f, "offset reused: {at} seen holding {}", ids.join(", "))
            }
            Violation::Duplicated { id, at } => {
                let at: Vec<String> = at.iter().map(Position::to_string).collect();
                write!(f, "duplicated: {id} at {}", at.join(", "))
            }
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        writeln!(
            f,
            "{} attempted, {} acked {:?}, {} failed, {} read in {} passes",
            c.attempted, c.acked, c.acked_by_phase, c.failed, c.read, c.passes
        )?;
        let (lost, phantom, reused, duplicated) = self.tally();
        writeln!(
            f,
            "violations: {lost} lost, {phantom} phantom, {reused} offsets reused, \
             {duplicated} duplicated"
        )?;
        let mut listed = [0usize; 4];
        for violation in &self.violations {
            let shown = &mut listed[violation.kind()];
            *shown += 1;
            if *shown <= LISTED_PER_KIND {
                writeln!(f, "  {violation}")?;
            }
        }
        Ok(())
    }
}
