//! The on-disk spool: messages a broker output could not take yet, kept in order until they
//! are sent (see [`super::outbox`] for when that happens).
//!
//! # Layout
//! A directory (one per output; a lock file keeps a second process out) of segment files
//! `<id as 16 hex digits>.seg`, read oldest first in the order of their ids. A segment starts
//! with the 8-byte magic `NPFSPL01` and holds records:
//!
//! ```text
//! u32 little-endian payload length | u32 little-endian CRC-32C of the payload | payload
//! ```
//!
//! The payload is one message (the packet JSON, no newline). New messages are appended to
//! the last segment, which rolls over at [`SEGMENT_BYTES`]. Messages that were in memory when
//! the connection went down (unconfirmed, or queued for the delivery thread) are older than
//! everything in the spool: they go into a new segment with an id below all others
//! ([`Spool::prepend`]). The file `cursor` (text: `<segment id hex> <offset>`) says how far
//! the oldest segment has been delivered; fully delivered segments are deleted, and an
//! empty spool leaves an empty directory.
//!
//! # Durability (fsync policy)
//! - Every append is written to the file (`write(2)`) before the call returns, so a process
//!   that is killed (even with SIGKILL) loses nothing the spool accepted: the data is in the
//!   kernel's page cache.
//! - The last segment is `fdatasync`ed at most once a second while appends go on, when it
//!   rolls over, and when the spool is closed; a prepended segment (messages that existed
//!   nowhere else) is synced, with the directory, before the call returns. So a power loss or
//!   kernel crash loses at most about the last second of appended messages.
//! - The cursor is replaced by rename and not synced: after a power loss it may be older
//!   than the truth, so some delivered messages are sent again (at least once, never lost).
//!
//! # Recovery
//! Opening a spool reads every segment and checks every record. A record cut short (a crash
//! in the middle of a write) or whose checksum does not match ends its segment: the file is
//! truncated there, so appends go on after the last good record, and the cut is counted
//! ([`Recovery::torn_records`], [`Recovery::torn_bytes`]) for the exit summary.

use crate::pipeline::batch::JsonBatch;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// First bytes of every segment file.
pub const MAGIC: &[u8; 8] = b"NPFSPL01";
/// Bytes of a record header (length and checksum).
pub const RECORD_HEADER_BYTES: u64 = 8;
/// A segment rolls over once it reaches this size.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// Longest message accepted (anything longer in a file is taken for damage).
pub const MAX_RECORD_BYTES: u32 = 64 << 20;
/// The id of the first segment of an empty spool; prepended segments count down from it.
const FIRST_ID: u64 = 1 << 40;
/// How often the last segment is synced while appends go on.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as iSCSI and ext4 use it; table
/// made at compile time.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// A place in the spool: a segment and a byte offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub segment: u64,
    pub offset: u64,
}

/// What opening a spool found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Messages left by a previous run, waiting to be sent.
    pub records: u64,
    /// Segments that ended in a cut or damaged record (each cut counts once).
    pub torn_records: u64,
    /// Bytes thrown away at those cuts.
    pub torn_bytes: u64,
}

/// Why an append was refused.
#[derive(Debug)]
pub enum AppendError {
    /// The spool has reached its size cap.
    Full,
    Io(io::Error),
}

#[derive(Debug)]
struct Segment {
    id: u64,
    /// Bytes in the file (all of them good records after the magic).
    len: u64,
    /// Delivered up to this offset (kept in the cursor file).
    done: u64,
    /// The next read starts here.
    read_from: u64,
    /// Records from `read_from` on.
    unread: u64,
}

/// An open spool directory.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// Held (flock) for as long as the spool is open.
    _lock: File,
    /// Oldest first.
    segments: VecDeque<Segment>,
    /// Appends go to the last segment through this.
    writer: Option<BufWriter<File>>,
    last_sync: Instant,
    /// The open reader and where it is (the segment with unread records that comes first).
    read: Option<(Pos, BufReader<File>)>,
    cap_bytes: u64,
    bytes: u64,
    unread: u64,
}

impl Spool {
    /// Opens (creating it if needed) the spool in `dir`, capped at `cap_bytes` on disk, and
    /// checks what a previous run left there.
    pub fn open(dir: &Path, cap_bytes: u64) -> io::Result<(Spool, Recovery)> {
        fs::create_dir_all(dir).map_err(|e| named(dir, e))?;
        let lock_path = dir.join("lock");
        let lock = loop {
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| named(&lock_path, e))?;
            // flock: released by the kernel when the process ends, however it ends (kill -9).
            if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .is_err()
            {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "spool directory {} is in use by another netpipe-fast process",
                        dir.display()
                    ),
                ));
            }
            // An empty spool deletes its lock file when it closes (see Drop): if that
            // happened between our open and our lock, the lock is on a deleted file; open
            // the new one.
            let same = match (lock.metadata(), fs::metadata(&lock_path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if same {
                break lock;
            }
        };
        let mut ids = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| named(dir, e))? {
            let name = entry.map_err(|e| named(dir, e))?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(hex) = name.strip_suffix(".seg") {
                if let Ok(id) = u64::from_str_radix(hex, 16) {
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable();
        let cursor = read_cursor(&dir.join("cursor"));
        let done_of = |id: u64| {
            cursor
                .iter()
                .find(|c| c.segment == id)
                .map_or(MAGIC.len() as u64, |c| c.offset.max(MAGIC.len() as u64))
        };
        let mut recovery = Recovery::default();
        let mut segments = VecDeque::new();
        for id in ids {
            let path = segment_path(dir, id);
            let start = done_of(id);
            let (len, records, torn_bytes) = check_segment(&path, start)?;
            if torn_bytes > 0 {
                recovery.torn_records += 1;
                recovery.torn_bytes += torn_bytes;
            }
            if records == 0 {
                // Nothing left to send in it (delivered, or only a torn tail).
                fs::remove_file(&path).map_err(|e| named(&path, e))?;
                continue;
            }
            recovery.records += records;
            segments.push_back(Segment {
                id,
                len,
                done: start,
                read_from: start,
                unread: records,
            });
        }
        let bytes = segments.iter().map(|s| s.len).sum();
        let spool = Spool {
            dir: dir.to_path_buf(),
            _lock: lock,
            segments,
            writer: None,
            last_sync: Instant::now(),
            read: None,
            cap_bytes,
            bytes,
            unread: recovery.records,
        };
        spool.write_cursor()?;
        Ok((spool, recovery))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Messages not read yet.
    pub fn unread(&self) -> u64 {
        self.unread
    }

    pub fn cap_bytes(&self) -> u64 {
        self.cap_bytes
    }

    /// Bytes of segment files on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends the messages of `batch` after everything else, all or none: refused when they
    /// would take the spool past its cap.
    pub fn append(&mut self, batch: &JsonBatch) -> Result<(), AppendError> {
        let need: u64 = batch
            .messages()
            .map(|m| m.len() as u64 + RECORD_HEADER_BYTES)
            .sum();
        if self.bytes + need > self.cap_bytes {
            return Err(AppendError::Full);
        }
        let roll = match self.segments.back() {
            None => true,
            Some(last) => self.writer.is_none() || last.len >= SEGMENT_BYTES,
        };
        if roll {
            let id = self.segments.back().map_or(FIRST_ID, |s| s.id + 1);
            self.sync_writer().map_err(AppendError::Io)?;
            let (file, len) = self.create_segment(id).map_err(AppendError::Io)?;
            self.writer = Some(BufWriter::with_capacity(256 * 1024, file));
            self.segments.push_back(Segment {
                id,
                len,
                done: len,
                read_from: len,
                unread: 0,
            });
            self.bytes += len;
        }
        let (Some(writer), Some(last)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            return Err(AppendError::Io(io::Error::other("spool writer missing")));
        };
        let mut count = 0u64;
        let mut result = Ok(());
        for m in batch.messages() {
            result = write_record(writer, m);
            if result.is_err() {
                break;
            }
            count += 1;
        }
        let result = result.and_then(|()| writer.flush());
        if let Err(e) = result {
            // A half-written batch: forget the writer so the next append starts a new
            // segment; the damage is cut off when the spool is opened again.
            self.writer = None;
            return Err(AppendError::Io(named(&self.dir, e)));
        }
        last.len += need;
        last.unread += count;
        self.bytes += need;
        self.unread += count;
        if self.last_sync.elapsed() >= SYNC_INTERVAL {
            self.sync_writer().map_err(AppendError::Io)?;
        }
        Ok(())
    }

    /// Puts `messages` before everything not read yet, synced to disk before returning.
    /// Whatever was read before counts as delivered (the caller hands back, in `messages`,
    /// everything read that the broker has not confirmed). Not subject to the cap: these
    /// messages exist nowhere else.
    pub fn prepend<'m>(&mut self, messages: impl IntoIterator<Item = &'m [u8]>) -> io::Result<u64> {
        let mut messages = messages.into_iter().peekable();
        if messages.peek().is_none() {
            self.ack_read()?;
            return Ok(0);
        }
        let id = self
            .segments
            .iter()
            .map(|s| s.id)
            .min()
            .map_or(FIRST_ID, |min| min - 1);
        let (file, mut len) = self.create_segment(id)?;
        let mut writer = BufWriter::with_capacity(256 * 1024, file);
        let mut count = 0u64;
        for m in messages {
            write_record(&mut writer, m)?;
            len += m.len() as u64 + RECORD_HEADER_BYTES;
            count += 1;
        }
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_data()?;
        sync_dir(&self.dir)?;
        // Everything read so far is either delivered or in the new segment.
        self.ack_read()?;
        self.bytes += len;
        self.unread += count;
        self.segments.push_front(Segment {
            id,
            len,
            done: MAGIC.len() as u64,
            read_from: MAGIC.len() as u64,
            unread: count,
        });
        self.read = None;
        self.write_cursor()?;
        Ok(count)
    }

    /// Reads up to a batch's worth of the oldest unread messages into `out` (cleared first).
    /// Returns where the read ended (to [`Spool::ack`] once delivered), or `None` when
    /// nothing is unread.
    pub fn read_batch(
        &mut self,
        out: &mut JsonBatch,
        max_messages: usize,
        max_bytes: usize,
    ) -> io::Result<Option<Pos>> {
        out.clear();
        let mut end = None;
        while out.len() < max_messages && out.used < max_bytes && self.unread > 0 {
            let (pos, reader) = match self.read.as_mut() {
                Some(r) => r,
                None => {
                    let Some(seg) = self.segments.iter().find(|s| s.unread > 0) else {
                        break;
                    };
                    let start = seg.read_from;
                    let path = segment_path(&self.dir, seg.id);
                    let mut file = File::open(&path).map_err(|e| named(&path, e))?;
                    file.seek(SeekFrom::Start(start))?;
                    let pos = Pos {
                        segment: seg.id,
                        offset: start,
                    };
                    self.read
                        .insert((pos, BufReader::with_capacity(256 * 1024, file)))
                }
            };
            let Some(seg) = self.segments.iter_mut().find(|s| s.id == pos.segment) else {
                self.read = None;
                break;
            };
            if pos.offset >= seg.len || seg.unread == 0 {
                // This segment is read; the next one opens on the next turn.
                self.read = None;
                continue;
            }
            let mut header = [0u8; RECORD_HEADER_BYTES as usize];
            reader.read_exact(&mut header)?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if len > MAX_RECORD_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("spool segment {:016x}: damaged record", seg.id),
                ));
            }
            let start = out.used;
            let need = start + len as usize + 1;
            if out.buf.len() < need {
                out.buf.resize(need, 0);
            }
            reader.read_exact(&mut out.buf[start..start + len as usize])?;
            if crc32c(&out.buf[start..start + len as usize]) != crc {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("spool segment {:016x}: checksum mismatch", seg.id),
                ));
            }
            out.buf[start + len as usize] = b'\n';
            out.commit(need);
            pos.offset += RECORD_HEADER_BYTES + u64::from(len);
            seg.read_from = pos.offset;
            seg.unread -= 1;
            self.unread -= 1;
            end = Some(*pos);
        }
        Ok(end)
    }

    /// Marks everything up to `pos` delivered: deletes segments that are done, moves the
    /// cursor.
    pub fn ack(&mut self, pos: Pos) -> io::Result<()> {
        for seg in self.segments.iter_mut() {
            if seg.id == pos.segment {
                seg.done = seg.done.max(pos.offset.min(seg.read_from));
                break;
            }
            // Segments before `pos` were read to their end before it.
            seg.done = seg.read_from;
        }
        self.remove_done()
    }

    /// Marks everything read so far delivered.
    fn ack_read(&mut self) -> io::Result<()> {
        for seg in self.segments.iter_mut() {
            seg.done = seg.read_from;
        }
        self.remove_done()
    }

    /// Deletes the segments at the front that are delivered to their end (the one being
    /// appended to stays while the spool has anything else), and saves the cursor.
    fn remove_done(&mut self) -> io::Result<()> {
        while let Some(front) = self.segments.front() {
            let drained = front.unread == 0 && front.done >= front.len;
            let writing = self.is_writing(front.id);
            if !drained || (writing && self.segments.len() > 1) {
                break;
            }
            self.remove_front()?;
        }
        self.write_cursor()
    }

    fn is_writing(&self, id: u64) -> bool {
        self.writer.is_some() && self.segments.back().is_some_and(|s| s.id == id)
    }

    fn remove_front(&mut self) -> io::Result<()> {
        let Some(front) = self.segments.pop_front() else {
            return Ok(());
        };
        if self
            .read
            .as_ref()
            .is_some_and(|(p, _)| p.segment == front.id)
        {
            self.read = None;
        }
        if self.segments.is_empty() {
            self.writer = None;
        }
        self.bytes -= front.len;
        let path = segment_path(&self.dir, front.id);
        fs::remove_file(&path).map_err(|e| named(&path, e))
    }

    /// Syncs the last segment (at close).
    pub fn sync(&mut self) -> io::Result<()> {
        self.sync_writer()
    }

    fn sync_writer(&mut self) -> io::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    fn create_segment(&self, id: u64) -> io::Result<(File, u64)> {
        let path = segment_path(&self.dir, id);
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| named(&path, e))?;
        file.write_all(MAGIC).map_err(|e| named(&path, e))?;
        sync_dir(&self.dir)?;
        Ok((file, MAGIC.len() as u64))
    }

    fn write_cursor(&self) -> io::Result<()> {
        let path = self.dir.join("cursor");
        let mut text = String::new();
        for seg in self.segments.iter().filter(|s| s.done > MAGIC.len() as u64) {
            text.push_str(&format!("{:016x} {}\n", seg.id, seg.done));
        }
        if text.is_empty() {
            return match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(named(&path, e)),
                _ => Ok(()),
            };
        }
        let tmp = self.dir.join("cursor.tmp");
        fs::write(&tmp, text).map_err(|e| named(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| named(&tmp, e))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = self.sync_writer();
        if self.segments.is_empty() {
            // Nothing left: leave no trace (the lock file goes while we still hold it; see
            // the check in `open`). The directory goes too if nothing else is in it.
            let _ = fs::remove_file(self.dir.join("cursor"));
            let _ = fs::remove_file(self.dir.join("lock"));
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.seg"))
}

fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| named(dir, e))
}

fn write_record(w: &mut impl Write, m: &[u8]) -> io::Result<()> {
    let len = u32::try_from(m.len())
        .ok()
        .filter(|&l| l <= MAX_RECORD_BYTES)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "message too long"))?;
    let mut header = [0u8; RECORD_HEADER_BYTES as usize];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..].copy_from_slice(&crc32c(m).to_le_bytes());
    w.write_all(&header)?;
    w.write_all(m)
}

/// The cursor file: how far each segment is delivered (lines it cannot read are skipped:
/// their segments are then sent again whole, at least once).
fn read_cursor(path: &Path) -> Vec<Pos> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (id, offset) = line.trim().split_once(' ')?;
            Some(Pos {
                segment: u64::from_str_radix(id, 16).ok()?,
                offset: offset.parse().ok()?,
            })
        })
        .collect()
}

/// Checks a segment's records from `start` on. Returns its good length, the number of good
/// records after `start`, and the bytes cut off after the last good record (the file is
/// truncated to its good length).
fn check_segment(path: &Path, start: u64) -> io::Result<(u64, u64, u64)> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| named(path, e))?;
    let file_len = file.metadata().map_err(|e| named(path, e))?.len();
    let mut reader = BufReader::with_capacity(256 * 1024, &mut file);
    let mut magic = [0u8; 8];
    let magic_ok = reader.read_exact(&mut magic).is_ok() && &magic == MAGIC;
    let mut good = MAGIC.len() as u64;
    let mut records = 0u64;
    let mut payload = Vec::new();
    if magic_ok {
        loop {
            let mut header = [0u8; RECORD_HEADER_BYTES as usize];
            if reader.read_exact(&mut header).is_err() {
                break;
            }
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if len > MAX_RECORD_BYTES || good + RECORD_HEADER_BYTES + u64::from(len) > file_len {
                break;
            }
            payload.resize(len as usize, 0);
            if reader.read_exact(&mut payload).is_err() || crc32c(&payload) != crc {
                break;
            }
            if good >= start {
                records += 1;
            }
            good += RECORD_HEADER_BYTES + u64::from(len);
        }
    } else {
        good = 0;
    }
    drop(reader);
    let torn = file_len.saturating_sub(good);
    if torn > 0 {
        if good == 0 {
            // Not even the magic: nothing in it is ours to send.
            return Ok((0, 0, torn));
        }
        file.set_len(good).map_err(|e| named(path, e))?;
        file.sync_all().map_err(|e| named(path, e))?;
    }
    Ok((good, records, torn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(msgs: &[&str]) -> JsonBatch {
        let mut b = JsonBatch::with_capacity();
        for m in msgs {
            b.buf.truncate(b.used);
            b.buf.extend_from_slice(m.as_bytes());
            b.buf.push(b'\n');
            let end = b.buf.len();
            b.commit(end);
        }
        b
    }

    fn texts(b: &JsonBatch) -> Vec<String> {
        b.messages()
            .map(|m| String::from_utf8(m.to_vec()).unwrap())
            .collect()
    }

    fn temp_dir(what: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "npf-spool-unit-{what}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn read_all(s: &mut Spool) -> (Vec<String>, Option<Pos>) {
        let mut out = JsonBatch::with_capacity();
        let mut all = Vec::new();
        let mut last = None;
        while let Some(p) = s.read_batch(&mut out, 2, 1 << 20).unwrap() {
            all.extend(texts(&out));
            last = Some(p);
        }
        (all, last)
    }

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C (RFC 3720 appendix B.4 uses this polynomial).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn append_read_ack_in_order_and_leave_an_empty_dir() {
        let dir = temp_dir("order");
        let (mut s, rec) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!(rec, Recovery::default());
        s.append(&batch(&["a", "b", "c"])).unwrap();
        s.append(&batch(&["d"])).unwrap();
        assert_eq!(s.unread(), 4);
        let (all, last) = read_all(&mut s);
        assert_eq!(all, ["a", "b", "c", "d"]);
        s.ack(last.unwrap()).unwrap();
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "lock")
            .collect();
        assert!(left.is_empty(), "{left:?}");
        drop(s);
        assert!(!dir.exists(), "an empty spool leaves its directory behind");
    }

    #[test]
    fn cap_refuses_whole_batches() {
        let dir = temp_dir("cap");
        let (mut s, _) = Spool::open(&dir, 8 + 2 * (8 + 3)).unwrap();
        s.append(&batch(&["aaa"])).unwrap();
        assert!(matches!(
            s.append(&batch(&["bbb", "ccc"])),
            Err(AppendError::Full)
        ));
        s.append(&batch(&["ddd"])).unwrap();
        assert_eq!(read_all(&mut s).0, ["aaa", "ddd"]);
        drop(s);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn prepend_goes_first_and_read_counts_as_done() {
        let dir = temp_dir("prepend");
        let (mut s, _) = Spool::open(&dir, 1 << 20).unwrap();
        s.append(&batch(&["1", "2"])).unwrap();
        let mut out = JsonBatch::with_capacity();
        s.read_batch(&mut out, 1, 1 << 20).unwrap().unwrap();
        assert_eq!(texts(&out), ["1"]);
        // "1" was read but not confirmed: the caller hands it back with older ones.
        s.prepend([&b"0"[..], b"1"]).unwrap();
        s.append(&batch(&["3"])).unwrap();
        assert_eq!(read_all(&mut s).0, ["0", "1", "2", "3"]);
        drop(s);
        // Nothing was acknowledged since the prepend: all of it comes back.
        let (mut s, rec) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!(rec.records, 4);
        assert_eq!(read_all(&mut s).0, ["0", "1", "2", "3"]);
        drop(s);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn reopen_resumes_after_the_acknowledged_part() {
        let dir = temp_dir("resume");
        let (mut s, _) = Spool::open(&dir, 1 << 20).unwrap();
        s.append(&batch(&["a", "b", "c"])).unwrap();
        let mut out = JsonBatch::with_capacity();
        let p = s.read_batch(&mut out, 2, 1 << 20).unwrap().unwrap();
        s.ack(p).unwrap();
        drop(s);
        let (mut s, rec) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!(rec.records, 1);
        assert_eq!(read_all(&mut s).0, ["c"]);
        drop(s);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn torn_and_damaged_tails_are_cut_and_counted() {
        let dir = temp_dir("torn");
        let (mut s, _) = Spool::open(&dir, 1 << 20).unwrap();
        s.append(&batch(&["first", "second"])).unwrap();
        drop(s);
        let seg = segment_path(&dir, FIRST_ID);
        let good_len = fs::metadata(&seg).unwrap().len();
        // A record cut short: header and part of the payload.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[10, 0, 0, 0, 1, 2, 3, 4, b'x']).unwrap();
        drop(f);
        let (mut s, rec) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!((rec.records, rec.torn_records, rec.torn_bytes), (2, 1, 9));
        assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
        // Appends go on after the last good record.
        s.append(&batch(&["third"])).unwrap();
        assert_eq!(read_all(&mut s).0, ["first", "second", "third"]);
        drop(s);
        // "third" went to a new segment (appends after a restart start one). A flipped byte
        // in its payload: the checksum fails, the record is cut.
        let seg2 = segment_path(&dir, FIRST_ID + 1);
        let mut bytes = fs::read(&seg2).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x20;
        fs::write(&seg2, &bytes).unwrap();
        let (mut s, rec) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!((rec.records, rec.torn_records), (2, 1));
        assert_eq!(read_all(&mut s).0, ["first", "second"]);
        drop(s);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_second_process_is_kept_out() {
        let dir = temp_dir("lock");
        let (s, _) = Spool::open(&dir, 1 << 20).unwrap();
        let e = Spool::open(&dir, 1 << 20).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        drop(s);
        assert!(Spool::open(&dir, 1 << 20).is_ok());
        let _ = fs::remove_dir_all(&dir);
    }
}
