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
//! # Trust (the spool runs as root next to other users)
//! Everything in the spool is sent to the broker and the spool deletes and renames files,
//! so it is used only if nobody else could have put anything there. [`SpoolDir::open`] walks
//! the directory's path from `/` one component at a time, each opened with `O_NOFOLLOW`
//! relative to the one before (no symbolic link is followed, and a component swapped after
//! its check is not the one used), creates missing ones `0700`, and refuses the spool, with
//! one line naming the component and the reason, unless every component is a directory owned
//! by root or by the user the spool runs as and not writable by group or others (so no
//! world-writable folder such as `/tmp` or `/var/tmp`, sticky or not, is part of it).
//! Every file is then opened relative to the directory's descriptor with `O_NOFOLLOW`, new
//! ones with `O_EXCL` and mode `0600`; a file not owned by the spool's user (or root), or
//! not a regular file, makes the spool refuse to open.
//!
//! # Recovery
//! Opening a spool reads every segment and checks every record. A record cut short at the
//! end of a segment (a crash in the middle of a write) is cut off: the file is truncated, so
//! appends go on after the last good record, and the cut is counted
//! ([`Recovery::torn_records`], [`Recovery::torn_bytes`]). Any other damage (a bad checksum
//! or length, a bad magic) does not end the segment: the scan resynchronises on the next
//! offset where a whole record with a matching checksum starts, the undelivered good records
//! are written to a fresh segment of the same id, and the damaged file is kept beside it as
//! `<id>.seg.damaged` ([`Recovery::damaged`]) for a person to look at. A cursor that does
//! not point at a record boundary is moved back to the start of the record it points into
//! (that record is sent again: at least once), and a cursor past the end of its segment is
//! ignored (the whole segment is sent again): the cursor never makes the spool delete a
//! record it did not deliver ([`Recovery::cursors_fixed`]).

use crate::encode::batch::JsonBatch;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
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
/// Mode of directories the spool creates.
const DIR_MODE: u32 = 0o700;
/// Mode of files the spool creates.
const FILE_MODE: u32 = 0o600;
/// Suffix of a segment moved aside because it was damaged.
pub const DAMAGED_SUFFIX: &str = ".damaged";

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, as iSCSI and ext4 use it) of
/// `data`, from the `crc32c` crate: the SSE4.2 `crc32` instruction when the CPU has it, a
/// table otherwise (same values either way; the spool format does not depend on which).
pub fn crc32c(data: &[u8]) -> u32 {
    ::crc32c::crc32c(data)
}

/// The effective user id of the process.
pub fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// A spool directory whose path was checked (see the module's note on trust), held open: every
/// file of the spool is opened relative to it. Cheap to clone (the descriptor is shared).
#[derive(Clone, Debug)]
pub struct SpoolDir {
    fd: Arc<OwnedFd>,
    /// For messages only; never used to reach a file.
    path: PathBuf,
    /// The user the spool's files must belong to (or root).
    owner_uid: u32,
}

impl PartialEq for SpoolDir {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.fd, &other.fd)
    }
}

impl Eq for SpoolDir {}

impl SpoolDir {
    /// Creates (mode 0700) and checks `path` for the user this process runs as.
    pub fn open(path: &Path) -> io::Result<SpoolDir> {
        let uid = effective_uid();
        Self::open_for(path, uid)
    }

    /// Creates and checks `path` (as root) for the user `uid`:`gid` a capture switches to
    /// after opening its sockets (`--user`): the directories above it stay root's, the
    /// directory itself and its files are given to that user, and the descriptor, opened
    /// now, keeps working after the switch (the user need not be able to reach the path).
    pub fn open_for_user(path: &Path, uid: u32, gid: u32) -> io::Result<SpoolDir> {
        let dir = Self::open_for(path, uid)?;
        let owner = Some(rustix::fs::Uid::from_raw(uid));
        let group = Some(rustix::fs::Gid::from_raw(gid));
        rustix::fs::fchown(&*dir.fd, owner, group).map_err(|e| named(path, e.into()))?;
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&*dir.fd).map_err(|e| named(path, e.into()))? {
            let entry = entry.map_err(|e| named(path, e.into()))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        for name in names {
            let name = OsStr::from_bytes(&name);
            let st = rustix::fs::statat(&*dir.fd, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| named(&path.join(name), e.into()))?;
            // Files an earlier run as root left: the user must be able to send them. Anything
            // else is left alone (and refused when the spool opens, if it is not the user's).
            if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && st.st_uid == 0 {
                rustix::fs::chownat(&*dir.fd, name, owner, group, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| named(&path.join(name), e.into()))?;
            }
        }
        Ok(dir)
    }

    fn open_for(path: &Path, owner_uid: u32) -> io::Result<SpoolDir> {
        let absolute = absolute(path)?;
        let mut at = PathBuf::from("/");
        let mut fd = rustix::fs::open(
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| named(&at, e.into()))?;
        check_dir(&fd, &at, owner_uid)?;
        let names: Vec<&OsStr> = absolute
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        for (i, name) in names.iter().enumerate() {
            at.push(name);
            // The last one is read (its entries) and synced, so it needs a real descriptor;
            // the ones above only need to be passed through (O_PATH needs no read right).
            let flags = if i + 1 == names.len() {
                OFlags::RDONLY
            } else {
                OFlags::PATH
            } | OFlags::DIRECTORY
                | OFlags::NOFOLLOW
                | OFlags::CLOEXEC;
            let next = match rustix::fs::openat(&fd, *name, flags, Mode::empty()) {
                Err(rustix::io::Errno::NOENT) => {
                    match rustix::fs::mkdirat(&fd, *name, Mode::from_raw_mode(DIR_MODE)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(named(&at, e.into())),
                    }
                    rustix::fs::openat(&fd, *name, flags, Mode::empty())
                }
                other => other,
            };
            fd = next.map_err(|e| match e {
                // A link gives ELOOP (or ENOTDIR with O_PATH); anything else not a directory
                // ENOTDIR: say which it is.
                rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
                    let link = rustix::fs::statat(&fd, *name, AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
                    let why = if link {
                        "is a symbolic link"
                    } else {
                        "is not a directory"
                    };
                    untrusted(&at, why.into())
                }
                e => named(&at, e.into()),
            })?;
            check_dir(&fd, &at, owner_uid)?;
        }
        Ok(SpoolDir {
            fd: Arc::new(fd),
            path: absolute,
            owner_uid,
        })
    }

    /// The directory's absolute path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn file_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Opens the file `name` in the directory (never through a link) and checks it belongs
    /// to the spool's user and is a regular file.
    fn open_file(&self, name: &str, flags: OFlags) -> io::Result<File> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = rustix::fs::openat(&*self.fd, name, flags, Mode::from_raw_mode(FILE_MODE))
            .map_err(|e| match e {
                rustix::io::Errno::LOOP => {
                    untrusted(&self.file_path(name), "is a symbolic link".into())
                }
                e => named(&self.file_path(name), e.into()),
            })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| named(&self.file_path(name), e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(untrusted(
                &self.file_path(name),
                "is not a regular file".into(),
            ));
        }
        if st.st_uid != self.owner_uid && st.st_uid != 0 {
            return Err(untrusted(
                &self.file_path(name),
                format!(
                    "is owned by uid {}, not by uid {}",
                    st.st_uid, self.owner_uid
                ),
            ));
        }
        let file = File::from(fd);
        // O_NONBLOCK only kept a planted FIFO from hanging the open; regular files ignore it.
        Ok(file)
    }

    /// Creates `name`, which must not exist (`O_EXCL`), mode 0600.
    fn create_file(&self, name: &str, extra: OFlags) -> io::Result<File> {
        self.open_file(name, OFlags::CREATE | OFlags::EXCL | extra)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        rustix::fs::unlinkat(&*self.fd, name, AtFlags::empty())
            .map_err(|e| named(&self.file_path(name), e.into()))
    }

    /// Removes `name`; not an error when it is not there.
    fn remove_if_there(&self, name: &str) -> io::Result<()> {
        match rustix::fs::unlinkat(&*self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(named(&self.file_path(name), e.into())),
        }
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        rustix::fs::renameat(&*self.fd, from, &*self.fd, to)
            .map_err(|e| named(&self.file_path(from), e.into()))
    }

    fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&*self.fd).map_err(|e| named(&self.path, e.into()))
    }

    /// Names of the entries in the directory.
    fn names(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        let dir = rustix::fs::Dir::read_from(&*self.fd).map_err(|e| named(&self.path, e.into()))?;
        for entry in dir {
            let entry = entry.map_err(|e| named(&self.path, e.into()))?;
            if let Ok(name) = entry.file_name().to_str() {
                if name != "." && name != ".." {
                    names.push(name.to_string());
                }
            }
        }
        Ok(names)
    }
}

/// `path` made absolute (from the working directory) with `.` and `..` taken out by name:
/// every component is then checked, so a `..` cannot step around a check.
fn absolute(path: &Path) -> io::Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// A directory of the spool's path is trusted if root or `owner_uid` owns it and neither group
/// nor others may write to it.
fn check_dir(fd: &impl AsFd, at: &Path, owner_uid: u32) -> io::Result<()> {
    let st = rustix::fs::fstat(fd).map_err(|e| named(at, e.into()))?;
    if st.st_uid != 0 && st.st_uid != owner_uid {
        return Err(untrusted(
            at,
            format!(
                "is owned by uid {}, not by root or uid {owner_uid}",
                st.st_uid
            ),
        ));
    }
    let mode = st.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(untrusted(
            at,
            format!("is writable by group or others (mode {mode:04o})"),
        ));
    }
    Ok(())
}

fn untrusted(path: &Path, why: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{} {why}; refusing to use it for the spool", path.display()),
    )
}

/// A place in the spool: a segment and a byte offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    /// The segment's id (its file is `<id as 16 hex digits>.seg`).
    pub segment: u64,
    /// Bytes from the start of the segment file.
    pub offset: u64,
}

/// What opening a spool found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Messages left by a previous run, waiting to be sent.
    pub records: u64,
    /// Segments that ended in a record cut short (each cut counts once).
    pub torn_records: u64,
    /// Bytes thrown away at those cuts.
    pub torn_bytes: u64,
    /// Damaged segments moved aside (file names in the spool directory); their good records
    /// are in [`Recovery::records`].
    pub damaged: Vec<String>,
    /// Bytes of those segments that were not part of a good record.
    pub damaged_bytes: u64,
    /// Cursor entries that did not point at a record boundary of their segment.
    pub cursors_fixed: u64,
}

/// Why an append was refused.
#[derive(Debug)]
pub enum AppendError {
    /// The spool has reached its size cap.
    Full,
    /// Writing the segment or the cursor failed.
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
    dir: SpoolDir,
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
    /// checks what a previous run left there. Refuses a directory it cannot trust (see the
    /// module's note on trust).
    pub fn open(dir: &Path, cap_bytes: u64) -> io::Result<(Spool, Recovery)> {
        match Spool::open_in(SpoolDir::open(dir)?, cap_bytes) {
            // Another process's empty spool removed the directory between our walk and our
            // lock (see Drop): walk again, once.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Spool::open_in(SpoolDir::open(dir)?, cap_bytes)
            }
            other => other,
        }
    }

    /// As [`Spool::open`], in a directory already checked and opened.
    pub fn open_in(dir: SpoolDir, cap_bytes: u64) -> io::Result<(Spool, Recovery)> {
        // The directory was checked for its user; the process must be that user (or root).
        let euid = effective_uid();
        if euid != 0 && euid != dir.owner_uid {
            return Err(untrusted(
                &dir.path,
                format!("was prepared for uid {}, not uid {euid}", dir.owner_uid),
            ));
        }
        check_dir(&*dir.fd, &dir.path, dir.owner_uid)?;
        let lock = loop {
            let lock = dir.open_file("lock", OFlags::CREATE | OFlags::WRONLY)?;
            // flock: released by the kernel when the process ends, however it ends (kill -9).
            if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .is_err()
            {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "spool directory {} is in use by another netpipe-fast process",
                        dir.path.display()
                    ),
                ));
            }
            // An empty spool deletes its lock file when it closes (see Drop): if that
            // happened between our open and our lock, the lock is on a deleted file; open
            // the new one.
            let same = match (
                rustix::fs::fstat(&lock),
                rustix::fs::statat(&*dir.fd, "lock", AtFlags::SYMLINK_NOFOLLOW),
            ) {
                (Ok(a), Ok(b)) => a.st_ino == b.st_ino && a.st_dev == b.st_dev,
                _ => false,
            };
            if same {
                break lock;
            }
        };
        let mut ids = Vec::new();
        for name in dir.names()? {
            if let Some(hex) = name.strip_suffix(".seg") {
                if let Ok(id) = u64::from_str_radix(hex, 16) {
                    ids.push(id);
                }
            } else if name.ends_with(".tmp") {
                // A temporary a crash left (cursor, or a damaged segment being rewritten: the
                // original is still there and is checked again below).
                dir.remove_if_there(&name)?;
            }
        }
        ids.sort_unstable();
        let cursor = read_cursor(&dir)?;
        let mut recovery = Recovery::default();
        let mut segments = VecDeque::new();
        for id in ids {
            let cursor_at = cursor.iter().find(|c| c.segment == id).map(|c| c.offset);
            let Some(seg) = recover_segment(&dir, id, cursor_at, &mut recovery)? else {
                continue;
            };
            recovery.records += seg.unread;
            segments.push_back(seg);
        }
        let bytes = segments.iter().map(|s| s.len).sum();
        let spool = Spool {
            dir,
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

    /// Messages not read yet.
    pub fn unread(&self) -> u64 {
        self.unread
    }

    /// The size cap, in bytes of segment files.
    pub(crate) fn cap_bytes(&self) -> u64 {
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
            return Err(AppendError::Io(named(&self.dir.path, e)));
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
        self.dir.sync()?;
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
                    let mut file = self.dir.open_file(&segment_name(seg.id), OFlags::RDONLY)?;
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
        self.dir.remove(&segment_name(front.id))
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
        let name = segment_name(id);
        let mut file = self
            .dir
            .create_file(&name, OFlags::WRONLY | OFlags::APPEND)?;
        file.write_all(MAGIC)
            .map_err(|e| named(&self.dir.file_path(&name), e))?;
        self.dir.sync()?;
        Ok((file, MAGIC.len() as u64))
    }

    fn write_cursor(&self) -> io::Result<()> {
        let mut text = String::new();
        for seg in self.segments.iter().filter(|s| s.done > MAGIC.len() as u64) {
            text.push_str(&format!("{:016x} {}\n", seg.id, seg.done));
        }
        if text.is_empty() {
            return self.dir.remove_if_there("cursor");
        }
        // A new temporary each time (O_EXCL, never through a link), then renamed over the
        // cursor: a reader sees the old cursor or the new one, never half of one.
        let tmp = "cursor.tmp";
        let mut file = match self.dir.create_file(tmp, OFlags::WRONLY) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Left by a crash between create and rename.
                self.dir.remove(tmp)?;
                self.dir.create_file(tmp, OFlags::WRONLY)?
            }
            other => other?,
        };
        file.write_all(text.as_bytes())
            .map_err(|e| named(&self.dir.file_path(tmp), e))?;
        drop(file);
        self.dir.rename(tmp, "cursor")
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = self.sync_writer();
        if self.segments.is_empty() {
            // Nothing left: leave no trace (the lock file goes while we still hold it; see
            // the check in `open_in`). The directory goes too if nothing else is in it: by
            // its path, which was checked (no link, nobody else can write on the way), and
            // rmdir removes only an empty directory. A `--user` capture cannot remove it
            // from root's parent; it stays, empty and the user's.
            let _ = self.dir.remove_if_there("cursor");
            let _ = self.dir.remove_if_there("lock");
            let _ = std::fs::remove_dir(&self.dir.path);
        }
    }
}

fn segment_name(id: u64) -> String {
    format!("{id:016x}.seg")
}

fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
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
fn read_cursor(dir: &SpoolDir) -> io::Result<Vec<Pos>> {
    let mut file = match dir.open_file("cursor", OFlags::RDONLY) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    // A cursor is a few lines; more than this is not one of ours.
    (&mut file)
        .take(1 << 20)
        .read_to_end(&mut bytes)
        .map_err(|e| named(&dir.file_path("cursor"), e))?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text
        .lines()
        .filter_map(|line| {
            let (id, offset) = line.trim().split_once(' ')?;
            Some(Pos {
                segment: u64::from_str_radix(id, 16).ok()?,
                offset: offset.parse().ok()?,
            })
        })
        .collect())
}

/// A record that checks out: where it starts and ends in the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u64,
    end: u64,
}

/// The good records of a segment's bytes.
#[derive(Debug, Default)]
struct Scan {
    records: Vec<Span>,
    /// Bytes that are not part of a good record.
    bad_bytes: u64,
    /// Some of those bytes are not a record cut short at the end of the file (a crash while
    /// appending, which is cut off): the segment is damaged and is moved aside.
    damaged: bool,
}

/// The record starting at `at` in `bytes`, if it is whole and its checksum matches. An empty
/// record never counts when resynchronising (`allow_empty` false): a run of zero bytes would
/// look like one.
fn record_at(bytes: &[u8], at: usize, allow_empty: bool) -> Option<Span> {
    let header = bytes.get(at..at.checked_add(RECORD_HEADER_BYTES as usize)?)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD_BYTES || (len == 0 && !allow_empty) {
        return None;
    }
    let start = at + RECORD_HEADER_BYTES as usize;
    let payload = bytes.get(start..start.checked_add(len as usize)?)?;
    (crc32c(payload) == crc).then_some(Span {
        start: at as u64,
        end: (start + len as usize) as u64,
    })
}

/// Whether a record that would end at `end` is followed by the end of the file or by
/// something that could be a record header: checked before a candidate's checksum while
/// resynchronising, so most offsets in damaged bytes cost no checksum at all.
fn plausible_end(bytes: &[u8], end: usize) -> bool {
    if end == bytes.len() {
        return true;
    }
    let Some(next) = end.checked_add(RECORD_HEADER_BYTES as usize) else {
        return false;
    };
    let Some(h) = bytes.get(end..next) else {
        return false;
    };
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    len <= MAX_RECORD_BYTES
}

/// The checksum work (payload bytes) resynchronisation may spend on one segment: a few times
/// its size. Past it the rest of the segment counts as damaged (it is kept in the
/// `.damaged` copy), so random bytes cannot make opening the spool take hours.
fn resync_budget_bytes(segment_len: usize) -> u64 {
    4 * segment_len as u64 + (64 << 20)
}

/// Finds every good record of a segment: from the magic on, record after record; at a bad
/// spot, the next offset where a good record starts (resynchronisation).
fn scan(bytes: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut at = MAGIC.len();
    let magic_ok = bytes.get(..MAGIC.len()) == Some(&MAGIC[..]);
    let mut in_sync = magic_ok;
    let mut bad_from = None;
    let mut budget = resync_budget_bytes(bytes.len());
    while at < bytes.len() {
        let candidate = if in_sync {
            record_at(bytes, at, true)
        } else {
            // Only offsets whose header fits and whose record is followed by something
            // plausible are checksummed, within the budget.
            let header = bytes.get(at..at + RECORD_HEADER_BYTES as usize);
            let len = header.map_or(u64::MAX, |h| {
                u64::from(u32::from_le_bytes([h[0], h[1], h[2], h[3]]))
            });
            let end = (at as u64)
                .saturating_add(RECORD_HEADER_BYTES)
                .saturating_add(len);
            if len == 0
                || len > u64::from(MAX_RECORD_BYTES)
                || end > bytes.len() as u64
                || !plausible_end(bytes, end as usize)
            {
                None
            } else if budget < len {
                // Out of budget: the rest stays unread (and in the damaged copy); `at` is
                // left before the end, which marks the segment damaged below.
                break;
            } else {
                budget -= len;
                record_at(bytes, at, false)
            }
        };
        match candidate {
            Some(span) => {
                if let Some(from) = bad_from.take() {
                    // Good records after bad bytes: damage, not a cut.
                    out.bad_bytes += (at - from) as u64;
                    out.damaged = true;
                }
                out.records.push(span);
                at = span.end as usize;
                in_sync = true;
            }
            None => {
                bad_from.get_or_insert(at);
                in_sync = false;
                at += 1;
            }
        }
    }
    if at < bytes.len() {
        // The budget ran out: whatever the rest is, it is not a clean cut.
        bad_from.get_or_insert(at);
        out.damaged = true;
    }
    if let Some(from) = bad_from {
        out.bad_bytes += (bytes.len() - from) as u64;
        // Cut short: the header is incomplete, or says the payload runs past the end.
        let header = &bytes[from..];
        let torn = header.len() < RECORD_HEADER_BYTES as usize || {
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            len <= MAX_RECORD_BYTES && RECORD_HEADER_BYTES + u64::from(len) > header.len() as u64
        };
        out.damaged |= !torn;
    }
    if !magic_ok {
        out.bad_bytes += bytes.len().min(MAGIC.len()) as u64;
        out.damaged = true;
    }
    out
}

/// Where delivery of a segment resumes, from its cursor entry: a record boundary at or before
/// the cursor (a cursor inside a record sends that record again), the start of the segment
/// when the cursor is past its end. The second value says the cursor was not a boundary.
fn resume_at(records: &[Span], file_len: u64, cursor: Option<u64>) -> (u64, bool) {
    let first = MAGIC.len() as u64;
    let Some(offset) = cursor else {
        return (first, false);
    };
    if offset > file_len {
        return (first, true);
    }
    if offset <= first {
        return (first, offset != first);
    }
    // The last boundary (a record's start, or the end of the last record) not after it.
    let mut snapped = first;
    for r in records {
        if r.start <= offset {
            snapped = r.start;
        }
        if r.end <= offset {
            snapped = r.end;
        }
    }
    (snapped, snapped != offset)
}

/// Checks segment `id` against its cursor entry and repairs it (see the module's note on
/// recovery). `None` when nothing in it is left to send (the file is then gone, or moved
/// aside if damaged).
fn recover_segment(
    dir: &SpoolDir,
    id: u64,
    cursor: Option<u64>,
    recovery: &mut Recovery,
) -> io::Result<Option<Segment>> {
    let name = segment_name(id);
    let path = dir.file_path(&name);
    let mut file = dir.open_file(&name, OFlags::RDWR)?;
    // Read whole: a segment is at most about SEGMENT_BYTES, and only at start.
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| named(&path, e))?;
    let found = scan(&bytes);
    let (done, fixed) = resume_at(&found.records, bytes.len() as u64, cursor);
    if fixed {
        recovery.cursors_fixed += 1;
    }
    let unread: Vec<Span> = found
        .records
        .iter()
        .copied()
        .filter(|r| r.start >= done)
        .collect();
    if found.damaged {
        // Damaged: the good undelivered records go to a fresh file of the same id, the
        // damaged one is kept beside it under another name.
        recovery.damaged_bytes += found.bad_bytes;
        let aside = damaged_name(dir, &name)?;
        if unread.is_empty() {
            dir.rename(&name, &aside)?;
            dir.sync()?;
            recovery.damaged.push(aside);
            return Ok(None);
        }
        let tmp = format!("{name}.tmp");
        let mut out = BufWriter::new(dir.create_file(&tmp, OFlags::WRONLY)?);
        out.write_all(MAGIC).map_err(|e| named(&path, e))?;
        for r in &unread {
            out.write_all(&bytes[r.start as usize..r.end as usize])
                .map_err(|e| named(&path, e))?;
        }
        let fresh = out.into_inner().map_err(|e| named(&path, e.into_error()))?;
        fresh.sync_all().map_err(|e| named(&path, e))?;
        drop(fresh);
        // The damaged file gets its second name before the fresh one replaces it, so a
        // crash in between leaves it under one name or both, never under none.
        rustix::fs::linkat(
            &*dir.fd,
            name.as_str(),
            &*dir.fd,
            aside.as_str(),
            AtFlags::empty(),
        )
        .map_err(|e| named(&path, e.into()))?;
        dir.rename(&tmp, &name)?;
        dir.sync()?;
        recovery.damaged.push(aside);
        let len = MAGIC.len() as u64 + unread.iter().map(|r| r.end - r.start).sum::<u64>();
        return Ok(Some(Segment {
            id,
            len,
            done: MAGIC.len() as u64,
            read_from: MAGIC.len() as u64,
            unread: unread.len() as u64,
        }));
    }
    let good_len = found.records.last().map_or(MAGIC.len() as u64, |r| r.end);
    let torn = found.bad_bytes > 0;
    if torn {
        recovery.torn_records += 1;
        recovery.torn_bytes += found.bad_bytes;
    }
    if unread.is_empty() {
        // Nothing left to send in it (delivered, or only a torn tail).
        dir.remove(&name)?;
        return Ok(None);
    }
    if torn {
        file.set_len(good_len).map_err(|e| named(&path, e))?;
        file.sync_all().map_err(|e| named(&path, e))?;
    }
    Ok(Some(Segment {
        id,
        len: good_len,
        done,
        read_from: done,
        unread: unread.len() as u64,
    }))
}

/// A free name for a damaged copy of `name`: `<name>.damaged`, else `<name>.<n>.damaged`.
fn damaged_name(dir: &SpoolDir, name: &str) -> io::Result<String> {
    for n in 0..1000u32 {
        let candidate = if n == 0 {
            format!("{name}{DAMAGED_SUFFIX}")
        } else {
            format!("{name}.{n}{DAMAGED_SUFFIX}")
        };
        match rustix::fs::statat(&*dir.fd, candidate.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Err(rustix::io::Errno::NOENT) => return Ok(candidate),
            Err(e) => return Err(named(&dir.file_path(&candidate), e.into())),
            Ok(_) => {}
        }
    }
    Err(io::Error::other(format!(
        "{}: too many damaged copies of {name}",
        dir.path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, OpenOptions};
    use std::os::unix::fs::PermissionsExt;

    fn batch(msgs: &[&str]) -> JsonBatch {
        crate::sink::test_batch::of(msgs)
    }

    fn texts(b: &JsonBatch) -> Vec<String> {
        b.messages()
            .map(|m| String::from_utf8(m.to_vec()).unwrap())
            .collect()
    }

    /// A scratch directory under target/ (the system temp dir is world-writable, which the
    /// spool refuses).
    fn temp_dir(what: &str) -> PathBuf {
        let d = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/unit-spool")
            .join(format!(
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
        assert_eq!(crc32c(b""), 0);
        // RFC 3720 B.4: 32 bytes of zeros, of 0xff, and 0..=31.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
        // Longer than one hardware block, odd length and offset: the same as bit by bit.
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let bitwise = |d: &[u8]| {
            let mut crc = !0u32;
            for &b in d {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = if crc & 1 != 0 {
                        (crc >> 1) ^ 0x82F6_3B78
                    } else {
                        crc >> 1
                    };
                }
            }
            !crc
        };
        assert_eq!(crc32c(&data[3..4999]), bitwise(&data[3..4999]));
    }

    /// A segment written by the spool before its checksum came from the `crc32c` crate (the
    /// file in src/sink/testdata was made by that code) still reads, message for message.
    #[test]
    fn a_segment_from_the_table_crc_era_still_reads() {
        let dir = temp_dir("v1-segment");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let name = "0000010000000000.seg";
        let seg = dir.join(name);
        fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("src/sink/testdata/spool-v1-{name}")),
            &seg,
        )
        .unwrap();
        fs::set_permissions(&seg, fs::Permissions::from_mode(0o600)).unwrap();
        let (mut s, rec) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!(rec.damaged, Vec::<String>::new(), "{rec:?}");
        assert_eq!(rec.torn_records, 0, "{rec:?}");
        assert_eq!(rec.records, 5, "{rec:?}");
        let (all, last) = read_all(&mut s);
        assert_eq!(
            all,
            [
                "{\"data\": 1}".to_owned(),
                String::new(),
                "\u{e9}t\u{e9} \u{1f600}".to_owned(),
                "x".repeat(1000),
                "{\"payload\": {\"data\": {\"ether\": {\"src\": \"00:11:22:33:44:55\"}}}}"
                    .to_owned(),
            ]
        );
        s.ack(last.unwrap()).unwrap();
        drop(s);
        let _ = fs::remove_dir_all(&dir);
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

    fn segment_path(dir: &Path, id: u64) -> PathBuf {
        dir.join(segment_name(id))
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_torn_tail_is_cut_and_counted() {
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
        assert!(rec.damaged.is_empty());
        assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
        // Appends go on after the last good record.
        s.append(&batch(&["third"])).unwrap();
        assert_eq!(read_all(&mut s).0, ["first", "second", "third"]);
        drop(s);
        let _ = fs::remove_dir_all(&dir);
    }

    /// A flipped byte in record 3 of 2,009 (the issue's case): the segment is moved aside,
    /// and the 2,008 other records are all still sent, in order.
    #[test]
    fn a_flipped_byte_moves_the_segment_aside_and_keeps_every_good_record() {
        let dir = temp_dir("flip");
        let (mut s, _) = Spool::open(&dir, 1 << 30).unwrap();
        let msgs: Vec<String> = (0..2009).map(|i| format!("{{\"n\":{i}}}")).collect();
        let refs: Vec<&str> = msgs.iter().map(String::as_str).collect();
        s.append(&batch(&refs)).unwrap();
        drop(s);
        let seg = segment_path(&dir, FIRST_ID);
        let mut bytes = fs::read(&seg).unwrap();
        // Record k starts after the magic and k earlier records.
        let third = MAGIC.len() + msgs[..2].iter().map(|m| 8 + m.len()).sum::<usize>();
        bytes[third + 8 + 2] ^= 0x01;
        fs::write(&seg, &bytes).unwrap();
        let (mut s, rec) = Spool::open(&dir, 1 << 30).unwrap();
        assert_eq!(rec.records, 2008);
        assert_eq!(rec.damaged, [format!("{}.damaged", segment_name(FIRST_ID))]);
        assert_eq!(rec.damaged_bytes, 8 + msgs[2].len() as u64);
        assert_eq!(rec.torn_records, 0);
        let (all, last) = read_all(&mut s);
        let mut want = msgs.clone();
        want.remove(2);
        assert_eq!(all, want);
        // The damaged copy is kept as it was for a person to look at.
        assert_eq!(fs::read(dir.join(&rec.damaged[0])).unwrap(), bytes);
        s.ack(last.unwrap()).unwrap();
        drop(s);
        assert_eq!(names_in(&dir), [rec.damaged[0].clone()]);
        let _ = fs::remove_dir_all(&dir);
    }

    /// Damage in the length field and in the magic: resynchronised all the same.
    #[test]
    fn a_bad_length_or_magic_still_resynchronises() {
        let dir = temp_dir("badlen");
        let (mut s, _) = Spool::open(&dir, 1 << 20).unwrap();
        s.append(&batch(&["aa", "bb", "cc"])).unwrap();
        drop(s);
        let seg = segment_path(&dir, FIRST_ID);
        let mut bytes = fs::read(&seg).unwrap();
        bytes[0] ^= 0xff; // the magic
        bytes[MAGIC.len() + 3] = 0x7f; // record 0's length: far past the end
        fs::write(&seg, &bytes).unwrap();
        let (mut s, rec) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!(rec.records, 2);
        assert_eq!(rec.damaged.len(), 1);
        assert_eq!(read_all(&mut s).0, ["bb", "cc"]);
        drop(s);
        let _ = fs::remove_dir_all(&dir);
    }

    /// A cursor inside a record moves back to the record's start (sent again, not stuck);
    /// a cursor past the end deletes nothing (the segment is sent again whole).
    #[test]
    fn a_bad_cursor_is_snapped_and_never_deletes_unread_records() {
        let dir = temp_dir("cursor");
        let (mut s, _) = Spool::open(&dir, 1 << 20).unwrap();
        s.append(&batch(&["one", "two", "three"])).unwrap();
        drop(s);
        let two_at = MAGIC.len() as u64 + 8 + 3;
        let id = format!("{FIRST_ID:016x}");
        fs::write(dir.join("cursor"), format!("{id} {}\n", two_at + 5)).unwrap();
        let (mut s, rec) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!((rec.records, rec.cursors_fixed), (2, 1));
        assert_eq!(read_all(&mut s).0, ["two", "three"]);
        drop(s);
        fs::write(dir.join("cursor"), format!("{id} 999999\n")).unwrap();
        let (mut s, rec) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!((rec.records, rec.cursors_fixed), (3, 1));
        assert_eq!(read_all(&mut s).0, ["one", "two", "three"]);
        drop(s);
        // A good cursor is kept as it is.
        fs::write(dir.join("cursor"), format!("{id} {two_at}\n")).unwrap();
        let (mut s, rec) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!((rec.records, rec.cursors_fixed), (2, 0));
        assert_eq!(read_all(&mut s).0, ["two", "three"]);
        drop(s);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn unsafe_paths_are_refused_by_name() {
        // World-writable (sticky or not) on the path: refused.
        let e = SpoolDir::open(&std::env::temp_dir().join("npf-never-made/spool")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            e.to_string()
                .contains("/tmp is writable by group or others"),
            "{e}"
        );
        assert!(!std::env::temp_dir().join("npf-never-made").exists());
        // A symbolic link as a component: refused, not followed.
        let base = temp_dir("links");
        fs::create_dir_all(base.join("real")).unwrap();
        std::os::unix::fs::symlink(base.join("real"), base.join("link")).unwrap();
        let e = SpoolDir::open(&base.join("link/spool")).unwrap_err();
        assert!(e.to_string().contains("link is a symbolic link"), "{e}");
        assert!(!base.join("real/spool").exists());
        // Group-writable: refused.
        fs::create_dir_all(base.join("gw")).unwrap();
        fs::set_permissions(base.join("gw"), fs::Permissions::from_mode(0o770)).unwrap();
        let e = SpoolDir::open(&base.join("gw/spool")).unwrap_err();
        assert!(
            e.to_string().contains("gw is writable by group or others"),
            "{e}"
        );
        // What it creates is 0700, and `..` cannot step around a check.
        let made = SpoolDir::open(&base.join("gw/../new/spool")).unwrap();
        assert_eq!(made.path(), base.join("new/spool"));
        let mode = fs::metadata(base.join("new/spool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn files_are_made_0600_and_links_in_the_spool_are_not_followed() {
        let dir = temp_dir("files");
        let (mut s, _) = Spool::open(&dir, 1 << 20).unwrap();
        s.append(&batch(&["a", "b"])).unwrap();
        let mut out = JsonBatch::with_capacity();
        let p = s.read_batch(&mut out, 1, 1 << 20).unwrap().unwrap();
        s.ack(p).unwrap();
        for name in [segment_name(FIRST_ID), "cursor".into(), "lock".into()] {
            let mode = fs::metadata(dir.join(&name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        drop(s);
        // A link where a segment should be: the spool refuses to open, the target is
        // untouched.
        let victim = temp_dir("files-victim");
        fs::create_dir_all(&victim).unwrap();
        fs::write(victim.join("target"), b"precious").unwrap();
        std::os::unix::fs::symlink(victim.join("target"), dir.join(segment_name(7))).unwrap();
        let e = Spool::open(&dir, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        assert_eq!(fs::read(victim.join("target")).unwrap(), b"precious");
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&victim);
    }

    fn encoded(msgs: &[Vec<u8>]) -> (Vec<u8>, Vec<Span>) {
        let mut bytes = MAGIC.to_vec();
        let mut spans = Vec::new();
        for m in msgs {
            let start = bytes.len() as u64;
            write_record(&mut bytes, m).unwrap();
            spans.push(Span {
                start,
                end: bytes.len() as u64,
            });
        }
        (bytes, spans)
    }

    /// Random bytes after a few good records: opening stays fast (the checksum work of the
    /// resynchronisation is bounded), the good records are found, the rest is damage.
    #[test]
    fn random_bytes_after_good_records_are_scanned_quickly() {
        let msgs: Vec<Vec<u8>> = (0..5)
            .map(|i| format!("{{\"n\":{i}}}").into_bytes())
            .collect();
        let (mut bytes, spans) = encoded(&msgs);
        // xorshift: reproducible noise without a dependency.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..(8 << 20) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(x as u8);
        }
        let started = Instant::now();
        let found = scan(&bytes);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
        assert!(found.damaged);
        assert_eq!(&found.records[..5], &spans[..]);
    }

    proptest::proptest! {
        /// File bytes never make the scan panic, and what it finds are whole records.
        #[test]
        fn any_bytes_scan_without_panicking(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let found = scan(&bytes);
            for r in &found.records {
                proptest::prop_assert!(r.end as usize <= bytes.len());
                proptest::prop_assert!(record_at(&bytes, r.start as usize, true) == Some(*r));
            }
        }

        /// One flipped byte anywhere after the magic costs at most the record it falls in:
        /// every other record is found again, in order.
        #[test]
        fn one_flipped_byte_loses_at_most_its_record(
            msgs in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64), 1..40),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let (mut bytes, spans) = encoded(&msgs);
            let pos = MAGIC.len() + at.index(bytes.len() - MAGIC.len());
            bytes[pos] ^= 1 << bit;
            let found = scan(&bytes);
            let hit = spans.iter().position(|s| (s.start as usize..s.end as usize).contains(&pos));
            for (i, s) in spans.iter().enumerate() {
                if Some(i) != hit {
                    proptest::prop_assert!(found.records.contains(s), "record {} lost", i);
                }
            }
            proptest::prop_assert!(found.damaged || found.records.len() == spans.len() - 1);
        }
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
