//! `--direct-io`: JSON lines written to a regular file with `O_DIRECT`, past the page cache.
//!
//! A buffered write of live traffic costs the publisher thread much of its CPU in the kernel:
//! copying into the page cache, allocating pages, delayed allocation (issue 13). With
//! `O_DIRECT` the block layer takes the bytes from our buffer, so batches are gathered into
//! one buffer aligned as the file system asks (`statx` `STATX_DIOALIGN`, Linux 6.1; else 4096)
//! and written in whole aligned blocks.
//!
//! The file stays what the buffered path makes of it: every record handed to the sink is in
//! the file when the write returns (a `tail -f` reader does not wait for a block to fill), and
//! at the end it holds exactly the bytes written, no padding. The part of the last block that
//! is not full (the tail) is written through the page cache (`O_DIRECT` cleared, `pwrite` at
//! its offset, the flag set again) and kept at the start of the buffer; the next write
//! finishes that block the same way and writes the whole blocks after it directly. Rewriting
//! the tail's block with `O_DIRECT` instead would make the kernel write back and wait for its
//! dirty page first (`Documentation/filesystems/iomap/operations.rst`, "Direct I/O"): in live
//! capture here that cost the publisher thread about a quarter more CPU time (issue 13). Bytes
//! go out in file order, so a reader never meets a hole. (That no direct write meets a dirty
//! page holds where a page is no larger than the alignment, 4 KiB pages; with 64 KiB pages the
//! tail's page can reach into the next direct write, which then waits for its writeback: the
//! file is the same, only slower.)
//!
//! Where direct I/O is refused (a FIFO or character device such as /dev/null, a file system
//! that says so in `STATX_DIOALIGN`, tmpfs, `EINVAL` from `fcntl` or from the first direct
//! write) the sink writes through the page cache and says so once on stderr.

use super::{log, FileSink, Sink};
use crate::encode::batch::JsonBatch;
use rustix::fs::{AtFlags, OFlags, StatxFlags};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The buffer batches are gathered in; a write call of more goes out in direct writes of this
/// size. Four full batches ([`crate::encode::batch::BATCH_BYTES`]); a multiple of every
/// alignment taken.
pub const BUFFER_BYTES: usize = 1 << 20;

/// The alignment used when the kernel does not report one (before Linux 6.1): the page size
/// and the sector size of 4Kn disks, a multiple of 512.
const DEFAULT_ALIGN_BYTES: usize = 4096;

/// `statfs` `f_type` of tmpfs (`include/uapi/linux/magic.h`): since Linux 6.6 it accepts
/// `O_DIRECT` but only copies into the page cache, and it reports no `STATX_DIOALIGN`.
const TMPFS_MAGIC: u64 = 0x0102_1994;

/// The line said once when the output cannot be written with `O_DIRECT`.
fn say_refused(path: &Path) {
    log(format_args!(
        "--direct-io: {} does not support direct I/O; writing through the page cache",
        path.display()
    ));
}

/// Opens the sink of `-o PATH --direct-io` on `file` (opened and emptied by
/// [`crate::create::open_for_writing`]): with `O_DIRECT` where the file takes it, else the
/// buffered file sink, after one line on stderr.
pub(crate) fn open(file: File, path: &Path) -> Box<dyn Sink> {
    let Some(align) = direct_alignment(&file) else {
        say_refused(path);
        return Box::new(FileSink { file });
    };
    let flags = rustix::fs::fcntl_getfl(&file).map(|f| f - OFlags::DIRECT);
    match flags
        .and_then(|flags| rustix::fs::fcntl_setfl(&file, flags | OFlags::DIRECT).map(|()| flags))
    {
        Ok(flags) => Box::new(DirectFileSink {
            out: DirectWriter::new(
                OsFile {
                    file,
                    flags,
                    direct: true,
                },
                align,
                BUFFER_BYTES,
            ),
            path: path.to_path_buf(),
        }),
        Err(_) => {
            say_refused(path);
            Box::new(FileSink { file })
        }
    }
}

/// The alignment (bytes, a power of two, of memory, file offsets and lengths alike) of direct
/// writes to `file`, or `None` where direct I/O is not supported or not worth it.
fn direct_alignment(file: &File) -> Option<usize> {
    if !file.metadata().ok()?.file_type().is_file() {
        return None;
    }
    let reported = rustix::fs::statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN)
        .ok()
        .filter(|st| StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::DIOALIGN));
    match reported {
        // "If direct I/O is not supported on this file, both will be 0" (statx(2)).
        Some(st) => alignment_of(st.stx_dio_mem_align, st.stx_dio_offset_align),
        // Linux before 6.1, or a file system that does not say: try with 4096, and the first
        // write tells (EINVAL). tmpfs accepts O_DIRECT and gains nothing from it.
        None => {
            let tmpfs = rustix::fs::fstatfs(file)
                .ok()
                .and_then(|fs| u64::try_from(fs.f_type).ok())
                == Some(TMPFS_MAGIC);
            (!tmpfs).then_some(DEFAULT_ALIGN_BYTES)
        }
    }
}

/// The one alignment used for `STATX_DIOALIGN`'s memory and offset alignments: at least
/// 4096, a power of two dividing [`BUFFER_BYTES`]; `None` when direct I/O is unsupported (0)
/// or asks for more.
fn alignment_of(mem_align: u32, offset_align: u32) -> Option<usize> {
    if mem_align == 0 || offset_align == 0 {
        return None;
    }
    let align = usize::try_from(mem_align.max(offset_align))
        .ok()?
        .max(DEFAULT_ALIGN_BYTES);
    (align.is_power_of_two() && align <= BUFFER_BYTES / 4).then_some(align)
}

/// What [`DirectWriter`] asks of the file (a trait, so that the tail logic is tested
/// against a recording fake).
pub(crate) trait Positioned {
    /// One write of `bytes` at `offset` with `O_DIRECT` (aligned); may be short.
    fn write_direct(&mut self, bytes: &[u8], offset: u64) -> io::Result<usize>;
    /// All of `bytes` at `offset`, through the page cache.
    fn write_buffered(&mut self, bytes: &[u8], offset: u64) -> io::Result<()>;
    /// Direct I/O was refused: write through the page cache from now on.
    fn give_up_direct(&mut self) -> io::Result<()>;
}

/// The output file, `O_DIRECT` set except while a tail is written (or after it was refused).
struct OsFile {
    file: File,
    /// Its file status flags without `O_DIRECT` (read once: nothing else changes them).
    flags: OFlags,
    /// Direct I/O not refused: `O_DIRECT` is set between buffered writes.
    direct: bool,
}

impl OsFile {
    /// Sets or clears `O_DIRECT` (a file status flag: `fcntl(F_SETFL)`).
    fn set_direct(&self, on: bool) -> io::Result<()> {
        let flags = if on {
            self.flags | OFlags::DIRECT
        } else {
            self.flags
        };
        rustix::fs::fcntl_setfl(&self.file, flags)?;
        Ok(())
    }
}

impl Positioned for OsFile {
    fn write_direct(&mut self, bytes: &[u8], offset: u64) -> io::Result<usize> {
        self.file.write_at(bytes, offset)
    }

    fn write_buffered(&mut self, bytes: &[u8], offset: u64) -> io::Result<()> {
        if !self.direct {
            return self.file.write_all_at(bytes, offset);
        }
        self.set_direct(false)?;
        let written = self.file.write_all_at(bytes, offset);
        // The flag goes back even when the write failed; the write's error comes first.
        let restored = self.set_direct(true);
        written.and(restored)
    }

    fn give_up_direct(&mut self) -> io::Result<()> {
        self.direct = false;
        self.set_direct(false)
    }
}

/// Gathers bytes in an aligned buffer and writes whole aligned blocks with `O_DIRECT`, the
/// tail through the page cache (see the module documentation).
pub(crate) struct DirectWriter<F> {
    file: F,
    /// `capacity + align` bytes, never resized (it must not move); the buffer is
    /// `store[start..start + capacity]`, `start` making its address a multiple of `align`.
    store: Vec<u8>,
    start: usize,
    capacity: usize,
    align: usize,
    /// Bytes in the buffer.
    fill: usize,
    /// Of them, how many are in the file already (the tail written through the page cache).
    on_disk: usize,
    /// The file offset of the buffer's first byte, a multiple of `align`.
    base: u64,
    /// No direct write has succeeded yet: `EINVAL` now means direct I/O is refused.
    untried: bool,
    /// Direct I/O was refused at the first write: everything goes through the page cache.
    refused: bool,
}

impl<F: Positioned> DirectWriter<F> {
    /// A writer of `file` from offset 0 in blocks of `align` bytes (a power of two) through a
    /// buffer of `capacity` bytes (a multiple of `align`).
    pub(crate) fn new(file: F, align: usize, capacity: usize) -> DirectWriter<F> {
        debug_assert!(align.is_power_of_two() && capacity % align == 0 && capacity > 0);
        let store = vec![0u8; capacity + align];
        let address = store.as_ptr() as usize;
        let start = (align - address % align) % align;
        DirectWriter {
            file,
            store,
            start,
            capacity,
            align,
            fill: 0,
            on_disk: 0,
            base: 0,
            untried: true,
            refused: false,
        }
    }

    /// Bytes known to be in the file: everything before this offset.
    pub(crate) fn written(&self) -> u64 {
        self.base + self.on_disk as u64
    }

    /// Direct I/O was refused at the first write (the caller says so once).
    pub(crate) fn refused(&self) -> bool {
        self.refused
    }

    /// Takes `bytes` into the buffer, writing it out each time it fills. They are in the
    /// file only after [`DirectWriter::settle`].
    pub(crate) fn gather(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let room = self.capacity - self.fill;
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            let at = self.start + self.fill;
            self.store[at..at + now.len()].copy_from_slice(now);
            self.fill += now.len();
            bytes = rest;
            if self.fill == self.capacity {
                self.write_out()?;
            }
        }
        Ok(())
    }

    /// Puts everything gathered into the file (see [`DirectWriter::write_out`]).
    pub(crate) fn settle(&mut self) -> io::Result<()> {
        self.write_out()
    }

    /// Writes every gathered byte that is not in the file yet, in file order (so a reader
    /// never meets a hole): the rest of the block an earlier tail went into, through the page
    /// cache as that tail did; the whole blocks after it with `O_DIRECT`; the new tail through
    /// the page cache. A direct write never covers a block with bytes in the page cache, so
    /// it never waits for their writeback. Then the whole blocks leave the buffer; the tail
    /// stays at its start.
    fn write_out(&mut self) -> io::Result<()> {
        let head_end = self.on_disk.next_multiple_of(self.align).min(self.fill);
        if head_end > self.on_disk {
            self.write_buffered(head_end)?;
        }
        let whole = self.fill - self.fill % self.align;
        if whole > self.on_disk {
            self.write_direct(whole)?;
        }
        if self.fill > self.on_disk {
            self.write_buffered(self.fill)?;
        }
        let done = self.on_disk - self.on_disk % self.align;
        if done > 0 {
            self.store
                .copy_within(self.start + done..self.start + self.fill, self.start);
            self.fill -= done;
            self.on_disk -= done;
            self.base += done as u64;
        }
        Ok(())
    }

    /// Writes the buffer from `on_disk` to `end` through the page cache.
    fn write_buffered(&mut self, end: usize) -> io::Result<()> {
        let bytes = &self.store[self.start + self.on_disk..self.start + end];
        self.file
            .write_buffered(bytes, self.base + self.on_disk as u64)?;
        self.on_disk = end;
        Ok(())
    }

    /// Writes the buffer from `on_disk` (a block boundary) to `end` (one too) with
    /// `O_DIRECT`; through the page cache once direct I/O was refused.
    fn write_direct(&mut self, end: usize) -> io::Result<()> {
        while self.on_disk < end {
            if self.refused {
                return self.write_buffered(end);
            }
            let bytes = &self.store[self.start + self.on_disk..self.start + end];
            match self
                .file
                .write_direct(bytes, self.base + self.on_disk as u64)
            {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.untried = false;
                    self.on_disk += n;
                    // A short write that ends inside a block (not seen from ext4 or XFS):
                    // the rest of these blocks through the page cache.
                    if n % self.align != 0 {
                        return self.write_buffered(end);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if self.untried && e.raw_os_error() == Some(libc::EINVAL) => {
                    self.file.give_up_direct()?;
                    self.refused = true;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The sink of `-o PATH --direct-io` where the file takes `O_DIRECT`.
struct DirectFileSink {
    out: DirectWriter<OsFile>,
    path: std::path::PathBuf,
}

impl DirectFileSink {
    /// Says once that direct I/O was refused at the first write.
    fn note_refusal(&mut self, was_refused: bool) {
        if !was_refused && self.out.refused() {
            say_refused(&self.path);
        }
    }
}

impl Sink for DirectFileSink {
    fn write_batch(&mut self, batch: &JsonBatch) -> io::Result<()> {
        let was_refused = self.out.refused();
        let result = self
            .out
            .gather(batch.bytes())
            .and_then(|()| self.out.settle());
        self.note_refusal(was_refused);
        result
    }

    fn write_batches(&mut self, batches: &[JsonBatch]) -> Result<(), (usize, io::Error)> {
        let was_refused = self.out.refused();
        let before = self.out.written();
        let result = batches
            .iter()
            .try_for_each(|b| self.out.gather(b.bytes()))
            .and_then(|()| self.out.settle());
        self.note_refusal(was_refused);
        result.map_err(|e| {
            // The batches that ended before the last byte known to be written were written.
            let written = self.out.written().saturating_sub(before);
            let mut end = 0u64;
            let whole = batches
                .iter()
                .take_while(|b| {
                    end += b.bytes().len() as u64;
                    end <= written
                })
                .count();
            (whole, e)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        // Every write settles; nothing is held back.
        self.out.settle()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One call into the file, as the fake saw it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Call {
        Direct { offset: u64, len: usize },
        Buffered { offset: u64, len: usize },
        GiveUp,
    }

    /// A file in memory that checks every direct write is aligned (memory, offset, length)
    /// and records the calls; it can refuse direct writes (EINVAL), make them short, or fail.
    struct Fake {
        bytes: Vec<u8>,
        calls: Vec<Call>,
        align: usize,
        einval: bool,
        short_to: Option<usize>,
        fail_after: Option<usize>,
    }

    impl Fake {
        fn new(align: usize) -> Fake {
            Fake {
                bytes: Vec::new(),
                calls: Vec::new(),
                align,
                einval: false,
                short_to: None,
                fail_after: None,
            }
        }

        fn put(&mut self, bytes: &[u8], offset: u64) -> io::Result<()> {
            if let Some(left) = self.fail_after.as_mut() {
                if *left == 0 {
                    return Err(io::Error::from_raw_os_error(libc::ENOSPC));
                }
                *left -= 1;
            }
            let at = usize::try_from(offset).unwrap();
            if self.bytes.len() < at + bytes.len() {
                self.bytes.resize(at + bytes.len(), 0);
            }
            self.bytes[at..at + bytes.len()].copy_from_slice(bytes);
            Ok(())
        }
    }

    impl Positioned for Fake {
        fn write_direct(&mut self, bytes: &[u8], offset: u64) -> io::Result<usize> {
            if self.einval {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            assert_eq!(bytes.as_ptr() as usize % self.align, 0, "memory alignment");
            assert_eq!(offset % self.align as u64, 0, "offset alignment");
            assert_eq!(bytes.len() % self.align, 0, "length alignment");
            let len = self.short_to.map_or(bytes.len(), |s| s.min(bytes.len()));
            self.calls.push(Call::Direct { offset, len });
            self.put(&bytes[..len], offset)?;
            Ok(len)
        }

        fn write_buffered(&mut self, bytes: &[u8], offset: u64) -> io::Result<()> {
            self.calls.push(Call::Buffered {
                offset,
                len: bytes.len(),
            });
            self.put(bytes, offset)
        }

        fn give_up_direct(&mut self) -> io::Result<()> {
            self.calls.push(Call::GiveUp);
            Ok(())
        }
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn the_tail_and_the_rest_of_its_block_go_through_the_page_cache() {
        let mut w = DirectWriter::new(Fake::new(16), 16, 64);
        let (a, b) = (pattern(10, 1), pattern(30, 2));
        w.gather(&a).unwrap();
        w.settle().unwrap();
        // Less than a block: all of it through the page cache, in the file at once.
        assert_eq!(w.file.calls, [Call::Buffered { offset: 0, len: 10 }]);
        assert_eq!(w.file.bytes, a);
        w.file.calls.clear();
        w.gather(&b).unwrap();
        w.settle().unwrap();
        // 40 bytes: the rest of the first block as its start went, through the page cache
        // (a direct write over it would wait for its writeback), the second block directly,
        // the new tail of 8 after it.
        assert_eq!(
            w.file.calls,
            [
                Call::Buffered { offset: 10, len: 6 },
                Call::Direct {
                    offset: 16,
                    len: 16
                },
                Call::Buffered { offset: 32, len: 8 }
            ]
        );
        assert_eq!(w.file.bytes, [a, b].concat());
        assert_eq!(w.written(), 40);
        w.file.calls.clear();
        // Another small write: only the new bytes go out, after the tail already there.
        w.gather(&[7; 3]).unwrap();
        w.settle().unwrap();
        assert_eq!(w.file.calls, [Call::Buffered { offset: 40, len: 3 }]);
        assert_eq!(w.written(), 43);
    }

    #[test]
    fn a_write_ending_on_a_block_boundary_leaves_no_tail() {
        let mut w = DirectWriter::new(Fake::new(16), 16, 64);
        w.gather(&pattern(48, 3)).unwrap();
        w.settle().unwrap();
        assert_eq!(w.file.calls, [Call::Direct { offset: 0, len: 48 }]);
        assert_eq!((w.fill, w.on_disk, w.base), (0, 0, 48));
        // Settling again writes nothing.
        w.settle().unwrap();
        assert_eq!(w.file.calls.len(), 1);
    }

    #[test]
    fn more_than_the_buffer_goes_out_in_full_buffers_then_blocks_then_the_tail() {
        let mut w = DirectWriter::new(Fake::new(16), 16, 64);
        let mut want = pattern(5, 9);
        w.gather(&want).unwrap();
        w.settle().unwrap();
        let big = pattern(64 * 3 + 37, 4);
        want.extend_from_slice(&big);
        w.gather(&big).unwrap();
        w.settle().unwrap();
        assert_eq!(
            w.file.calls,
            [
                Call::Buffered { offset: 0, len: 5 },
                Call::Buffered { offset: 5, len: 11 },
                Call::Direct {
                    offset: 16,
                    len: 48
                },
                Call::Direct {
                    offset: 64,
                    len: 64
                },
                Call::Direct {
                    offset: 128,
                    len: 64
                },
                Call::Direct {
                    offset: 192,
                    len: 32
                },
                Call::Buffered {
                    offset: 224,
                    len: 10
                },
            ]
        );
        assert_eq!(w.file.bytes, want);
    }

    #[test]
    fn any_split_of_the_input_gives_the_same_file() {
        let data = pattern(1000, 5);
        for step in [1, 3, 15, 16, 17, 63, 64, 65, 200, 1000] {
            let mut w = DirectWriter::new(Fake::new(16), 16, 64);
            for chunk in data.chunks(step) {
                w.gather(chunk).unwrap();
                w.settle().unwrap();
                // Every chunk is in the file when the call returns, and nothing more.
                assert_eq!(w.file.bytes.len() as u64, w.written(), "step {step}");
            }
            assert_eq!(w.file.bytes, data, "step {step}");
        }
    }

    #[test]
    fn einval_at_the_first_direct_write_falls_back_to_the_page_cache() {
        let mut fake = Fake::new(16);
        fake.einval = true;
        let mut w = DirectWriter::new(fake, 16, 64);
        let data = pattern(150, 6);
        w.gather(&data).unwrap();
        w.settle().unwrap();
        assert!(w.refused());
        assert_eq!(w.file.calls[0], Call::GiveUp);
        assert!(w
            .file
            .calls
            .iter()
            .all(|c| !matches!(c, Call::Direct { .. })));
        assert_eq!(w.file.bytes, data);
    }

    #[test]
    fn einval_after_a_direct_write_worked_is_an_error() {
        let mut w = DirectWriter::new(Fake::new(16), 16, 64);
        w.gather(&pattern(20, 1)).unwrap();
        w.settle().unwrap();
        w.file.einval = true;
        w.gather(&pattern(40, 1)).unwrap();
        let e = w.settle().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        assert!(!w.refused());
    }

    #[test]
    fn a_short_direct_write_inside_a_block_finishes_through_the_page_cache() {
        let mut fake = Fake::new(16);
        fake.short_to = Some(20);
        let mut w = DirectWriter::new(fake, 16, 64);
        let data = pattern(50, 7);
        w.gather(&data).unwrap();
        w.settle().unwrap();
        assert_eq!(
            w.file.calls,
            [
                Call::Direct { offset: 0, len: 20 },
                Call::Buffered {
                    offset: 20,
                    len: 28
                },
                Call::Buffered { offset: 48, len: 2 },
            ]
        );
        assert_eq!(w.file.bytes, data);
    }

    #[test]
    fn errors_come_back_and_written_counts_only_what_is_in_the_file() {
        let mut fake = Fake::new(16);
        fake.fail_after = Some(1);
        let mut w = DirectWriter::new(fake, 16, 64);
        w.gather(&pattern(10, 1)).unwrap();
        w.settle().unwrap();
        w.gather(&pattern(30, 1)).unwrap();
        let e = w.settle().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(w.written(), 10);
    }

    #[test]
    fn alignments_from_statx() {
        assert_eq!(alignment_of(0, 0), None);
        assert_eq!(alignment_of(512, 0), None);
        assert_eq!(alignment_of(512, 512), Some(4096));
        assert_eq!(alignment_of(4, 8192), Some(8192));
        assert_eq!(alignment_of(4096, 3000), Some(4096));
        assert_eq!(alignment_of(4096, 12288), None);
        assert_eq!(alignment_of(4096, 1 << 20), None);
    }

    #[test]
    fn a_real_file_gets_exactly_the_bytes() {
        // Under target/ (a real disk file system here, where O_DIRECT works; elsewhere the
        // buffered sink is used and the bytes must still be the same).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-scratch");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("direct-unit-{}.jsonl", std::process::id()));
        let file = crate::create::open_for_writing(&path).unwrap();
        let mut sink = open(file, &path);
        let mut want = Vec::new();
        for (i, n) in [1usize, 700, 5000, 4096, 1 << 20, 3]
            .into_iter()
            .enumerate()
        {
            let line = pattern(n, i as u8)
                .into_iter()
                .map(|b| b'a' + b % 26)
                .collect::<Vec<u8>>();
            let batch = crate::sink::test_batch::of([&line]);
            sink.write_batch(&batch).unwrap();
            want.extend_from_slice(&line);
            want.push(b'\n');
            assert_eq!(std::fs::read(&path).unwrap(), want, "after write {i}");
        }
        sink.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), want);
        std::fs::remove_file(&path).unwrap();
    }
}
