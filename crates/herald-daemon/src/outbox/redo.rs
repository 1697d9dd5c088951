//! The embedded outbox's redo log: what makes a group commit durable between two checkpoints
//! of the redb file.
//!
//! A durable redb commit syncs the dozen pages it rewrote, scattered over the file; on ext4 on
//! this project's machine such a sync costs three to four times the CPU of syncing one run of
//! bytes, and twice the time. So the writer writes each group commit's changes (table, key,
//! new value) as one frame here, keeps them in memory for readers ([`super::overlay`]), and
//! syncs this file: one run of bytes, overwritten in place in a file that is written out at
//! its full size before it is used (so a sync journals no block allocation). A checkpoint, a
//! durable redb commit of those changes every quarter of a second, when the log is full, and
//! after a quarter of a second without commits (so that a quiet outbox has nothing to
//! replay), makes everything before it durable in redb; it records a new epoch in redb's meta
//! table, and the log starts again from its beginning under that epoch. At open, the frames of the recorded epoch are applied to redb
//! again, in order, up to the first that is incomplete, damaged or of another epoch.
//!
//! A frame is `magic ‖ epoch ‖ seq ‖ length ‖ digest ‖ changes`: the digest is the first 16
//! bytes of SHA-256 over the epoch, the seq, the length and the changes, so a frame torn by a
//! crash (written, not yet synced, and so never answered) ends the replay.
//!
//! This is not a general log: it holds only what redb has not made durable yet, and it is
//! read only at open.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The log file inside the data dir.
pub(super) const FILE_NAME: &str = "outbox.log";
/// The size a new log is written out to; it doubles (up to [`MAX_BYTES`]) when it fills up
/// faster than [`CHECKPOINT_EVERY`].
pub(super) const START_BYTES: u64 = 1 << 20;
/// The most the log grows to.
pub(super) const MAX_BYTES: u64 = 64 << 20;
/// How often a checkpoint makes redb durable when the log has room.
///
/// A start after a crash applies what was committed since the last checkpoint again, about
/// 40 µs per commit on this project's machine: under load, 3,718 commits (a second's) took a
/// start from 116 to 252 ms. A quarter of a second bounds that to about a quarter.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

const MAGIC: [u8; 4] = *b"hrl1";
/// magic, epoch, seq, length, digest.
pub(super) const HEADER: usize = 4 + 8 + 8 + 4 + 16;

/// The open log, written by the outbox's writer thread only.
#[derive(Debug)]
pub(super) struct RedoLog {
    file: File,
    size: u64,
    epoch: u64,
    seq: u64,
    at: u64,
    checkpointed: Instant,
    /// How often a checkpoint is due: [`CHECKPOINT_EVERY`], longer in tests.
    every: Duration,
}

impl RedoLog {
    /// Opens (or creates) the log at `path`, written out to at least [`START_BYTES`].
    pub(super) fn open(path: &Path) -> io::Result<RedoLog> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut log = RedoLog {
            size: file.metadata()?.len(),
            file,
            epoch: 0,
            seq: 0,
            at: 0,
            checkpointed: Instant::now(),
            every: CHECKPOINT_EVERY,
        };
        if log.size < START_BYTES {
            log.grow_to(START_BYTES)?;
        }
        Ok(log)
    }

    /// Writes zeros from the end of the log to `size`, and syncs them.
    fn grow_to(&mut self, size: u64) -> io::Result<()> {
        let zeros = vec![0u8; 1 << 20];
        let mut at = self.size;
        while at < size {
            let n = zeros.len().min((size - at) as usize);
            self.file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        self.file.sync_all()?;
        self.size = size;
        Ok(())
    }

    /// The changes of every frame of `epoch`, in order, from the start of the log up to the
    /// first frame that is incomplete, damaged or of another epoch.
    pub(super) fn frames(&self, epoch: u64) -> io::Result<Vec<Vec<u8>>> {
        let mut frames = Vec::new();
        let mut at = 0u64;
        let mut header = [0u8; HEADER];
        while at + HEADER as u64 <= self.size {
            self.file.read_exact_at(&mut header, at)?;
            let Some(len) = frame_len(&header, epoch, frames.len() as u64) else {
                break;
            };
            if at + (HEADER + len) as u64 > self.size {
                break;
            }
            let mut changes = vec![0u8; len];
            self.file.read_exact_at(&mut changes, at + HEADER as u64)?;
            if digest(&header[4..24], &changes) != header[24..HEADER] {
                break;
            }
            frames.push(changes);
            at += (HEADER + len) as u64;
        }
        Ok(frames)
    }

    /// Starts the log again from its beginning under `epoch`, just made durable in redb; if
    /// the log filled up sooner than [`CHECKPOINT_EVERY`], it grows first.
    pub(super) fn restart(&mut self, epoch: u64, full: bool) -> io::Result<()> {
        let soon = self.checkpointed.elapsed() < self.every;
        self.epoch = epoch;
        self.seq = 0;
        self.at = 0;
        self.checkpointed = Instant::now();
        if full && soon && self.size < MAX_BYTES {
            self.grow_to((self.size * 2).min(MAX_BYTES))?;
        }
        Ok(())
    }

    /// Whether the next commit should be a checkpoint rather than a frame of `len` bytes of
    /// changes: the log has no room for it, or the last checkpoint is [`CHECKPOINT_EVERY`]
    /// old. `Some(full)`: a checkpoint, `full` if for want of room.
    pub(super) fn checkpoint_due(&self, len: usize) -> Option<bool> {
        if self.at + (HEADER + len) as u64 > self.size {
            Some(true)
        } else if self.checkpointed.elapsed() >= self.every {
            Some(false)
        } else {
            None
        }
    }

    /// How long an idle writer waits before it checkpoints: `None` when the log holds no
    /// frames, so there is nothing to checkpoint.
    pub(super) fn idle_checkpoint_in(&self) -> Option<Duration> {
        self.has_frames().then_some(self.every)
    }

    /// Checkpoints only when the log is full (for tests of what a crash leaves).
    #[cfg(test)]
    pub(super) fn only_when_full(&mut self) {
        self.every = Duration::from_secs(3600);
    }

    /// Whether frames were written since the last checkpoint.
    pub(super) fn has_frames(&self) -> bool {
        self.at > 0
    }

    /// The epoch frames are written under now.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Writes `frame` (a buffer from [`RedoLog::buffer`], the changes after its header) as the
    /// next frame and syncs it. On failure nothing moves on, and the frame's header is
    /// overwritten as best it can be so that a later open does not apply it.
    pub(super) fn append(&mut self, frame: &mut [u8]) -> io::Result<()> {
        let len = frame.len() - HEADER;
        frame[..4].copy_from_slice(&MAGIC);
        frame[4..12].copy_from_slice(&self.epoch.to_le_bytes());
        frame[12..20].copy_from_slice(&self.seq.to_le_bytes());
        frame[20..24].copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
        let sum = digest(&frame[4..24], &frame[HEADER..]);
        frame[24..HEADER].copy_from_slice(&sum);
        let written = self
            .file
            .write_all_at(frame, self.at)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let _ = self.file.write_all_at(&[0u8; HEADER], self.at);
            return Err(e);
        }
        self.at += frame.len() as u64;
        self.seq += 1;
        Ok(())
    }

    /// An empty frame buffer: room for the header, then changes are appended to it.
    pub(super) fn buffer() -> Vec<u8> {
        let mut frame = Vec::with_capacity(16 * 1024);
        frame.resize(HEADER, 0);
        frame
    }

    /// Bytes on disk.
    pub(super) fn size(&self) -> u64 {
        self.size
    }
}

/// The length of the changes of the frame whose header is `header`, if it is frame `seq` of
/// `epoch`.
fn frame_len(header: &[u8; HEADER], epoch: u64, seq: u64) -> Option<usize> {
    let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or_default());
    if header[..4] != MAGIC || word(4) != epoch || word(12) != seq {
        return None;
    }
    let len = u32::from_le_bytes(header[20..24].try_into().unwrap_or_default());
    usize::try_from(len).ok()
}

fn digest(head: &[u8], changes: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(head);
    h.update(changes);
    let full = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("herald-redo-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn frame(changes: &[u8]) -> Vec<u8> {
        let mut f = RedoLog::buffer();
        f.extend_from_slice(changes);
        f
    }

    #[test]
    fn frames_of_the_epoch_come_back_in_order() {
        let path = dir("order").join(FILE_NAME);
        let mut log = RedoLog::open(&path).unwrap();
        assert_eq!(log.size(), START_BYTES);
        log.restart(7, false).unwrap();
        log.append(&mut frame(b"one")).unwrap();
        log.append(&mut frame(b"")).unwrap();
        log.append(&mut frame(&[9; 5000])).unwrap();
        drop(log);
        let log = RedoLog::open(&path).unwrap();
        assert_eq!(
            log.frames(7).unwrap(),
            vec![b"one".to_vec(), vec![], vec![9; 5000]]
        );
        assert!(log.frames(8).unwrap().is_empty(), "another epoch");
        assert!(log.frames(6).unwrap().is_empty(), "an older epoch");
    }

    #[test]
    fn a_torn_or_stale_frame_ends_the_replay() {
        let path = dir("torn").join(FILE_NAME);
        let mut log = RedoLog::open(&path).unwrap();
        log.restart(1, false).unwrap();
        for changes in [b"a", b"b", b"c"] {
            log.append(&mut frame(changes)).unwrap();
        }
        // The third frame's last byte never reached the disk.
        let third = (2 * (HEADER + 1) + HEADER) as u64;
        log.file.write_all_at(&[0], third).unwrap();
        assert_eq!(log.frames(1).unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);

        // After a checkpoint the log starts again; frames of the old epoch past the new ones
        // are not applied.
        log.restart(2, false).unwrap();
        log.append(&mut frame(b"x")).unwrap();
        assert_eq!(log.frames(2).unwrap(), vec![b"x".to_vec()]);
        assert_eq!(log.frames(1).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn checkpoints_are_due_when_full_or_old_and_a_log_that_fills_fast_grows() {
        let mut log = RedoLog::open(&dir("grow").join(FILE_NAME)).unwrap();
        log.restart(1, false).unwrap();
        assert_eq!(log.checkpoint_due(1000), None);
        assert_eq!(log.checkpoint_due(START_BYTES as usize), Some(true));
        log.append(&mut frame(&vec![1; START_BYTES as usize / 2]))
            .unwrap();
        assert_eq!(log.checkpoint_due(START_BYTES as usize / 2), Some(true));
        log.restart(2, true).unwrap();
        assert_eq!(
            log.size(),
            2 * START_BYTES,
            "filled before a checkpoint was due: grows"
        );
        log.checkpointed -= CHECKPOINT_EVERY;
        assert_eq!(log.checkpoint_due(10), Some(false));
        log.restart(3, true).unwrap();
        assert_eq!(log.size(), 2 * START_BYTES, "filled slowly: stays");
    }
}
