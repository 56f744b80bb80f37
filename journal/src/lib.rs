//! The journal: append-only segment files mapped into memory. A record
//! appended to a [`Segment`] is in the kernel's page cache the moment
//! [`Segment::append`] returns, with no system call: if the process then
//! dies (a panic that aborts, `kill -9`, the OOM killer), the record is still
//! in the file, and the next start reads it back with [`open`]. Power loss is
//! another matter: what reaches the disk is what the last [`Syncer::sync`]
//! wrote, so the caller syncs on a timer and documents the interval.
//!
//! A segment file:
//!
//! ```text
//! header, HEADER_LEN (64) bytes:
//!    0..8   magic  b"LWJOURNL"
//!    8..12  FORMAT_VERSION (u32, little-endian): this framing
//!   12..16  kind (u32): what the records hold, the caller's number
//!   16..20  kind version (u32): the caller's record layout
//!   20..64  zero
//! records, from byte 64, back to back:
//!    0..4   payload length (u32, little-endian); 0 ends the records
//!    4..8   checksum of the length and the payload (u32)
//!    8..    payload
//! zeros up to the segment's length
//! ```
//!
//! The file is created full length and filled with zeros through `write`,
//! so its blocks are allocated before it is mapped: a full disk fails the
//! creation (an error the caller can count), never a store into the
//! mapping (which would be a SIGBUS). A record torn by a crash in the middle
//! of an append, or by power loss in the middle of a sync, fails its
//! checksum, and reading stops there.
//!
//! The owner of a segment holds an exclusive `flock` on it for as long as
//! the segment lives; [`open`] skips a file whose lock is held, so two
//! processes sharing a folder never read or remove each other's live
//! segments, and a dead process's segments (the kernel drops its locks) are
//! read by the next one that looks.
//!
//! The `unsafe` of this crate is one call: mapping the file
//! ([`Segment::create`]).
#![deny(unsafe_code)]
#![warn(missing_docs)]

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{MmapMut, MmapOptions};

/// The first bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"LWJOURNL";
/// The version of the framing described in the crate doc.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the first record.
pub const HEADER_LEN: usize = 64;
/// Bytes before each record's payload.
pub const RECORD_OVERHEAD: usize = 8;
/// The smallest segment [`Segment::create`] accepts.
pub const MIN_SEGMENT_LEN: usize = 4096;

/// What a segment's records hold: the caller's numbers, checked on reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// What the records are (the caller's own numbering).
    pub id: u32,
    /// The layout of those records.
    pub version: u32,
}

/// A segment file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be opened, locked or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The file is not a segment of a format this build reads.
    #[error("{path}: not a journal segment this version reads: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// A segment being written: mapped, locked, appended to by its owner.
#[derive(Debug)]
pub struct Segment {
    map: MmapMut,
    file: Arc<File>,
    path: PathBuf,
    /// Bytes used: the header and the records so far.
    used: usize,
    records: u64,
}

/// Syncs a segment's file to disk from another thread than its writer's.
#[derive(Debug, Clone)]
pub struct Syncer(Arc<File>);

impl Syncer {
    /// Writes the segment's records so far to disk (`fdatasync`: on Linux
    /// this writes back the pages stored through the mapping too).
    pub fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Segment {
    /// Creates the segment file `path` (which must not exist) of `len`
    /// bytes for records of `kind`, allocates its blocks, locks and maps it.
    /// On failure nothing is left behind.
    pub fn create(path: &Path, len: usize, kind: Kind) -> io::Result<Segment> {
        if len < MIN_SEGMENT_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a segment is at least {MIN_SEGMENT_LEN} bytes, not {len}"),
            ));
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let made = (|| {
            file.try_lock().map_err(io::Error::from)?;
            let mut header = [0u8; HEADER_LEN];
            header[..8].copy_from_slice(&MAGIC);
            header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
            header[12..16].copy_from_slice(&kind.id.to_le_bytes());
            header[16..20].copy_from_slice(&kind.version.to_le_bytes());
            file.write_all(&header)?;
            // Real zeros, not a hole: the blocks are allocated now.
            let zeros = vec![0u8; 64 * 1024];
            let mut left = len - HEADER_LEN;
            while left > 0 {
                let n = left.min(zeros.len());
                file.write_all(&zeros[..n])?;
                left -= n;
            }
            map(&file, len)
        })();
        match made {
            Ok(map) => Ok(Segment {
                map,
                file: Arc::new(file),
                path: path.to_owned(),
                used: HEADER_LEN,
                records: 0,
            }),
            Err(e) => {
                drop(file);
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// Appends one record of at most `max_len` bytes, which `write` puts in
    /// the slice it is given (exactly `max_len` long) and returns how many
    /// it wrote. False, with nothing written, if the segment has no room for
    /// `max_len` bytes more.
    #[inline]
    pub fn append(&mut self, max_len: usize, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        let start = self.used;
        let Some(end) = start
            .checked_add(RECORD_OVERHEAD + max_len)
            .filter(|&end| end <= self.map.len())
        else {
            return false;
        };
        let record = &mut self.map[start..end];
        let (head, payload) = record.split_at_mut(RECORD_OVERHEAD);
        let n = write(payload).min(max_len);
        // The length is written with the checksum, after the payload: a
        // record cut short by a crash has a zero length or a bad checksum.
        let len = n as u32;
        head[4..8].copy_from_slice(&checksum(len, &payload[..n]).to_le_bytes());
        head[..4].copy_from_slice(&len.to_le_bytes());
        self.used = start + RECORD_OVERHEAD + n;
        self.records += 1;
        true
    }

    /// Records appended.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The payloads of the records appended so far, in order (read back
    /// from the mapping, as [`Recovered::records`] reads a dead writer's).
    pub fn payloads(&self) -> Records<'_> {
        Records {
            data: &self.map[..self.used],
            at: HEADER_LEN,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle that syncs this segment's file, usable while it is written.
    pub fn syncer(&self) -> Syncer {
        Syncer(Arc::clone(&self.file))
    }

    /// Removes the file (its records are no longer needed) and unmaps it.
    pub fn remove(self) -> io::Result<()> {
        std::fs::remove_file(&self.path)
    }
}

#[allow(unsafe_code)]
fn map(file: &File, len: usize) -> io::Result<MmapMut> {
    // SAFETY: a shared mapping is undefined behaviour in Rust's terms only
    // if the file changes under it other than through it: truncated (a
    // SIGBUS) or written by another process. The file was just created by
    // this process (create_new), is locked exclusively for the mapping's
    // life (every reader of the journal skips a locked file), and is
    // `len` bytes long with allocated blocks. Another program that ignores
    // the lock and truncates a live segment can still crash the process,
    // as with any mapped file.
    unsafe { MmapOptions::new().len(len).populate().map_mut(file) }
}

/// A dead writer's segment, read whole and locked until it is removed.
#[derive(Debug)]
pub struct Recovered {
    path: PathBuf,
    kind: Kind,
    data: Vec<u8>,
    _lock: File,
}

impl Recovered {
    /// What the records hold, as the writer declared it.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The payloads of the complete records, in order; reading stops at the
    /// end marker or at the first torn record.
    pub fn records(&self) -> Records<'_> {
        Records {
            data: &self.data,
            at: HEADER_LEN,
        }
    }

    /// Removes the file (its records are stored elsewhere now).
    pub fn remove(self) -> io::Result<()> {
        std::fs::remove_file(&self.path)
    }
}

/// The records of a [`Recovered`] segment.
#[derive(Debug)]
pub struct Records<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let head = self.data.get(self.at..self.at + RECORD_OVERHEAD)?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let sum = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let start = self.at + RECORD_OVERHEAD;
        let payload = self.data.get(start..start.checked_add(len as usize)?)?;
        if len == 0 || checksum(len, payload) != sum {
            return None;
        }
        self.at = start + payload.len();
        Some(payload)
    }
}

/// Opens the segment file `path` to read it back: `None` if another process
/// holds its lock (its writer is alive), an error if it is not a segment of
/// this format.
pub fn open(path: &Path) -> Result<Option<Recovered>, JournalError> {
    let io_err = |source| JournalError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
    }
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(io_err)?;
    let format = |reason: String| JournalError::Format {
        path: path.to_owned(),
        reason,
    };
    if data.len() < HEADER_LEN || data[..8] != MAGIC {
        return Err(format("no journal header".into()));
    }
    let word = |at: usize| u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    let version = word(8);
    if version != FORMAT_VERSION {
        return Err(format(format!(
            "format version {version}, this build reads {FORMAT_VERSION}"
        )));
    }
    let kind = Kind {
        id: word(12),
        version: word(16),
    };
    Ok(Some(Recovered {
        path: path.to_owned(),
        kind,
        data,
        _lock: file,
    }))
}

/// Makes the creation and removal of files in `dir` durable (`fsync` of
/// the folder).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The records' checksum: a multiply-xor hash over 8-byte words, seeded with
/// the length. Not cryptographic: it tells a complete record from a torn one.
#[inline]
fn checksum(len: u32, payload: &[u8]) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = u64::from(len).wrapping_mul(K) ^ 0x5851_F42D_4C95_7F2D;
    let mut words = payload.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        h = (h ^ v).wrapping_mul(K).rotate_left(29);
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h ^ u64::from_le_bytes(last)).wrapping_mul(K);
    h ^= h >> 32;
    // Never 0, so a zeroed record head never checks.
    (h as u32) | 1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const KIND: Kind = Kind { id: 7, version: 3 };

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lw-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn put(seg: &mut Segment, bytes: &[u8]) -> bool {
        seg.append(bytes.len() + 3, |out| {
            out[..bytes.len()].copy_from_slice(bytes);
            bytes.len()
        })
    }

    #[test]
    fn records_appended_are_read_back_in_order_until_the_end() {
        let dir = scratch("roundtrip");
        let path = dir.join("a.seg");
        let mut seg = Segment::create(&path, MIN_SEGMENT_LEN, KIND).unwrap();
        let records: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 1 + i as usize * 7]).collect();
        for r in &records {
            assert!(put(&mut seg, r));
        }
        assert_eq!(seg.records(), 20);
        let live: Vec<Vec<u8>> = seg.payloads().map(<[u8]>::to_vec).collect();
        assert_eq!(live, records, "its writer reads them back too");
        assert!(open(&path).unwrap().is_none(), "locked by its writer");
        // The writer dies without a word: its lock goes, its records stay.
        drop(seg);
        let got = open(&path).unwrap().unwrap();
        assert_eq!(got.kind(), KIND);
        let read: Vec<Vec<u8>> = got.records().map(<[u8]>::to_vec).collect();
        assert_eq!(read, records);
        got.remove().unwrap();
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_full_segment_refuses_and_keeps_what_it_has() {
        let dir = scratch("full");
        let path = dir.join("a.seg");
        let mut seg = Segment::create(&path, MIN_SEGMENT_LEN, KIND).unwrap();
        let mut n = 0;
        while put(&mut seg, &[1u8; 100]) {
            n += 1;
        }
        // Each takes 108 bytes; an append needs room for its 103 at most.
        let room = MIN_SEGMENT_LEN - HEADER_LEN - (RECORD_OVERHEAD + 103);
        assert_eq!(n, room / (RECORD_OVERHEAD + 100) + 1);
        drop(seg);
        assert_eq!(open(&path).unwrap().unwrap().records().count(), n);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn reading_stops_at_a_torn_record() {
        let dir = scratch("torn");
        let path = dir.join("a.seg");
        let mut seg = Segment::create(&path, MIN_SEGMENT_LEN, KIND).unwrap();
        for i in 0..3u8 {
            assert!(put(&mut seg, &[i; 10]));
        }
        drop(seg);
        // Flip a byte of the second record's payload.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_LEN + RECORD_OVERHEAD + 10 + RECORD_OVERHEAD + 2] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let got = open(&path).unwrap().unwrap();
        assert_eq!(got.records().collect::<Vec<_>>(), vec![&[0u8; 10][..]]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_file_of_another_format_is_refused_with_the_reason() {
        let dir = scratch("format");
        let path = dir.join("a.seg");
        std::fs::write(&path, [0u8; 100]).unwrap();
        let e = open(&path).unwrap_err().to_string();
        assert!(e.contains("no journal header"), "{e}");
        let mut seg = Segment::create(&dir.join("b.seg"), MIN_SEGMENT_LEN, KIND).unwrap();
        assert!(put(&mut seg, b"x"));
        drop(seg);
        let mut bytes = std::fs::read(dir.join("b.seg")).unwrap();
        bytes[8] = 9;
        std::fs::write(&path, &bytes).unwrap();
        let e = open(&path).unwrap_err().to_string();
        assert!(e.contains("format version 9, this build reads 1"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn creating_over_an_existing_file_fails_and_leaves_it() {
        let dir = scratch("exists");
        let path = dir.join("a.seg");
        std::fs::write(&path, b"mine").unwrap();
        assert!(Segment::create(&path, MIN_SEGMENT_LEN, KIND).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"mine");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn checksums_tell_lengths_and_payloads_apart() {
        assert_ne!(checksum(3, b"abc"), checksum(3, b"abd"));
        assert_ne!(checksum(3, b"abc"), checksum(4, b"abc"));
        assert_ne!(checksum(9, b"abcdefghi"), checksum(9, b"abcdefghj"));
        assert_ne!(checksum(0, b""), 0);
    }
}
