//! The recorder's files: the CSV, the JSON archive, the rejected-messages file and the state
//! file that makes a restart resume without duplicates.
//!
//! Linear cost: a snapshot appends its rows to the CSV and its packets to the archive; the
//! CSV is rewritten (into a temporary file, fsync, rename) only when the snapshot brings new
//! columns, because the header and every earlier row then gain cells.
//!
//! Commit protocol, per snapshot:
//! 1. CSV: append the rows at the committed length and fsync, or write the whole new CSV to a
//!    temporary file, fsync it, rename it over the old one and fsync the directory;
//! 2. archive: overwrite its closing tail with the new packets and a new tail, fsync;
//! 3. rejected messages: append, fsync;
//! 4. state (`<csv>.state`): write a temporary file, fsync, rename, fsync the directory.
//!
//! Step 4 is the commit point: only then are the snapshot's messages acknowledged to the
//! broker. The state records how much of each file is committed (CSV bytes and rows, archive
//! bytes up to the end of the last packet, rejected bytes). A recorder started again on the
//! same CSV reads the state and cuts each file back to its committed end, so a crash in steps
//! 1 to 3 leaves no row, packet or rejection twice: those messages were not acknowledged and
//! come again. When the crash fell between a rename in step 1 and step 4, the CSV holds a
//! wider header; the restart keeps that header and the committed rows only.
//!
//! Between a crash and the restart the tail of the CSV may hold a partial row and the archive
//! may lack its closing tail; the state file says where the committed data ends.
//!
//! The files often live in a shared folder (DS_DIR defaults to /tmp, as in the original) and
//! the recorder often runs as root, so no file is opened through a symbolic link: new files are
//! created `O_EXCL|O_NOFOLLOW` mode 0600, existing ones opened `O_NOFOLLOW`, temporaries get
//! unpredictable names beside their target (created `O_EXCL`, renamed into place), and the
//! state file, which decides what is cut from the other files, is trusted only when it is
//! owned by this user (or root) and writable by no one else.

use super::flatten::{CellKind, Columns, Rows, ALWAYS_COLUMNS};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Opens `path` for writing without following a symbolic link in its last component;
/// `create`: a new file (mode 0600) when there is none.
fn open_write_nofollow(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Opens `path` for reading without following a symbolic link in its last component.
fn open_read_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Creates `path`, which must not exist (not even as a dangling symbolic link), mode 0600.
fn create_new_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// A temporary file beside `target` (same folder, so the rename is atomic), with a random name,
/// created `O_EXCL` mode 0600.
fn temp_beside(target: &Path) -> io::Result<tempfile::NamedTempFile> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
}

/// Whether this process may trust a file it reads its own bookkeeping from: owned by the
/// effective user or root, and writable by no one else.
fn trusted_owner(meta: &fs::Metadata) -> Result<(), String> {
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(format!(
            "owned by uid {}, not by this user (uid {euid}) or root",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// What survives a restart (the commit record).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct State {
    /// The state file's format version (1).
    pub version: u32,
    /// The CSV header after `idx`, as in the file.
    pub columns: Vec<String>,
    /// Committed length of the CSV in bytes; a restart cuts the file back to it.
    pub csv_bytes: u64,
    /// Rows in the CSV, and so the next `idx`.
    pub rows: u64,
    /// Where the last packet of the archive ends (the closing tail follows).
    pub archive_packets_end: u64,
    /// Packets in the archive (its `num_packets`).
    pub archive_packets: u64,
    /// Committed length of the rejected-messages file in bytes.
    pub rejected_bytes: u64,
    /// Messages in the rejected-messages file.
    pub rejected: u64,
    /// Snapshots committed, over every run of this recording.
    pub snapshots: u64,
    /// Input bookkeeping (see `input.rs`): a consumer id, the last committed generation, lines
    /// consumed from a file, and hashes of the last AMQP batch.
    pub input: InputState,
}

/// What the input needs to resume without duplicates or loss; each input uses its own
/// fields and leaves the others at their defaults.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct InputState {
    /// The input URL this state belongs to (without a password).
    pub source: String,
    /// Redis: this recorder's consumer name (its processing lists, or its name in the
    /// stream's group); RabbitMQ streams: the reader name.
    pub consumer: String,
    /// Redis lists: the last committed generation (processing list) of `consumer`.
    pub generation: u64,
    /// Files and stdin: lines consumed, skipped again on a restart.
    pub lines: u64,
    /// AMQP: hashes of the last batch's messages, recognised if they are delivered again;
    /// Redis streams: the entry ids of the last snapshot, acknowledged again at start.
    pub redelivery_hashes: Vec<String>,
    /// `file:` inputs: the device of the file the lines were counted in, so that a restart
    /// skips them only in that same file.
    #[serde(default)]
    pub file_dev: u64,
    /// `file:` inputs: that file's inode number (with `file_dev`).
    #[serde(default)]
    pub file_ino: u64,
    /// `file:` inputs: the bytes the consumed lines take; a restart seeks past them.
    #[serde(default)]
    pub bytes: u64,
    /// The file's birth time (statx), nanoseconds since 1970; 0 where the file system does not
    /// keep it. Tells a new file apart from an old one whose inode number it reuses.
    #[serde(default)]
    pub file_birth_ns: u64,
}

const STATE_VERSION: u32 = 1;

/// A rejected message, kept so nothing is acknowledged that was not saved somewhere.
pub struct Rejection {
    /// Where the message came from (`<file> line N`, `<url> queue Q message N`, ...).
    pub position: String,
    /// Why it was rejected.
    pub error: String,
    /// The message as received (empty when `length` is set).
    pub message: Vec<u8>,
    /// Set for a line too long to keep: its length in bytes, the message not copied.
    pub length: Option<u64>,
}

/// The files of one recording and what of them is committed.
pub struct Store {
    /// The CSV.
    pub csv_path: PathBuf,
    /// The JSON archive.
    pub archive_path: PathBuf,
    /// `<csv>.rejected.jsonl`: rejected and empty messages, one JSON object a line.
    pub rejected_path: PathBuf,
    /// `<csv>.state`: the commit record ([`State`]).
    pub state_path: PathBuf,
    /// The dataset's name, written into the archive's tail.
    pub dataset: String,
    /// Every column known (the CSV's and the pending rows'), with the `--max-columns` cap.
    pub columns: Columns,
    /// Column ids in the file's order (the header after `idx`).
    file_order: Vec<u32>,
    /// What is committed, as the state file holds it after the last snapshot.
    pub state: State,
    /// How a cell is written (csv-core's quoting).
    dialect: Dialect,
    /// Reused buffers: one CSV line, a `--csv-safe` cell, a snapshot's rows.
    line: Vec<u8>,
    cell: Vec<u8>,
    rows_out: Vec<u8>,
    /// Open handles, kept between snapshots (the CSV's is dropped when a rewrite replaces it).
    csv_file: Option<File>,
    archive_file: Option<File>,
    /// Times this run rewrote the whole CSV for new columns.
    pub csv_rewrites: u64,
    /// Whether the files were found and resumed.
    pub resumed: bool,
    /// Whether this run wrote the state file (a new recording): a start that fails then
    /// removes it again ([`Store::discard_new`]).
    created: bool,
    /// `--csv-safe`: text cells that a spreadsheet would run as a formula get a `'` first.
    pub csv_safe: bool,
}

/// Why the files cannot be used.
#[derive(Debug)]
pub struct StoreError(
    /// The path and what is wrong with it, for the user.
    pub String,
);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(path: &Path, what: &str, e: io::Error) -> StoreError {
    StoreError(format!("{}: {what}: {e}", path.display()))
}

impl Store {
    /// Opens the files: resumes them when `<csv>.state` exists, else starts new ones (and
    /// refuses to overwrite a CSV or archive it did not write).
    pub fn open(
        csv_path: PathBuf,
        archive_path: PathBuf,
        dataset: String,
    ) -> Result<Store, StoreError> {
        let state_path = suffixed(&csv_path, ".state");
        let rejected_path = suffixed(&csv_path, ".rejected.jsonl");
        let mut store = Store {
            csv_path,
            archive_path,
            rejected_path,
            state_path,
            dataset,
            columns: Columns::default(),
            file_order: Vec::new(),
            state: State {
                version: STATE_VERSION,
                ..State::default()
            },
            dialect: Dialect::new(),
            line: Vec::new(),
            cell: Vec::new(),
            rows_out: Vec::new(),
            csv_file: None,
            archive_file: None,
            csv_rewrites: 0,
            resumed: false,
            created: false,
            csv_safe: false,
        };
        for c in ALWAYS_COLUMNS {
            store.columns.id(c);
        }
        match read_trusted(&store.state_path) {
            Ok(bytes) => {
                let state: State = serde_json::from_slice(&bytes).map_err(|e| {
                    StoreError(format!(
                        "{}: not a recorder state file: {e}",
                        store.state_path.display()
                    ))
                })?;
                if state.version != STATE_VERSION {
                    return Err(StoreError(format!(
                        "{}: state version {} is not {STATE_VERSION}",
                        store.state_path.display(),
                        state.version
                    )));
                }
                store.state = state;
                store.recover()?;
                store.resumed = true;
            }
            Err(StateRead::Missing) => {
                for p in [&store.csv_path, &store.archive_path] {
                    // symlink_metadata: a dangling link counts as there (it must not be
                    // followed to create whatever it names).
                    if fs::symlink_metadata(p).is_ok() {
                        return Err(StoreError(format!(
                            "{} exists and has no {} beside it (not a recording to resume); \
                             choose another OUTPUT_CSV/ARCHIVE_JSON or remove it",
                            p.display(),
                            store.state_path.display()
                        )));
                    }
                }
                // Claim the names now, so a bad path fails before any message is taken.
                store
                    .write_state()
                    .map_err(|e| err(&store.state_path, "write", e))?;
                store.created = true;
                if let Err(e) = create_new_nofollow(&store.csv_path) {
                    store.discard_new();
                    return Err(err(&store.csv_path, "create", e));
                }
                let _ = fs::remove_file(&store.csv_path);
            }
            Err(StateRead::Io(e)) => return Err(err(&store.state_path, "read", e)),
            Err(StateRead::Untrusted(why)) => {
                return Err(StoreError(format!(
                    "{}: not trusted: {why}; the recorder does not resume from it",
                    store.state_path.display()
                )))
            }
        }
        Ok(store)
    }

    /// After a failed start: removes the state file this run created, so that nothing is
    /// left behind (a recording that never took a message is no recording).
    pub fn discard_new(&mut self) {
        if self.created && self.state.snapshots == 0 {
            let _ = fs::remove_file(&self.state_path);
            self.created = false;
        }
    }

    /// The error for a state whose CSV (or archive) is gone.
    fn missing(&self, what: &Path, e: io::Error) -> StoreError {
        let (count, unit) = if what == self.archive_path {
            (self.state.archive_packets, "packets")
        } else {
            (self.state.rows, "rows")
        };
        if e.kind() == io::ErrorKind::NotFound {
            StoreError(format!(
                "state file {} records {count} {unit} of {}, which is missing: delete {} to \
                 start over",
                self.state_path.display(),
                what.display(),
                self.state_path.display()
            ))
        } else if e.raw_os_error() == Some(libc::ELOOP) {
            StoreError(format!(
                "{}: not resumed: it is a symbolic link (not the file this recorder wrote)",
                what.display()
            ))
        } else {
            err(what, "open", e)
        }
    }

    /// A file being resumed must still be ours (in a shared folder without the sticky bit
    /// another user could have put their own file in its place).
    fn check_ours(path: &Path, f: &File) -> Result<(), StoreError> {
        let meta = f.metadata().map_err(|e| err(path, "stat", e))?;
        trusted_owner(&meta)
            .map_err(|why| StoreError(format!("{}: not resumed: {why}", path.display())))
    }

    /// Cuts the files back to what the state says is committed.
    fn recover(&mut self) -> Result<(), StoreError> {
        let st = self.state.clone();
        for name in &st.columns {
            self.columns.id(name);
        }
        if st.rows > 0 || st.csv_bytes > 0 {
            let file =
                open_read_nofollow(&self.csv_path).map_err(|e| self.missing(&self.csv_path, e))?;
            Self::check_ours(&self.csv_path, &file)?;
            let mut reader = csv_reader(&file);
            let mut rec = csv::ByteRecord::new();
            reader
                .read_byte_record(&mut rec)
                .map_err(|e| err(&self.csv_path, "read", csv_io(e)))?;
            if rec.get(0) != Some(b"idx".as_slice()) {
                return Err(StoreError(format!(
                    "{}: the first line is not a recorder header",
                    self.csv_path.display()
                )));
            }
            let names: Vec<String> = rec
                .iter()
                .skip(1)
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            let len = fs::metadata(&self.csv_path)
                .map_err(|e| err(&self.csv_path, "stat", e))?
                .len();
            let keep = if names == st.columns {
                if len < st.csv_bytes {
                    return Err(StoreError(format!(
                        "{}: shorter ({len} bytes) than its committed {} bytes; it was changed \
                         by something else",
                        self.csv_path.display(),
                        st.csv_bytes
                    )));
                }
                st.csv_bytes
            } else {
                // A rewrite was renamed in but not committed: keep its header (a superset)
                // and the committed rows.
                let fewer = || {
                    StoreError(format!(
                        "{}: fewer rows than the {} committed",
                        self.csv_path.display(),
                        st.rows
                    ))
                };
                for _ in 0..st.rows {
                    let more = reader
                        .read_byte_record(&mut rec)
                        .map_err(|e| err(&self.csv_path, "read", csv_io(e)))?;
                    if !more {
                        return Err(fewer());
                    }
                }
                // Where the next record starts: just after the last committed row's newline,
                // which must be there (a row cut short by a crash ends at the end of the file
                // without one).
                let at = reader.position().byte();
                if st.rows > 0 {
                    let mut last = [0u8];
                    let whole =
                        at > 0 && file.read_exact_at(&mut last, at - 1).is_ok() && last[0] == b'\n';
                    if !whole {
                        return Err(fewer());
                    }
                }
                for name in &names {
                    self.columns.id(name);
                }
                self.state.columns = names;
                at
            };
            let f = open_write_nofollow(&self.csv_path, false)
                .map_err(|e| err(&self.csv_path, "open", e))?;
            f.set_len(keep)
                .and_then(|()| f.sync_all())
                .map_err(|e| err(&self.csv_path, "truncate", e))?;
            self.state.csv_bytes = keep;
        }
        self.file_order = self
            .state
            .columns
            .iter()
            .map(|n| self.columns.get(n).unwrap_or(0))
            .collect();
        if st.archive_packets_end > 0 {
            let mut f = open_write_nofollow(&self.archive_path, false)
                .map_err(|e| self.missing(&self.archive_path, e))?;
            Self::check_ours(&self.archive_path, &f)?;
            let len = f
                .metadata()
                .map_err(|e| err(&self.archive_path, "stat", e))?
                .len();
            if len < st.archive_packets_end {
                return Err(StoreError(format!(
                    "{}: shorter than its committed {} bytes",
                    self.archive_path.display(),
                    st.archive_packets_end
                )));
            }
            f.seek(SeekFrom::Start(st.archive_packets_end))
                .and_then(|_| f.write_all(&self.archive_tail()))
                .and_then(|()| f.stream_position())
                .and_then(|end| f.set_len(end))
                .and_then(|()| f.sync_all())
                .map_err(|e| err(&self.archive_path, "repair", e))?;
        }
        if let Ok(f) = open_write_nofollow(&self.rejected_path, false) {
            f.set_len(st.rejected_bytes)
                .and_then(|()| f.sync_all())
                .map_err(|e| err(&self.rejected_path, "truncate", e))?;
        }
        Ok(())
    }

    fn archive_tail(&self) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(b"\n], \"dataset\": ");
        t.extend_from_slice(&serde_json::to_vec(&self.dataset).unwrap_or_default());
        t.extend_from_slice(b", \"num_packets\": ");
        t.extend_from_slice(
            itoa::Buffer::new()
                .format(self.state.archive_packets)
                .as_bytes(),
        );
        t.extend_from_slice(b", \"created\": \"");
        t.extend_from_slice(super::now_text().as_bytes());
        t.extend_from_slice(b"\"}\n");
        t
    }

    /// Writes the snapshot (rows, archive entries, rejections), then commits the state with
    /// `input` in it. Returns once everything is on disk.
    pub fn snapshot(
        &mut self,
        rows: &Rows,
        archive_entries: &[u8],
        archive_count: u64,
        rejections: &[Rejection],
        input: &InputState,
    ) -> io::Result<()> {
        if !rows.is_empty() {
            self.write_rows(rows)?;
        }
        if archive_count > 0 {
            self.append_archive(archive_entries, archive_count)?;
        }
        if !rejections.is_empty() {
            self.append_rejections(rejections)?;
        }
        self.state.input = input.clone();
        self.state.snapshots += 1;
        self.write_state()
    }

    fn write_rows(&mut self, rows: &Rows) -> io::Result<()> {
        let wider = self.columns.len() != self.file_order.len();
        if wider {
            let order = self.columns.sorted();
            self.rewrite_csv(&order, rows)?;
            self.file_order = order;
            self.state.columns = self
                .file_order
                .iter()
                .map(|&c| self.columns.name(c).to_string())
                .collect();
            self.csv_rewrites += 1;
        } else {
            let mut buf = std::mem::take(&mut self.rows_out);
            buf.clear();
            let n = self.render_rows(rows, &mut buf)?;
            let result = self.append_csv(&buf);
            self.rows_out = buf;
            result?;
            self.state.csv_bytes += n;
        }
        self.state.rows += rows.len() as u64;
        Ok(())
    }

    fn append_csv(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.csv_file.is_none() {
            self.csv_file = Some(open_write_nofollow(&self.csv_path, false)?);
        }
        let Some(f) = self.csv_file.as_mut() else {
            return Err(io::Error::other("CSV not open"));
        };
        f.seek(SeekFrom::Start(self.state.csv_bytes))?;
        f.write_all(buf)?;
        f.set_len(self.state.csv_bytes + buf.len() as u64)?;
        f.sync_data()
    }

    /// Renders `rows` in `self.file_order`, numbering from `state.rows`; returns bytes written.
    fn render_rows(&mut self, rows: &Rows, out: &mut impl Write) -> io::Result<u64> {
        // Position of each column id in the file order.
        let mut pos = vec![usize::MAX; self.columns.len()];
        for (p, &c) in self.file_order.iter().enumerate() {
            pos[c as usize] = p;
        }
        let width = self.file_order.len();
        // Cell index per file position for the row in hand (u32::MAX: empty). Scattering
        // into it replaces a sort per row (profiled: ~13 % of the file path at 145 columns);
        // a repeated key overwrites, so the last value wins.
        let mut slot = vec![u32::MAX; width];
        let mut written = 0u64;
        for (idx, r) in (self.state.rows..).zip(0..rows.len()) {
            let cells = rows.row(r);
            for (i, c) in cells.iter().enumerate() {
                match pos.get(c.column as usize) {
                    Some(&p) if p < width => slot[p] = i as u32,
                    // Cannot happen while file_order lists every column (write_rows rewrites
                    // when it does not); an error rather than a wrong row.
                    _ => return Err(io::Error::other("a column is missing from the CSV header")),
                }
            }
            let line = &mut self.line;
            line.clear();
            line.extend_from_slice(itoa::Buffer::new().format(idx).as_bytes());
            // One comma before each column; the empty ones in runs. Writing every field
            // through csv::Writer (a ByteRecord of all 159 fields per row of the fixture) cost
            // the whole recorder 47 % more instructions (PERFORMANCE.md, "Recorder CSV
            // through the csv crate").
            let mut at = 0;
            for (p, s) in slot.iter_mut().enumerate() {
                if *s == u32::MAX {
                    continue;
                }
                line.resize(line.len() + (p + 1 - at), b',');
                let cell = &cells[*s as usize];
                let text = rows.cell_text(cell);
                match cell.kind {
                    // Digits, signs, '.', 'e', letters: never a separator, quote or line end,
                    // so the quoting check (a scan of every byte) is skipped.
                    CellKind::Null | CellKind::Number | CellKind::Bool => {
                        line.extend_from_slice(text)
                    }
                    CellKind::Text if self.csv_safe && spreadsheet_formula(text) => {
                        self.cell.clear();
                        self.cell.push(b'\'');
                        self.cell.extend_from_slice(text);
                        self.dialect.field(line, &self.cell)?
                    }
                    CellKind::Text | CellKind::List => self.dialect.field(line, text)?,
                }
                *s = u32::MAX;
                at = p + 1;
            }
            line.resize(line.len() + (width - at), b',');
            line.push(b'\n');
            out.write_all(line)?;
            written += line.len() as u64;
        }
        Ok(written)
    }

    /// The whole CSV again with the new columns: header, the committed rows widened, the new
    /// rows; into a temporary file renamed over the old one.
    fn rewrite_csv(&mut self, order: &[u32], rows: &Rows) -> io::Result<()> {
        let tmp = temp_beside(&self.csv_path)?;
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file().try_clone()?);
        let line = &mut self.line;
        line.clear();
        line.extend_from_slice(b"idx");
        for &c in order {
            line.push(b',');
            self.dialect.field(line, self.columns.name(c).as_bytes())?;
        }
        line.push(b'\n');
        w.write_all(line)?;
        let mut total = line.len() as u64;
        if self.state.rows > 0 {
            // new position → old position, by column id.
            let mut old_pos = vec![usize::MAX; self.columns.len()];
            for (p, &c) in self.file_order.iter().enumerate() {
                old_pos[c as usize] = p;
            }
            let map: Vec<usize> = order.iter().map(|&c| old_pos[c as usize]).collect();
            let f = open_read_nofollow(&self.csv_path)?;
            let mut reader = csv_reader(f.take(self.state.csv_bytes));
            let mut old = csv::ByteRecord::new();
            reader.read_byte_record(&mut old).map_err(csv_io)?; // old header
            while reader.read_byte_record(&mut old).map_err(csv_io)? {
                line.clear();
                line.extend_from_slice(old.get(0).unwrap_or_default());
                for &p in &map {
                    line.push(b',');
                    if let Some(field) = old.get(p.wrapping_add(1)).filter(|_| p != usize::MAX) {
                        self.dialect.field(line, field)?;
                    }
                }
                line.push(b'\n');
                w.write_all(line)?;
                total += line.len() as u64;
            }
        }
        self.file_order = order.to_vec();
        total += self.render_rows(rows, &mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        drop(f);
        tmp.persist(&self.csv_path).map_err(|e| e.error)?;
        self.csv_file = None;
        sync_dir(&self.csv_path)?;
        self.state.csv_bytes = total;
        Ok(())
    }

    fn append_archive(&mut self, entries: &[u8], count: u64) -> io::Result<()> {
        if self.archive_file.is_none() {
            self.archive_file = Some(open_write_nofollow(&self.archive_path, true)?);
        }
        let mut at = self.state.archive_packets_end;
        let head: &[u8] = if at == 0 {
            b"{\"packets\": [\n"
        } else {
            b",\n"
        };
        self.state.archive_packets += count;
        let tail = self.archive_tail();
        let Some(f) = self.archive_file.as_mut() else {
            return Err(io::Error::other("archive not open"));
        };
        f.seek(SeekFrom::Start(at))?;
        f.write_all(head)?;
        f.write_all(entries)?;
        at += (head.len() + entries.len()) as u64;
        f.write_all(&tail)?;
        f.set_len(at + tail.len() as u64)?;
        f.sync_data()?;
        self.state.archive_packets_end = at;
        Ok(())
    }

    fn append_rejections(&mut self, rejections: &[Rejection]) -> io::Result<()> {
        let mut f = open_write_nofollow(&self.rejected_path, true)?;
        f.seek(SeekFrom::Start(self.state.rejected_bytes))?;
        let mut buf = Vec::new();
        for r in rejections {
            // An over-long line is not copied: its position, length and reason say enough.
            let line = match r.length {
                Some(length) => serde_json::json!({
                    "position": r.position,
                    "error": r.error,
                    "length": length,
                }),
                None => serde_json::json!({
                    "position": r.position,
                    "error": r.error,
                    "message": String::from_utf8_lossy(&r.message),
                }),
            };
            serde_json::to_writer(&mut buf, &line).map_err(io::Error::other)?;
            buf.push(b'\n');
        }
        f.write_all(&buf)?;
        f.set_len(self.state.rejected_bytes + buf.len() as u64)?;
        f.sync_data()?;
        self.state.rejected_bytes += buf.len() as u64;
        self.state.rejected += rejections.len() as u64;
        Ok(())
    }

    /// The commit point: the state file replaced atomically.
    pub fn write_state(&self) -> io::Result<()> {
        let mut text = serde_json::to_vec(&self.state).map_err(io::Error::other)?;
        text.push(b'\n');
        let mut tmp = temp_beside(&self.state_path)?;
        tmp.write_all(&text)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.state_path).map_err(|e| e.error)?;
        sync_dir(&self.state_path)
    }

    /// One row's values by column name, for the AntiNex client.
    pub fn row_values<'s, 'r: 's>(
        &'s self,
        rows: &'r Rows,
        r: usize,
    ) -> impl Iterator<Item = (&'s str, CellKind, &'r [u8])> + 's {
        rows.row(r)
            .iter()
            .map(move |c| (self.columns.name(c.column), c.kind, rows.cell_text(c)))
    }
}

/// Why a state file was not read.
enum StateRead {
    Missing,
    Io(io::Error),
    Untrusted(String),
}

/// The state file's bytes, if it is a regular file of ours (see [`trusted_owner`]), opened
/// without following a link.
fn read_trusted(path: &Path) -> Result<Vec<u8>, StateRead> {
    let mut f = match open_read_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StateRead::Missing),
        // ELOOP: the last component is a symbolic link.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(StateRead::Untrusted("it is a symbolic link".into()))
        }
        Err(e) => return Err(StateRead::Io(e)),
    };
    let meta = f.metadata().map_err(StateRead::Io)?;
    if !meta.is_file() {
        return Err(StateRead::Untrusted("not a regular file".into()));
    }
    trusted_owner(&meta).map_err(StateRead::Untrusted)?;
    // A state file is a few hundred bytes (a few MB with many AMQP hashes): bounded read.
    let mut bytes = Vec::new();
    Read::by_ref(&mut f)
        .take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(StateRead::Io)?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(StateRead::Untrusted(format!(
            "larger than {MAX_STATE_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// Largest state file read (the AMQP redelivery hashes are its only part that grows: 17 bytes
/// per message of a snapshot).
const MAX_STATE_BYTES: u64 = 256 << 20;

/// Whether a spreadsheet would take text starting so for a formula (it starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return; OWASP's list): `--csv-safe` writes it with a `'` first.
fn spreadsheet_formula(text: &[u8]) -> bool {
    matches!(
        text.first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

/// The recorder's CSV dialect, as pandas `to_csv` and Python's csv module write it by default
/// (QUOTE_MINIMAL): comma-separated, a field quoted only when it holds a comma, a quote, CR or
/// LF, quotes doubled, every record ended by `\n`. The quoting decision and the escaping are
/// csv-core's (the csv crate's engine, configured as `csv::WriterBuilder` would configure it);
/// the rows around them (delimiters, the runs of empty cells, the line end) are written in
/// place, which a `csv::Writer` cannot do without a field object per empty cell.
struct Dialect(csv_core::Writer);

impl Dialect {
    fn new() -> Dialect {
        Dialect(
            csv_core::WriterBuilder::new()
                .delimiter(b',')
                .quote(b'"')
                .double_quote(true)
                .quote_style(csv_core::QuoteStyle::Necessary)
                .terminator(csv_core::Terminator::Any(b'\n'))
                .build(),
        )
    }

    /// Appends `field` to `out` as one CSV field.
    fn field(&self, out: &mut Vec<u8>, field: &[u8]) -> io::Result<()> {
        if !self.0.should_quote(field) {
            out.extend_from_slice(field);
            return Ok(());
        }
        let start = out.len();
        // Room for every byte doubled: the most quoting can need.
        out.resize(start + 2 * field.len() + 2, 0);
        out[start] = b'"';
        let (result, read, wrote) = csv_core::quote(
            field,
            &mut out[start + 1..],
            self.0.get_quote(),
            self.0.get_escape(),
            self.0.get_double_quote(),
        );
        if result != csv_core::WriteResult::InputEmpty || read != field.len() {
            out.truncate(start);
            return Err(io::Error::other("CSV quoting did not fit its buffer"));
        }
        out.truncate(start + 1 + wrote);
        out.push(b'"');
        Ok(())
    }
}

/// Reads what [`Dialect`] wrote: records end at `\n` only (a CR is an ordinary byte, as
/// in what we write it is always inside quotes), a quoted field may span lines, and a record
/// with fewer fields than the header is read as it is (its missing cells empty), not refused.
fn csv_reader<R: Read>(input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(b',')
        .quote(b'"')
        .double_quote(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(input)
}

/// A CSV error as the I/O error it carries (a full disk stays `StorageFull`); any other (none
/// is expected from byte records read flexibly) as an other error.
fn csv_io(e: csv::Error) -> io::Error {
    if !e.is_io_error() {
        return io::Error::other(e);
    }
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// `path` with `suffix` appended to its file name.
pub fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: [&[u8]; 9] = [
        b"1", b"a,b", b"q\"x", b"l1\nl2", b"cr\rx", b"", b"plain", b"=f", b" sp ",
    ];

    /// The bytes the recorder wrote by hand before it used the csv crate (Python's
    /// QUOTE_MINIMAL with `\n` line ends), for the same fields.
    const WRITTEN: &[u8] = b"1,\"a,b\",\"q\"\"x\",\"l1\nl2\",\"cr\rx\",,plain,=f, sp \n";

    #[test]
    fn dialect_quotes_only_what_needs_it() {
        let d = Dialect::new();
        let mut line = Vec::new();
        for (i, f) in FIELDS.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            d.field(&mut line, f).unwrap();
        }
        line.push(b'\n');
        assert_eq!(line, WRITTEN);
        // The worst case: every byte a quote, each doubled.
        line.clear();
        d.field(&mut line, b"\"\"\"\"").unwrap();
        assert_eq!(line, b"\"\"\"\"\"\"\"\"\"\"");
    }

    #[test]
    fn reader_reads_back_and_says_where_each_record_ends() {
        let text = [WRITTEN, b"2,x\n", b"3,\"cut"].concat();
        let mut r = csv_reader(&text[..]);
        let mut rec = csv::ByteRecord::new();
        assert!(r.read_byte_record(&mut rec).unwrap());
        assert_eq!(rec.iter().collect::<Vec<_>>(), FIELDS.to_vec());
        // Just past the first record's newline, the one inside quotes not counted.
        assert_eq!(r.position().byte(), WRITTEN.len() as u64);
        assert!(r.read_byte_record(&mut rec).unwrap());
        assert_eq!(rec.iter().collect::<Vec<_>>(), vec![&b"2"[..], b"x"]);
        assert_eq!(r.position().byte(), WRITTEN.len() as u64 + 4);
        // A row cut short is read to the end of the input, without a newline before it.
        assert!(r.read_byte_record(&mut rec).unwrap());
        assert_eq!(rec.iter().collect::<Vec<_>>(), vec![&b"3"[..], b"cut"]);
        assert_eq!(r.position().byte(), text.len() as u64);
        assert!(!r.read_byte_record(&mut rec).unwrap());
    }

    #[test]
    fn suffix() {
        assert_eq!(
            suffixed(Path::new("/tmp/a.csv"), ".state"),
            PathBuf::from("/tmp/a.csv.state")
        );
    }
}
