//! SQLite's write-ahead log read back into the kernel's page cache before the writer writes over it.
//!
//! Once a checkpoint has copied the whole log, the next commit starts it again from its beginning and writes
//! its frames over the earlier ones. A frame is a page and a 24-byte header, so most frame writes cover only
//! part of a page of the file, and a page that is no longer in the kernel's cache is read from the disk
//! first, inside the `pwrite`, while the process's write turn waits. Some machines drop file pages from
//! their cache within tens of seconds whatever their free memory. A server whose log had left the cache
//! during a 15 s pause between two bursts of refreshes served the second burst at half the rate of the first:
//! every frame waited for a read (`docs/performance-changes.md`). `posix_fadvise(WILLNEED)` does not help
//! there: the kernel reads only a few megabytes of the range it is given.
//!
//! So after each checkpoint the server reads, on a blocking thread, the part of the log file the writer will
//! write over next: from where the log ends, twice what the last interval wrote (at least [`MIN_LOOKAHEAD`]);
//! and when the checkpoint copied the whole log, which then starts again at a commit that finds no reader in
//! it, as much from the file's beginning. Each part is read once; a part read more than [`STALE_AFTER`] ago,
//! which the machine may have dropped meanwhile, is read again, until the log has not grown for
//! [`IDLE_AFTER`]: an idle server reads nothing. The reads are the ones the writer would have
//! waited for, made in large sequential requests outside the write turn, plus a copy of what was still cached
//! (1–2% of the refreshes per second when the whole log stays cached).

use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The log file's header, before its first frame.
const LOG_HEADER: u64 = 32;
/// The header of each frame, before its page.
const FRAME_HEADER: u64 = 24;
/// The least that is read ahead of the log's end, however little was written lately.
const MIN_LOOKAHEAD: u64 = 64 << 20;
/// The most that is read ahead at once.
const MAX_LOOKAHEAD: u64 = 512 << 20;
/// How long a part read ahead is trusted to stay in the kernel's cache.
const STALE_AFTER: Duration = Duration::from_secs(5);
/// How long after the last write the parts the writer would write next are still kept in the cache: a
/// server idle for longer reads nothing until it writes again.
const IDLE_AFTER: Duration = Duration::from_secs(60);
/// The size of each read.
const CHUNK: usize = 1 << 20;

/// The log file of one SQLite database, and what has been read of it.
#[derive(Debug)]
pub(super) struct LogReadAhead {
    path: PathBuf,
    plan: Mutex<Plan>,
}

impl LogReadAhead {
    /// For the database file at `database` (its log is `<database>-wal`).
    pub(super) fn new(database: &str) -> LogReadAhead {
        LogReadAhead { path: PathBuf::from(format!("{database}-wal")), plan: Mutex::default() }
    }

    /// Reads what the writer will write over next, after a checkpoint that left `log` frames in the log, of
    /// which it had copied `copied`, for pages of `page_size` bytes. Never fails: a read that cannot be made
    /// is logged at debug level and left to the writer.
    pub(super) async fn after_checkpoint(&self, log: i64, copied: i64, page_size: i64) {
        let (Ok(frames), Ok(page_size)) = (u64::try_from(log), u64::try_from(page_size)) else { return };
        let end = LOG_HEADER.saturating_add(frames.saturating_mul(page_size + FRAME_HEADER));
        // A log copied whole starts again from the beginning of the file at a commit that finds no reader in it.
        let may_start_again = frames > 0 && copied >= log;
        let Ok(file_len) = std::fs::metadata(&self.path).map(|m| m.len()) else { return };
        let parts = match self.plan.lock() {
            Ok(mut plan) => plan.next(end, may_start_again, file_len, Instant::now()),
            Err(_) => return,
        };
        if parts.is_empty() {
            return;
        }
        let path = self.path.clone();
        let started = Instant::now();
        let bytes: u64 = parts.iter().map(|part| part.end - part.start).sum();
        match tokio::task::spawn_blocking(move || parts.into_iter().try_for_each(|part| read(&path, part))).await {
            Ok(Ok(())) => {
                let ms = started.elapsed().as_secs_f64() * 1e3;
                tracing::debug!(target: "idp::checkpoint", bytes, ms, "log read ahead");
            }
            Ok(Err(e)) => tracing::debug!(target: "idp::checkpoint", error = %e, "cannot read the log ahead"),
            Err(e) => tracing::debug!(target: "idp::checkpoint", error = %e, "the log read-ahead stopped"),
        }
    }
}

/// Reads `range` of the file at `path`, and forgets it: the kernel keeps it in its cache.
fn read(path: &std::path::Path, range: Range<u64>) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    let mut buffer = vec![0; CHUNK];
    let mut at = range.start;
    while at < range.end {
        let want = usize::try_from(range.end - at).map_or(CHUNK, |left| left.min(CHUNK));
        let read = file.read_at(&mut buffer[..want], at)?;
        if read == 0 {
            break;
        }
        at += read as u64;
    }
    Ok(())
}

/// Which parts of the log file to read next.
#[derive(Debug, Default)]
struct Plan {
    /// Where the log ended at the last checkpoint.
    last_end: u64,
    /// How far the file has been read past the log's end, in the log's current round, and when.
    ahead: u64,
    read_at: Option<Instant>,
    /// How much of the file's beginning has been read for a log that may start again, and when.
    head: u64,
    head_read_at: Option<Instant>,
    /// When the log last grew.
    written_at: Option<Instant>,
}

impl Plan {
    /// The parts to read now that the log ends at `end` (where the next frame goes, unless the log starts
    /// again: `may_start_again` when the checkpoint copied it whole) in a file of `file_len` bytes: past the
    /// end, over twice what was written since the last call (at least [`MIN_LOOKAHEAD`]), and the same length
    /// from the file's beginning if the log may start again, each unless read already; nothing once the log
    /// has not grown for [`IDLE_AFTER`].
    fn next(&mut self, end: u64, may_start_again: bool, file_len: u64, now: Instant) -> Vec<Range<u64>> {
        let fresh = |at: Option<Instant>| at.is_some_and(|at| now.duration_since(at) <= STALE_AFTER);
        let started_again = end < self.last_end;
        let written = if started_again { end } else { end - self.last_end };
        self.last_end = end;
        if written > 0 {
            self.written_at = Some(now);
        }
        if self.written_at.is_none_or(|at| now.duration_since(at) > IDLE_AFTER) {
            return Vec::new();
        }
        if started_again {
            // The writer now writes over what was read from the beginning, if that is still fresh.
            (self.ahead, self.read_at) =
                if fresh(self.head_read_at) { (self.head, self.head_read_at) } else { (end, None) };
            self.head_read_at = None;
        }
        if !fresh(self.read_at) {
            self.ahead = end;
        }
        let lookahead = written.saturating_mul(2).clamp(MIN_LOOKAHEAD, MAX_LOOKAHEAD);
        let mut parts = Vec::new();
        let target = end.saturating_add(lookahead).min(file_len);
        let from = self.ahead.max(end);
        if from < target {
            parts.push(from..target);
            (self.ahead, self.read_at) = (target, Some(now));
        }
        if may_start_again && !fresh(self.head_read_at) {
            let head = lookahead.min(file_len);
            if head > 0 {
                parts.push(0..head);
            }
            (self.head, self.head_read_at) = (head, Some(now));
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const FILE: u64 = 1024 * MIB;

    #[test]
    fn the_read_reaches_twice_what_the_last_interval_wrote() {
        let mut plan = Plan::default();
        let now = Instant::now();
        plan.next(0, false, FILE, now);
        assert_eq!(plan.next(100 * MIB, false, FILE, now), vec![100 * MIB..300 * MIB]);
    }

    #[test]
    fn what_was_read_is_not_read_again() {
        let mut plan = Plan::default();
        let now = Instant::now();
        assert_eq!(plan.next(8 * MIB, false, FILE, now), vec![8 * MIB..72 * MIB]);
        assert_eq!(plan.next(8 * MIB, false, FILE, now), vec![], "nothing written, all read");
        assert_eq!(plan.next(40 * MIB, false, FILE, now), vec![72 * MIB..104 * MIB]);
    }

    #[test]
    fn a_part_read_long_ago_is_read_again() {
        let mut plan = Plan::default();
        let now = Instant::now();
        plan.next(8 * MIB, false, FILE, now);
        let later = now + STALE_AFTER + Duration::from_secs(1);
        assert_eq!(plan.next(8 * MIB, false, FILE, later), vec![8 * MIB..72 * MIB]);
    }

    #[test]
    fn nothing_is_read_for_a_log_idle_for_long() {
        let mut plan = Plan::default();
        let now = Instant::now();
        assert_eq!(plan.next(0, false, FILE, now), vec![], "nothing written yet");
        plan.next(8 * MIB, false, FILE, now);
        let later = now + IDLE_AFTER + Duration::from_secs(1);
        assert_eq!(plan.next(8 * MIB, true, FILE, later), vec![]);
        assert_eq!(plan.next(9 * MIB, false, FILE, later), vec![9 * MIB..73 * MIB], "until it is written again");
    }

    #[test]
    fn a_log_copied_whole_has_the_beginning_of_its_file_read_too() {
        let mut plan = Plan::default();
        let now = Instant::now();
        plan.next(200 * MIB, false, FILE, now);
        let parts = plan.next(200 * MIB, true, FILE, now);
        assert_eq!(parts.last(), Some(&(0..MIN_LOOKAHEAD)), "{parts:?}");
        assert!(!plan.next(200 * MIB, true, FILE, now).contains(&(0..MIN_LOOKAHEAD)), "once while fresh");
    }

    #[test]
    fn a_log_that_started_again_goes_on_from_what_was_read_of_the_beginning() {
        let mut plan = Plan::default();
        let now = Instant::now();
        plan.next(200 * MIB, false, FILE, now);
        plan.next(200 * MIB, true, FILE, now);
        assert_eq!(plan.next(40 * MIB, false, FILE, now), vec![MIN_LOOKAHEAD..120 * MIB]);
    }

    #[test]
    fn a_read_stops_at_the_end_of_a_file_that_shrank() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idp.db-wal");
        std::fs::write(&path, vec![7u8; 3 * CHUNK + 5]).unwrap();
        read(&path, 0..8 * MIB).unwrap();
        assert!(read(&dir.path().join("missing-wal"), 0..MIB).is_err());
    }

    #[test]
    fn nothing_is_read_past_the_end_of_the_file() {
        let mut plan = Plan::default();
        let now = Instant::now();
        assert_eq!(plan.next(MIB, false, 4 * MIB, now), vec![MIB..4 * MIB]);
        assert_eq!(plan.next(4 * MIB, false, 4 * MIB, now), vec![], "a log that only grows is appended to");
    }
}
