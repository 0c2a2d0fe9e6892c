//! `-w FILE`: the frames read or captured, written back out as pcap or pcapng, as tcpdump's
//! `-w` does, with the rotation of `-G`, `-C` and `-W`.
//!
//! Formats (draft-ietf-opsawg-pcap, draft-ietf-opsawg-pcapng):
//! - pcap with nanosecond timestamps: magic 0xa1b23c4d in this host's byte order, version
//!   2.4, one link type per file. A frame of another link type (a `read` of files with
//!   different link types) is an error that names `--pcapng`.
//! - pcapng: one Section Header Block per file, one Interface Description Block per link type
//!   met (`if_tsresol` = 9: nanoseconds), Enhanced Packet Blocks.
//!
//! The frame bytes are copied once, from the ring block or the reader's buffer straight into
//! this writer's buffer, by the thread that holds the frame (a live worker never hands ring
//! bytes to another thread). Several capture workers share one writer behind a mutex.
//!
//! Files: created with `O_NOFOLLOW` and mode 0600 (captures hold other people's traffic).
//! An existing regular file is emptied only when this user owns it and it has no other hard
//! link (so a link planted in a shared folder cannot make root truncate someone else's file);
//! a FIFO or character device (`/dev/null`) is written without truncating.
//!
//! Rotation (checked before each frame is written, as tcpdump does):
//! - `-C MB`: when the current file is larger than MB x 1,000,000 bytes, the next file is
//!   opened: FILE, FILE1, FILE2, ... ; with `-W N` the names are FILE0 .. FILE(N-1) (zero
//!   padded to the width of N-1) and the ring starts again at FILE0.
//! - `-G SECS`: every SECS seconds (wall clock, checked when a frame arrives) a file named by
//!   expanding FILE as a strftime pattern (UTC) is opened; with `-C` as well, size rotations
//!   inside one interval add the counter. With `-W N` only the newest N files are kept (the
//!   oldest one this run wrote is removed): a ring, where tcpdump would exit instead.
//! - Each file is flushed and closed before the next one is opened; `--post-rotate CMD` then
//!   runs `CMD FILE` (no shell, as `tcpdump -z`) on it, and on the last file at the end.

use crate::create::open_for_writing as open_for_capture;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The magic of nanosecond pcap, written in this host's byte order.
const PCAP_NS_MAGIC: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_EPB: u32 = 6;
const PCAPNG_BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// `if_tsresol` option code (draft-ietf-opsawg-pcapng, 4.2): 9 means 10^-9 s.
const OPT_IF_TSRESOL: u16 = 9;
/// Buffer in front of each file: large enough that a busy capture writes in big chunks.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;
/// tcpdump's `-C` unit.
pub const ROTATE_UNIT_BYTES: u64 = 1_000_000;

/// pcap or pcapng.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcapFormat {
    /// pcap with nanosecond timestamps (magic 0xa1b23c4d); one link type per file.
    Pcap,
    /// pcapng: one section per file, an interface per link type met.
    PcapNg,
}

/// What `-w` and its rotation flags asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapOutConfig {
    /// The file (or strftime pattern with `-G`); "-" is stdout.
    pub path: PathBuf,
    /// pcap, or pcapng with `--pcapng`.
    pub format: PcapFormat,
    /// `-G`: a new file this often.
    pub rotate_every: Option<Duration>,
    /// `-C`: a new file once the current one is larger than this.
    pub rotate_bytes: Option<u64>,
    /// `-W`: how many files the ring holds.
    pub file_count: Option<u32>,
    /// `--post-rotate`: run with each closed file as its one argument.
    pub post_rotate: Option<PathBuf>,
    /// Snapshot length written in the headers.
    pub snaplen: u32,
}

impl PcapOutConfig {
    /// A plain `-w PATH` pcap file.
    pub fn new(path: impl Into<PathBuf>) -> PcapOutConfig {
        PcapOutConfig {
            path: path.into(),
            format: PcapFormat::Pcap,
            rotate_every: None,
            rotate_bytes: None,
            file_count: None,
            post_rotate: None,
            snaplen: 262_144,
        }
    }

    /// Whether the frames go to stdout (`-w -`).
    pub fn is_stdout(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    /// The settings that cannot work together, as a usage message.
    pub fn check(&self) -> Result<(), String> {
        if self.is_stdout()
            && (self.rotate_every.is_some()
                || self.rotate_bytes.is_some()
                || self.file_count.is_some()
                || self.post_rotate.is_some())
        {
            return Err(
                "-w - (stdout) cannot rotate: -G, -C, -W and --post-rotate need a file".into(),
            );
        }
        if self.file_count.is_some() && self.rotate_bytes.is_none() && self.rotate_every.is_none() {
            return Err("-W needs -C or -G (it sets how many rotated files are kept)".into());
        }
        if self.rotate_every.is_some() {
            strftime(&self.path, SystemTime::now())?;
        }
        Ok(())
    }

    /// The name of file `counter` (size rotations) in the interval that started at `at`.
    fn name(&self, at: SystemTime, counter: u64) -> Result<PathBuf, String> {
        let base = if self.rotate_every.is_some() {
            strftime(&self.path, at)?
        } else {
            self.path.clone()
        };
        let mut name = base.into_os_string();
        match self.file_count {
            Some(n) if self.rotate_bytes.is_some() => {
                let width = (n.saturating_sub(1)).max(1).to_string().len();
                name.push(format!("{:0width$}", counter % u64::from(n.max(1))));
            }
            _ if counter > 0 => name.push(counter.to_string()),
            _ => {}
        }
        Ok(PathBuf::from(name))
    }
}

/// `pattern` with its strftime conversions expanded for `at`, in UTC.
fn strftime(pattern: &Path, at: SystemTime) -> Result<PathBuf, String> {
    let text = pattern
        .to_str()
        .ok_or_else(|| format!("{}: a -G file name must be UTF-8", pattern.display()))?;
    let items = time::format_description::parse_strftime_borrowed(text)
        .map_err(|e| format!("{text}: not a strftime pattern: {e}"))?;
    let at = time::OffsetDateTime::from(at);
    at.format(&items)
        .map(PathBuf::from)
        .map_err(|e| format!("{text}: cannot expand: {e}"))
}

/// Where the bytes go.
enum Out {
    File {
        file: BufWriter<File>,
        path: PathBuf,
    },
    Stdout(BufWriter<io::Stdout>),
}

impl Out {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Out::File { file, .. } => file,
            Out::Stdout(s) => s,
        }
    }
}

/// Writes frames as pcap or pcapng, rotating as configured. Not `Sync`: capture workers share
/// it in a `Mutex`.
pub struct PcapWriter {
    cfg: PcapOutConfig,
    out: Option<Out>,
    /// Header bytes written to the current file (the header waits for the first frame's link
    /// type, so an empty run still gets a file that names one).
    header_written: bool,
    /// pcap: the current file's link type. pcapng: the first one met.
    link_type: Option<u32>,
    /// pcapng: interface id of each link type in the current file.
    interfaces: HashMap<u32, u32>,
    file_bytes: u64,
    /// Size rotations in the current `-G` interval (or in the whole run).
    counter: u64,
    interval_started: Instant,
    interval_started_at: SystemTime,
    /// `-G -W`: the files of this run, oldest first, for the ring.
    kept: VecDeque<PathBuf>,
    children: Vec<Child>,
    /// Files completed (closed) so far.
    pub files_closed: u64,
    /// Frames written so far, all files.
    pub frames_written: u64,
}

impl std::fmt::Debug for PcapWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapWriter")
            .field("cfg", &self.cfg)
            .field("frames_written", &self.frames_written)
            .finish_non_exhaustive()
    }
}

impl PcapWriter {
    /// Opens the first file (so a path that cannot be written fails before anything runs).
    /// `link_type`: known up front (live capture) or `None` (taken from the first frame).
    pub fn create(cfg: PcapOutConfig, link_type: Option<u32>) -> io::Result<PcapWriter> {
        cfg.check()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let now = SystemTime::now();
        let mut w = PcapWriter {
            cfg,
            out: None,
            header_written: false,
            link_type,
            interfaces: HashMap::new(),
            file_bytes: 0,
            counter: 0,
            interval_started: Instant::now(),
            interval_started_at: now,
            kept: VecDeque::new(),
            children: Vec::new(),
            files_closed: 0,
            frames_written: 0,
        };
        w.open_next()?;
        if w.link_type.is_some() {
            w.write_header()?;
        }
        Ok(w)
    }

    /// The file being written ("-" for stdout).
    pub fn current_path(&self) -> Option<&Path> {
        match &self.out {
            Some(Out::File { path, .. }) => Some(path),
            Some(Out::Stdout(_)) => Some(Path::new("-")),
            None => None,
        }
    }

    /// Writes one frame. `time_ns`: capture time since the epoch; `wire_len`: length on the
    /// wire (at least `data.len()`).
    pub fn write(
        &mut self,
        link_type: u32,
        time_ns: i64,
        wire_len: u32,
        data: &[u8],
    ) -> io::Result<()> {
        self.reap_children();
        self.rotate_if_due()?;
        if self.link_type.is_none() {
            self.link_type = Some(link_type);
        }
        if !self.header_written {
            self.write_header()?;
        }
        let cap_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let data = &data[..cap_len as usize];
        let wire_len = wire_len.max(cap_len);
        let time_ns = u64::try_from(time_ns).unwrap_or(0);
        // Record header into `head`, padding and trailer into `tail`; the frame between them
        // goes from the caller's buffer straight into the file buffer.
        let mut head = [0u8; 28];
        let mut tail = [0u8; 7];
        let (head_len, tail_len) = match self.cfg.format {
            PcapFormat::Pcap => {
                if self.link_type != Some(link_type) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "a frame of link type {link_type} cannot go into a pcap file of \
                             link type {} (pcap has one per file); use --pcapng",
                            self.link_type.unwrap_or(0)
                        ),
                    ));
                }
                let secs = u32::try_from(time_ns / 1_000_000_000).unwrap_or(u32::MAX);
                let nanos = (time_ns % 1_000_000_000) as u32;
                put_u32s(&mut head, &[secs, nanos, cap_len, wire_len]);
                (16, 0)
            }
            PcapFormat::PcapNg => {
                if !self.interfaces.contains_key(&link_type) {
                    self.write_idb(link_type)?;
                }
                let id = self.interfaces.get(&link_type).copied().unwrap_or(0);
                let pad = (4 - data.len() % 4) % 4;
                let total = u32::try_from(32 + data.len() + pad).unwrap_or(u32::MAX);
                put_u32s(
                    &mut head,
                    &[
                        PCAPNG_EPB,
                        total,
                        id,
                        (time_ns >> 32) as u32,
                        time_ns as u32,
                        cap_len,
                        wire_len,
                    ],
                );
                tail[pad..pad + 4].copy_from_slice(&total.to_ne_bytes());
                (28, pad + 4)
            }
        };
        let out = self.out_mut()?;
        out.write_all(&head[..head_len])?;
        out.write_all(data)?;
        out.write_all(&tail[..tail_len])?;
        self.file_bytes += (head_len + data.len() + tail_len) as u64;
        self.frames_written += 1;
        Ok(())
    }

    /// Flushes what is buffered (stdout readers see frames at once; files are complete).
    pub fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(o) => o.writer().flush(),
            None => Ok(()),
        }
    }

    /// Closes the last file (header written even if no frame came; `default_link_type` then),
    /// runs `--post-rotate` on it and waits for every `--post-rotate` command.
    pub fn finish(mut self, default_link_type: u32) -> io::Result<()> {
        if self.link_type.is_none() {
            self.link_type = Some(default_link_type);
        }
        let result = if self.header_written {
            Ok(())
        } else {
            self.write_header()
        };
        let closed = self.close_current();
        for mut c in std::mem::take(&mut self.children) {
            let _ = c.wait();
        }
        result.and(closed)
    }

    fn out_mut(&mut self) -> io::Result<&mut dyn Write> {
        match self.out.as_mut() {
            Some(o) => Ok(o.writer()),
            None => Err(io::Error::other("the pcap output is closed")),
        }
    }

    fn write_header(&mut self) -> io::Result<()> {
        let link_type = self.link_type.unwrap_or(1);
        let mut h = Vec::with_capacity(32);
        match self.cfg.format {
            PcapFormat::Pcap => {
                h.extend_from_slice(&PCAP_NS_MAGIC.to_ne_bytes());
                h.extend_from_slice(&2u16.to_ne_bytes());
                h.extend_from_slice(&4u16.to_ne_bytes());
                h.extend_from_slice(&0i32.to_ne_bytes()); // thiszone
                h.extend_from_slice(&0u32.to_ne_bytes()); // sigfigs
                h.extend_from_slice(&self.cfg.snaplen.to_ne_bytes());
                h.extend_from_slice(&link_type.to_ne_bytes());
            }
            PcapFormat::PcapNg => {
                h.extend_from_slice(&PCAPNG_SHB.to_ne_bytes());
                h.extend_from_slice(&28u32.to_ne_bytes());
                h.extend_from_slice(&PCAPNG_BYTE_ORDER_MAGIC.to_ne_bytes());
                h.extend_from_slice(&1u16.to_ne_bytes());
                h.extend_from_slice(&0u16.to_ne_bytes());
                h.extend_from_slice(&(-1i64).to_ne_bytes()); // section length unknown
                h.extend_from_slice(&28u32.to_ne_bytes());
            }
        }
        self.out_mut()?.write_all(&h)?;
        self.file_bytes += h.len() as u64;
        self.header_written = true;
        if self.cfg.format == PcapFormat::PcapNg {
            self.write_idb(link_type)?;
        }
        Ok(())
    }

    fn write_idb(&mut self, link_type: u32) -> io::Result<()> {
        let id = u32::try_from(self.interfaces.len()).unwrap_or(u32::MAX);
        let mut b = Vec::with_capacity(32);
        b.extend_from_slice(&PCAPNG_IDB.to_ne_bytes());
        b.extend_from_slice(&32u32.to_ne_bytes());
        b.extend_from_slice(&(link_type as u16).to_ne_bytes());
        b.extend_from_slice(&0u16.to_ne_bytes());
        b.extend_from_slice(&self.cfg.snaplen.to_ne_bytes());
        b.extend_from_slice(&OPT_IF_TSRESOL.to_ne_bytes());
        b.extend_from_slice(&1u16.to_ne_bytes());
        b.extend_from_slice(&[9, 0, 0, 0]);
        b.extend_from_slice(&0u32.to_ne_bytes()); // opt_endofopt
        b.extend_from_slice(&32u32.to_ne_bytes());
        self.out_mut()?.write_all(&b)?;
        self.file_bytes += b.len() as u64;
        self.interfaces.insert(link_type, id);
        Ok(())
    }

    fn rotate_if_due(&mut self) -> io::Result<()> {
        if let Some(every) = self.cfg.rotate_every {
            if self.interval_started.elapsed() >= every {
                self.interval_started = Instant::now();
                self.interval_started_at = SystemTime::now();
                self.counter = 0;
                return self.rotate();
            }
        }
        if let Some(limit) = self.cfg.rotate_bytes {
            if self.file_bytes > limit {
                self.counter += 1;
                return self.rotate();
            }
        }
        Ok(())
    }

    /// Closes the current file and opens the next, header included.
    fn rotate(&mut self) -> io::Result<()> {
        self.close_current()?;
        self.open_next()?;
        self.write_header()
    }

    /// Flushes and closes the current file, then hands it to `--post-rotate`.
    fn close_current(&mut self) -> io::Result<()> {
        match self.out.take() {
            Some(Out::File { file, path }) => {
                let file = file.into_inner().map_err(|e| e.into_error())?;
                file.sync_data().or_else(|e| {
                    // A FIFO or /dev/null cannot be synced; that is no failure.
                    if e.raw_os_error() == Some(libc::EINVAL) {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })?;
                drop(file);
                self.files_closed += 1;
                if let Some(cmd) = &self.cfg.post_rotate {
                    match Command::new(cmd).arg(&path).stdin(Stdio::null()).spawn() {
                        Ok(c) => self.children.push(c),
                        Err(e) => {
                            return Err(io::Error::new(
                                e.kind(),
                                format!("--post-rotate {}: {e}", cmd.display()),
                            ))
                        }
                    }
                }
                Ok(())
            }
            Some(Out::Stdout(mut s)) => s.flush(),
            None => Ok(()),
        }
    }

    /// Opens the file the rotation state names (header not yet written).
    fn open_next(&mut self) -> io::Result<()> {
        self.header_written = false;
        self.interfaces.clear();
        self.file_bytes = 0;
        if self.cfg.is_stdout() {
            self.out = Some(Out::Stdout(BufWriter::with_capacity(
                WRITE_BUFFER_BYTES,
                io::stdout(),
            )));
            return Ok(());
        }
        let path = self
            .cfg
            .name(self.interval_started_at, self.counter)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if self.cfg.rotate_every.is_some() {
            if let Some(n) = self.cfg.file_count {
                // The oldest file goes before the new one is created, so there are never
                // more than N at a time.
                if !self.kept.contains(&path) {
                    while self.kept.len() >= n as usize {
                        if let Some(old) = self.kept.pop_front() {
                            // Ours (created by this run); a failure leaves one file too many.
                            let _ = std::fs::remove_file(old);
                        }
                    }
                    self.kept.push_back(path.clone());
                }
            }
        }
        let file = open_for_capture(&path)?;
        self.out = Some(Out::File {
            file: BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
            path,
        });
        Ok(())
    }

    fn reap_children(&mut self) {
        self.children
            .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
    }
}

/// Writes `values` one after the other into the start of `buf`, in this host's byte order.
fn put_u32s(buf: &mut [u8], values: &[u32]) {
    for (chunk, v) in buf.chunks_exact_mut(4).zip(values) {
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::pcap_file::{CaptureFormat, CaptureReader};
    use std::os::unix::fs::MetadataExt;

    fn dir(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("pcapw-{tag}-"))
            .tempdir()
            .unwrap()
    }

    fn read_all(path: &Path) -> Vec<(u32, i64, u32, Vec<u8>)> {
        let mut r = CaptureReader::open(path).unwrap();
        let mut out = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            out.push((f.link_type, f.time_ns, f.wire_len, f.data.to_vec()));
        }
        out
    }

    #[test]
    fn pcap_and_pcapng_round_trip_with_nanoseconds() {
        for format in [PcapFormat::Pcap, PcapFormat::PcapNg] {
            let d = dir("rt");
            let path = d.path().join("out");
            let mut cfg = PcapOutConfig::new(&path);
            cfg.format = format;
            let mut w = PcapWriter::create(cfg, None).unwrap();
            w.write(1, 1_700_000_000_123_456_789, 60, &[1, 2, 3])
                .unwrap();
            w.write(1, 5, 4, &[9; 4]).unwrap();
            w.finish(1).unwrap();
            let r = CaptureReader::open(&path).unwrap();
            match (format, r.format()) {
                (PcapFormat::Pcap, CaptureFormat::Pcap { nanosecond, .. }) => assert!(nanosecond),
                (PcapFormat::PcapNg, CaptureFormat::PcapNg) => {}
                other => panic!("{other:?}"),
            }
            assert_eq!(
                read_all(&path),
                [
                    (1, 1_700_000_000_123_456_789, 60, vec![1, 2, 3]),
                    (1, 5, 4, vec![9; 4])
                ]
            );
        }
    }

    #[test]
    fn pcap_refuses_a_second_link_type_pcapng_takes_it() {
        let d = dir("lt");
        let mut w = PcapWriter::create(PcapOutConfig::new(d.path().join("a")), None).unwrap();
        w.write(1, 0, 1, &[0]).unwrap();
        let e = w.write(101, 0, 1, &[0x45]).unwrap_err();
        assert!(e.to_string().contains("--pcapng"), "{e}");
        let mut cfg = PcapOutConfig::new(d.path().join("b"));
        cfg.format = PcapFormat::PcapNg;
        let mut w = PcapWriter::create(cfg, None).unwrap();
        w.write(1, 0, 1, &[0]).unwrap();
        w.write(101, 0, 1, &[0x45]).unwrap();
        w.finish(1).unwrap();
        let types: Vec<u32> = read_all(&d.path().join("b")).iter().map(|f| f.0).collect();
        assert_eq!(types, [1, 101]);
    }

    #[test]
    fn empty_run_still_writes_a_readable_file() {
        let d = dir("empty");
        let path = d.path().join("e.pcap");
        PcapWriter::create(PcapOutConfig::new(&path), None)
            .unwrap()
            .finish(1)
            .unwrap();
        let r = CaptureReader::open(&path).unwrap();
        assert_eq!(r.link_types(), [1]);
    }

    #[test]
    fn size_rotation_names_files_as_tcpdump() {
        let d = dir("size");
        let base = d.path().join("cap");
        let mut cfg = PcapOutConfig::new(&base);
        cfg.rotate_bytes = Some(100);
        let mut w = PcapWriter::create(cfg.clone(), Some(1)).unwrap();
        for i in 0..10u8 {
            w.write(1, 0, 60, &[i; 60]).unwrap();
        }
        w.finish(1).unwrap();
        // 24-byte header + 76 bytes per frame: a file passes 100 bytes after two frames.
        let mut total = 0;
        for name in ["cap", "cap1", "cap2", "cap3", "cap4"] {
            let n = read_all(&d.path().join(name)).len();
            assert_eq!(n, 2, "{name}");
            total += n;
        }
        assert_eq!(total, 10);
        assert!(!d.path().join("cap5").exists());

        // -W 3: a ring cap0, cap1, cap2.
        let d = dir("ring");
        cfg.path = d.path().join("cap");
        cfg.file_count = Some(3);
        let mut w = PcapWriter::create(cfg, Some(1)).unwrap();
        for i in 0..10u8 {
            w.write(1, 0, 60, &[i; 60]).unwrap();
        }
        w.finish(1).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["cap0", "cap1", "cap2"]);
        // Frames 8 and 9 went to the fifth file, which is cap1 again (cap0 holds 6, 7).
        let firsts: Vec<u8> = read_all(&d.path().join("cap1"))
            .iter()
            .map(|f| f.3[0])
            .collect();
        assert_eq!(firsts, [8, 9]);
    }

    #[test]
    fn strftime_names() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            strftime(Path::new("/x/cap-%Y%m%d-%H%M%S.pcap"), at).unwrap(),
            PathBuf::from("/x/cap-20231114-221320.pcap")
        );
        let mut cfg = PcapOutConfig::new("-");
        cfg.rotate_bytes = Some(1);
        assert!(cfg.check().is_err());
        let mut cfg = PcapOutConfig::new("/x/y");
        cfg.file_count = Some(2);
        assert!(cfg.check().is_err());
    }

    #[test]
    fn links_and_foreign_files_are_not_written_through() {
        let d = dir("sec");
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = open_for_capture(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let hard = d.path().join("hard");
        std::fs::hard_link(&victim, &hard).unwrap();
        let e = open_for_capture(&hard).unwrap_err();
        assert!(e.to_string().contains("hard links"), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        // A new file is private.
        let new = d.path().join("new");
        open_for_capture(&new).unwrap();
        assert_eq!(std::fs::metadata(&new).unwrap().mode() & 0o777, 0o600);
        // /dev/null is written as it is.
        open_for_capture(Path::new("/dev/null")).unwrap();
    }
}
