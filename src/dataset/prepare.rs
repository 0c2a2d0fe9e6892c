//! `dataset prepare`: recorded CSVs → full CSV, clean CSV and their metadata JSON files.
//!
//! Facts kept from the original's `prepare_dataset.py`: the `src_file` column first; label
//! columns `label_value` and `label_name` last when a label rule is given; its label rule (a
//! draw from 0..=100 above `set_if_above` gives the second label, else the first); its default
//! dropped columns; the metadata file names `fulldata_metadata.json` / `cleaned_metadata.json`
//! beside each CSV and their keys.
//!
//! Where this differs on purpose (said in the README too): the draw is seeded (`--seed`) so a
//! dataset can be rebuilt exactly; a label can come from a column instead of a draw; the clean
//! CSV keeps only columns whose every value is a number (the original kept any column pandas
//! did not find empty, text included); and the feature to predict is `label_value` (numeric,
//! kept as the clean CSV's last column) rather than `label_name` (which the original's clean
//! CSV did not even contain).

use crate::time::format_created;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The source file of each row: always the first column.
pub const SRC_FILE: &str = "src_file";
/// The label's number (the feature to predict) when a label rule is given.
pub const LABEL_VALUE: &str = "label_value";
/// The label's name when a label rule is given (text: never a feature).
pub const LABEL_NAME: &str = "label_name";

/// The original's `post_proc_rules["drop_columns"]`: identifiers and text the models cannot
/// use (addresses are text in the recorder's CSV).
pub const DEFAULT_DROP_COLUMNS: [&str; 10] = [
    "src_file",
    "raw_id",
    "raw_load",
    "raw_hex_load",
    "raw_hex_field_load",
    "pad_load",
    "eth_dst",
    "eth_src",
    "ip_dst",
    "ip_src",
];

/// Row problems listed one by one; beyond this many only the count grows (the report says so).
pub const MAX_PROBLEMS_LISTED: usize = 1000;

/// How rows are labelled.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelRule {
    /// A row gets the second label when its number is above this, else the first.
    pub above: f64,
    /// The number: this column's value; `None`: a seeded draw from 0..=100 (the original).
    pub column: Option<String>,
    /// `label_name` of the first and the second label.
    pub names: [String; 2],
    /// `label_value` of the first and the second label.
    pub values: [i64; 2],
}

/// What `dataset prepare` reads and writes (built from the flags by the command line).
#[derive(Clone, Debug)]
pub struct PrepareConfig {
    /// Glob patterns, in order; a file matched twice is read once.
    pub inputs: Vec<String>,
    /// The full CSV to write: every column of every input; its metadata JSON goes beside it.
    pub fulldata_file: PathBuf,
    /// The clean CSV to write: numeric columns only; its metadata JSON goes beside it.
    pub cleaned_file: PathBuf,
    /// Columns never used as features (kept in the full CSV, left out of the clean one).
    pub drop_columns: Vec<String>,
    /// How rows are labelled; `None`: no label columns.
    pub label: Option<LabelRule>,
    /// Seed of the label draw; the same inputs, flags and seed give byte-identical CSVs.
    pub seed: u64,
    /// Clean CSV: write this number in empty cells instead of dropping the row.
    pub fill_missing: Option<String>,
}

/// Why an input row was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowProblemKind {
    /// The row has a different number of fields than the file's header row.
    Ragged {
        /// Fields in the header row.
        expected: usize,
        /// Fields in this row.
        found: usize,
    },
    /// A field is not UTF-8.
    InvalidUtf8,
}

/// A skipped input row, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowProblem {
    /// The input file, as its pattern matched it.
    pub file: PathBuf,
    /// 1-based line where the row starts.
    pub line: u64,
    /// What is wrong with the row.
    pub kind: RowProblemKind,
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = format!("{}:{}", self.file.display(), self.line);
        match self.kind {
            RowProblemKind::Ragged { expected, found } => write!(
                f,
                "{at}: ragged row: {found} fields where the header has {expected}; row skipped"
            ),
            RowProblemKind::InvalidUtf8 => write!(f, "{at}: a field is not UTF-8; row skipped"),
        }
    }
}

/// What a `dataset prepare` run did: counts, columns kept and left out, and the warnings to
/// print.
#[derive(Debug, Default)]
pub struct PrepareReport {
    /// Input files read, in reading order.
    pub files: Vec<PathBuf>,
    /// Columns of the full CSV.
    pub columns: Vec<String>,
    /// Data rows read from the inputs (skipped ones included).
    pub rows_read: u64,
    /// Rows written to the full CSV.
    pub rows_written: u64,
    /// Rows left out for a problem; the first [`MAX_PROBLEMS_LISTED`] are in `problems`.
    pub rows_skipped: u64,
    /// The skipped rows, up to [`MAX_PROBLEMS_LISTED`], in reading order.
    pub problems: Vec<RowProblem>,
    /// Rows given the first and the second label.
    pub label_counts: [u64; 2],
    /// `--label-column` rows whose value is empty or not a number (given the first label).
    pub label_column_not_numeric: u64,
    /// Columns of the clean CSV.
    pub clean_columns: Vec<String>,
    /// Columns left out of the clean CSV because no row has a value in them.
    pub empty_columns: Vec<String>,
    /// Columns left out of the clean CSV because some value is not a number.
    pub non_numeric_columns: Vec<String>,
    /// Rows written to the clean CSV.
    pub clean_rows_written: u64,
    /// Rows left out of the clean CSV for an empty cell (no `fill_missing`).
    pub clean_rows_dropped: u64,
    /// Inputs whose header names a column twice: (file, column); the first one is used.
    pub duplicate_headers: Vec<(PathBuf, String)>,
    /// Inputs matched by a pattern but left out because they are this run's outputs.
    pub skipped_outputs: Vec<PathBuf>,
    /// Where the full CSV's metadata JSON was written (`fulldata_metadata.json` beside it).
    pub fulldata_metadata: PathBuf,
    /// Where the clean CSV's metadata JSON was written (`cleaned_metadata.json` beside it).
    pub cleaned_metadata: PathBuf,
}

/// Why `dataset prepare` stopped; no output was replaced. [`PrepareError::exit_code`] maps
/// each to the command's exit code.
#[derive(Debug)]
pub enum PrepareError {
    /// A setting is invalid (a bad glob pattern, a non-numeric `--fill-missing`, ...).
    Usage(String),
    /// No input file matches the patterns (or only this run's outputs do).
    NoInput(String),
    /// An input could not be opened or read.
    Open {
        /// The input file.
        path: PathBuf,
        /// The error from the file system.
        error: io::Error,
    },
    /// An input is not CSV (no header row, unreadable structure).
    NotCsv {
        /// The input file.
        path: PathBuf,
        /// What is wrong, in words.
        why: String,
    },
    /// An output (CSV, metadata or temporary file) could not be written or renamed.
    Write {
        /// The output file.
        path: PathBuf,
        /// The error from the file system.
        error: io::Error,
    },
}

impl PrepareError {
    /// Exit codes listed in `dataset prepare --help`.
    pub fn exit_code(&self) -> u8 {
        use crate::exit::dataset;
        match self {
            PrepareError::Usage(_) => dataset::USAGE,
            PrepareError::NoInput(_) | PrepareError::Open { .. } => dataset::NO_INPUT,
            PrepareError::NotCsv { .. } => dataset::NOT_CSV,
            PrepareError::Write { .. } => dataset::WRITE,
        }
    }
}

impl fmt::Display for PrepareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrepareError::Usage(m) => write!(f, "{m}"),
            PrepareError::NoInput(m) => write!(f, "no input CSV: {m}"),
            PrepareError::Open { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            PrepareError::NotCsv { path, why } => write!(f, "{}: {why}", path.display()),
            PrepareError::Write { path, error } => {
                write!(f, "cannot write {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for PrepareError {}

/// `true` for a decimal number as CSV tools write them: optional sign, digits with an
/// optional fraction (or a fraction alone), optional exponent. No spaces, no `nan`/`inf`, no
/// hex, no thousands separators: exactly what every numeric reader parses the same way.
pub fn is_number(s: &[u8]) -> bool {
    let mut i = 0;
    if matches!(s.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let int_start = i;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < s.len() && s[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - frac_start;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == s.len()
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, seedable, and good enough for a label draw;
/// its output sequence for a seed never changes, which is what makes `--seed` reproducible
/// across versions (a crate's generator might change between releases).
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..=100 like Python's `random.randint(0, 100)` (multiply-shift; the bias,
    /// under 101/2^64, is far below anything a label rule could notice).
    pub(crate) fn percent_draw(&mut self) -> u64 {
        ((u128::from(self.next_u64()) * 101) >> 64) as u64
    }
}

/// Expands the glob patterns: matching regular files, each pattern's matches sorted, a file
/// reached by two patterns or two paths kept once (first place). "The same file" is the same
/// device and inode, so links and symbolic-link loops (`a/loop/loop/x.csv`, up to the kernel's
/// 40 hops) do not read one CSV many times.
pub(crate) fn expand_inputs(patterns: &[String]) -> Result<Vec<PathBuf>, PrepareError> {
    use std::os::unix::fs::MetadataExt;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut seen: std::collections::HashSet<(u64, u64)> = std::collections::HashSet::new();
    for pattern in patterns {
        let paths = glob::glob(pattern)
            .map_err(|e| PrepareError::Usage(format!("bad --input pattern {pattern:?}: {e}")))?;
        let mut matched = Vec::new();
        for entry in paths {
            match entry {
                Ok(p) => {
                    if let Some(m) = fs::metadata(&p).ok().filter(|m| m.is_file()) {
                        matched.push((p, (m.dev(), m.ino())));
                    }
                }
                Err(e) => {
                    return Err(PrepareError::Open {
                        path: e.path().to_owned(),
                        error: io::Error::new(e.error().kind(), e.error().to_string()),
                    })
                }
            }
        }
        // The shortest path of a file first (the loop's a/x.csv before a/loop/x.csv), then
        // by name.
        matched.sort_by(|a, b| {
            (a.0.components().count(), &a.0).cmp(&(b.0.components().count(), &b.0))
        });
        let mut kept: Vec<PathBuf> = matched
            .into_iter()
            .filter(|(_, id)| seen.insert(*id))
            .map(|(p, _)| p)
            .collect();
        kept.sort();
        files.extend(kept);
    }
    if files.is_empty() {
        return Err(PrepareError::NoInput(format!(
            "no file matches {}",
            patterns
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(files)
}

fn open_reader(path: &Path) -> Result<csv::Reader<fs::File>, PrepareError> {
    let file = fs::File::open(path).map_err(|error| PrepareError::Open {
        path: path.to_owned(),
        error,
    })?;
    // flexible: a ragged row comes back as a record of its own length (counted and skipped
    // by us) instead of an error that would end the file.
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(file))
}

fn csv_error(path: &Path, e: csv::Error) -> PrepareError {
    match e.into_kind() {
        csv::ErrorKind::Io(error) => PrepareError::Open {
            path: path.to_owned(),
            error,
        },
        other => PrepareError::NotCsv {
            path: path.to_owned(),
            why: format!("{other:?}"),
        },
    }
}

/// Reads one file's header row as text.
fn read_header(path: &Path) -> Result<Vec<String>, PrepareError> {
    let mut reader = open_reader(path)?;
    let header = reader
        .byte_headers()
        .map_err(|e| csv_error(path, e))?
        .clone();
    if header.is_empty() {
        return Err(PrepareError::NotCsv {
            path: path.to_owned(),
            why: "empty file: no header row".to_owned(),
        });
    }
    header
        .iter()
        .map(|h| {
            std::str::from_utf8(h)
                .map(str::to_owned)
                .map_err(|_| PrepareError::NotCsv {
                    path: path.to_owned(),
                    why: "the header row is not UTF-8".to_owned(),
                })
        })
        .collect()
}

/// Metadata files sit beside their CSV, named as the original named them.
fn metadata_path(csv_path: &Path, name: &str) -> PathBuf {
    csv_path
        .parent()
        .map(|d| d.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A file written beside its final path and renamed over it when complete. The temporary has
/// a random name and is created `O_EXCL` mode 0600 (OUTPUT_DIR defaults to /tmp, where a fixed
/// name could be a link planted by another user); the rename replaces whatever is at the
/// final path without following it.
struct AtomicFile {
    /// None once committed.
    file: Option<tempfile::NamedTempFile>,
    tmp: PathBuf,
    path: PathBuf,
}

impl AtomicFile {
    fn new(path: &Path) -> Result<AtomicFile, PrepareError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let file = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|error| PrepareError::Write {
                path: path.to_owned(),
                error,
            })?;
        Ok(AtomicFile {
            tmp: file.path().to_owned(),
            file: Some(file),
            path: path.to_owned(),
        })
    }

    /// A second handle on the temporary, for writing.
    fn handle(&self) -> Result<fs::File, PrepareError> {
        match &self.file {
            Some(f) => f.as_file().try_clone().map_err(|e| self.write_error(e)),
            None => Err(self.write_error(io::Error::other("already renamed into place"))),
        }
    }

    fn write_error(&self, error: io::Error) -> PrepareError {
        PrepareError::Write {
            path: self.path.clone(),
            error,
        }
    }

    fn commit(&mut self) -> Result<(), PrepareError> {
        match self.file.take() {
            Some(f) => f
                .persist(&self.path)
                .map(drop)
                .map_err(|e| self.write_error(e.error)),
            None => Ok(()),
        }
    }
}

fn csv_writer(file: &AtomicFile) -> Result<csv::Writer<fs::File>, PrepareError> {
    let f = file.handle()?;
    Ok(csv::WriterBuilder::new().flexible(false).from_writer(f))
}

fn write_error_of(file: &AtomicFile, e: csv::Error) -> PrepareError {
    match e.into_kind() {
        csv::ErrorKind::Io(error) => file.write_error(error),
        other => file.write_error(io::Error::other(format!("{other:?}"))),
    }
}

fn now_created() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    String::from_utf8_lossy(&format_created(secs)).into_owned()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Runs `dataset prepare`. On error nothing is replaced: outputs are renamed into place only
/// when all of them are complete.
pub fn prepare(config: &PrepareConfig) -> Result<PrepareReport, PrepareError> {
    let mut report = PrepareReport::default();
    let mut files = expand_inputs(&config.inputs)?;
    files.retain(|f| {
        let is_output = same_file(f, &config.fulldata_file) || same_file(f, &config.cleaned_file);
        if is_output {
            report.skipped_outputs.push(f.clone());
        }
        !is_output
    });
    if files.is_empty() {
        return Err(PrepareError::NoInput(
            "the only matching files are this run's own outputs".to_owned(),
        ));
    }
    if let Some(rule) = &config.label {
        if !rule.above.is_finite() {
            return Err(PrepareError::Usage("--label-above must be a number".into()));
        }
    }
    if let Some(fill) = &config.fill_missing {
        if !is_number(fill.as_bytes()) {
            return Err(PrepareError::Usage(format!(
                "--fill-missing {fill:?} is not a number"
            )));
        }
    }

    // Pass 1: the union of the header rows, in first-seen order.
    let labelled = config.label.is_some();
    let reserved = |h: &str| h == SRC_FILE || (labelled && (h == LABEL_VALUE || h == LABEL_NAME));
    let mut columns: Vec<String> = vec![SRC_FILE.to_owned()];
    let mut index_of: HashMap<String, usize> = HashMap::new();
    index_of.insert(SRC_FILE.to_owned(), 0);
    let mut headers = Vec::with_capacity(files.len());
    for f in &files {
        let header = read_header(f)?;
        for h in &header {
            if !reserved(h) && !index_of.contains_key(h) {
                index_of.insert(h.clone(), columns.len());
                columns.push(h.clone());
            }
        }
        headers.push(header);
    }
    if labelled {
        for h in [LABEL_VALUE, LABEL_NAME] {
            index_of.insert(h.to_owned(), columns.len());
            columns.push(h.to_owned());
        }
    }
    let label_column = match config.label.as_ref().and_then(|r| r.column.as_ref()) {
        Some(c) => Some(*index_of.get(c).ok_or_else(|| {
            PrepareError::Usage(format!(
                "--label-column {c:?} is not a column of the inputs"
            ))
        })?),
        None => None,
    };
    let ncols = columns.len();

    // Pass 2: every row under the union, labelled, into the full CSV.
    let mut full = AtomicFile::new(&config.fulldata_file)?;
    let mut writer = csv_writer(&full)?;
    writer
        .write_record(&columns)
        .map_err(|e| write_error_of(&full, e))?;
    let mut has_value = vec![false; ncols];
    let mut numeric = vec![true; ncols];
    let mut rng = SplitMix64::new(config.seed);
    let label_texts: Option<[[Vec<u8>; 2]; 2]> = config.label.as_ref().map(|r| {
        [
            [
                r.values[0].to_string().into_bytes(),
                r.names[0].clone().into_bytes(),
            ],
            [
                r.values[1].to_string().into_bytes(),
                r.names[1].clone().into_bytes(),
            ],
        ]
    });
    let mut row: Vec<Vec<u8>> = vec![Vec::new(); ncols];
    for (f, header) in files.iter().zip(&headers) {
        // File column → output column; a repeated header name maps only its first place.
        let mut seen = std::collections::HashSet::new();
        let mut map: Vec<Option<usize>> = Vec::with_capacity(header.len());
        for h in header {
            if !seen.insert(h.as_str()) {
                report.duplicate_headers.push((f.clone(), h.clone()));
                map.push(None);
            } else if reserved(h) {
                map.push(None);
            } else {
                map.push(index_of.get(h).copied());
            }
        }
        let src = f.to_string_lossy().into_owned().into_bytes();
        let mut reader = open_reader(f)?;
        let mut record = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(csv_error(f, e)),
            }
            report.rows_read += 1;
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            let problem = if record.len() != header.len() {
                Some(RowProblemKind::Ragged {
                    expected: header.len(),
                    found: record.len(),
                })
            } else if record.iter().any(|v| std::str::from_utf8(v).is_err()) {
                Some(RowProblemKind::InvalidUtf8)
            } else {
                None
            };
            if let Some(kind) = problem {
                report.rows_skipped += 1;
                if report.problems.len() < MAX_PROBLEMS_LISTED {
                    report.problems.push(RowProblem {
                        file: f.clone(),
                        line,
                        kind,
                    });
                }
                continue;
            }
            for cell in row.iter_mut() {
                cell.clear();
            }
            row[0].extend_from_slice(&src);
            for (value, to) in record.iter().zip(&map) {
                if let Some(i) = *to {
                    row[i].extend_from_slice(value);
                }
            }
            if let (Some(rule), Some(texts)) = (&config.label, &label_texts) {
                let number = match label_column {
                    Some(c) if is_number(&row[c]) => std::str::from_utf8(&row[c])
                        .ok()
                        .and_then(|s| s.parse::<f64>().ok()),
                    Some(_) => None,
                    None => Some(rng.percent_draw() as f64),
                };
                if number.is_none() {
                    report.label_column_not_numeric += 1;
                }
                let which = usize::from(number.is_some_and(|n| n > rule.above));
                report.label_counts[which] += 1;
                row[ncols - 2].extend_from_slice(&texts[which][0]);
                row[ncols - 1].extend_from_slice(&texts[which][1]);
            }
            for (i, cell) in row.iter().enumerate() {
                if !cell.is_empty() {
                    has_value[i] = true;
                    if numeric[i] && !is_number(cell) {
                        numeric[i] = false;
                    }
                }
            }
            writer
                .write_record(&row)
                .map_err(|e| write_error_of(&full, e))?;
            report.rows_written += 1;
        }
    }
    writer.flush().map_err(|e| full.write_error(e))?;
    drop(writer);

    // Which columns the clean CSV keeps.
    let mut ignore_features: Vec<String> = Vec::new();
    for d in &config.drop_columns {
        if index_of.contains_key(d) && !ignore_features.contains(d) {
            ignore_features.push(d.clone());
        }
    }
    if labelled {
        ignore_features.push(LABEL_NAME.to_owned());
    }
    let feature_to_predict: Option<&str> = labelled.then_some(LABEL_VALUE);
    let features_to_process: Vec<String> = columns
        .iter()
        .filter(|c| !ignore_features.contains(c) && Some(c.as_str()) != feature_to_predict)
        .cloned()
        .collect();
    let mut keep: Vec<usize> = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        if ignore_features.contains(c) {
            continue;
        }
        if !has_value[i] {
            report.empty_columns.push(c.clone());
        } else if !numeric[i] {
            report.non_numeric_columns.push(c.clone());
        } else {
            keep.push(i);
        }
    }
    report.clean_columns = keep.iter().map(|&i| columns[i].clone()).collect();

    // Pass 3: the full CSV again, numeric-ready columns only.
    let mut clean = AtomicFile::new(&config.cleaned_file)?;
    let mut clean_writer = csv_writer(&clean)?;
    clean_writer
        .write_record(&report.clean_columns)
        .map_err(|e| write_error_of(&clean, e))?;
    let mut reader = open_reader(&full.tmp).map_err(|e| match e {
        PrepareError::Open { error, .. } => full.write_error(error),
        other => other,
    })?;
    let mut record = csv::ByteRecord::new();
    let fill = config.fill_missing.as_deref().map(str::as_bytes);
    // No column to keep: the clean CSV is its (empty) header alone, every row left out.
    if keep.is_empty() {
        report.clean_rows_dropped = report.rows_written;
    }
    while !keep.is_empty() {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(write_error_of(&full, e)),
        }
        let cell = |i: usize| record.get(i).unwrap_or(b"");
        if fill.is_none() && keep.iter().any(|&i| cell(i).is_empty()) {
            report.clean_rows_dropped += 1;
            continue;
        }
        for &i in &keep {
            let v = match (cell(i), fill) {
                (b"", Some(f)) => f,
                (v, _) => v,
            };
            clean_writer
                .write_field(v)
                .map_err(|e| write_error_of(&clean, e))?;
        }
        clean_writer
            .write_record(None::<&[u8]>)
            .map_err(|e| write_error_of(&clean, e))?;
        report.clean_rows_written += 1;
    }
    clean_writer.flush().map_err(|e| clean.write_error(e))?;
    drop(clean_writer);

    // Metadata, then every file into place.
    let created = now_created();
    let pipeline_files: Vec<String> = files
        .iter()
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    let post_proc_rules = json!({
        "drop_columns": config.drop_columns,
        "predict_feature": feature_to_predict,
        "fill_missing": config.fill_missing,
    });
    let label_rules = config.label.as_ref().map(|r| {
        json!({
            "set_if_above": r.above,
            "labels": r.names,
            "label_values": r.values,
            "label_column": r.column,
            "seed": config.seed,
        })
    });
    let fulldata_meta = json!({
        "headers": columns,
        "output_type": "fulldata",
        "pipeline_files": pipeline_files,
        "post_proc_rules": post_proc_rules,
        "label_rules": label_rules,
        "features_to_process": features_to_process,
        "feature_to_predict": feature_to_predict,
        "ignore_features": ignore_features,
        "rows": report.rows_written,
        "rows_skipped": report.rows_skipped,
        "created": created,
    });
    let cleaned_to_process: Vec<&String> = report
        .clean_columns
        .iter()
        .filter(|c| Some(c.as_str()) != feature_to_predict)
        .collect();
    let mut cleaned_ignore: Vec<String> = ignore_features.clone();
    cleaned_ignore.extend(report.empty_columns.iter().cloned());
    cleaned_ignore.extend(report.non_numeric_columns.iter().cloned());
    let cleaned_meta = json!({
        "headers": report.clean_columns,
        "output_type": "clean",
        "pipeline_files": pipeline_files,
        "post_proc_rules": post_proc_rules,
        "label_rules": label_rules,
        "features_to_process": cleaned_to_process,
        "feature_to_predict": feature_to_predict,
        "ignore_features": cleaned_ignore,
        "empty_columns": report.empty_columns,
        "non_numeric_columns": report.non_numeric_columns,
        "rows": report.clean_rows_written,
        "rows_dropped_for_empty_cells": report.clean_rows_dropped,
        "created": created,
    });
    report.fulldata_metadata = metadata_path(&config.fulldata_file, "fulldata_metadata.json");
    report.cleaned_metadata = metadata_path(&config.cleaned_file, "cleaned_metadata.json");
    let mut full_meta_file = write_json(&report.fulldata_metadata, &fulldata_meta)?;
    let mut clean_meta_file = write_json(&report.cleaned_metadata, &cleaned_meta)?;
    full.commit()?;
    clean.commit()?;
    full_meta_file.commit()?;
    clean_meta_file.commit()?;
    report.files = files;
    report.columns = columns;
    Ok(report)
}

fn write_json(path: &Path, value: &Value) -> Result<AtomicFile, PrepareError> {
    let file = AtomicFile::new(path)?;
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| file.write_error(io::Error::other(e.to_string())))?;
    text.push('\n');
    io::Write::write_all(&mut file.handle()?, text.as_bytes()).map_err(|e| file.write_error(e))?;
    Ok(file)
}

impl PrepareReport {
    /// The closing summary (stderr).
    pub fn summary(&self, config: &PrepareConfig) -> String {
        let mut s = format!(
            "dataset prepare: {} files, {} rows read, {} written to {}, {} skipped\n",
            self.files.len(),
            self.rows_read,
            self.rows_written,
            config.fulldata_file.display(),
            self.rows_skipped,
        );
        if let Some(rule) = &config.label {
            s.push_str(&format!(
                "labels: {} {} ({}), {} {} ({}); seed {}",
                self.label_counts[0],
                rule.names[0],
                rule.values[0],
                self.label_counts[1],
                rule.names[1],
                rule.values[1],
                config.seed
            ));
            if rule.column.is_some() {
                s.push_str(&format!(
                    "; {} rows without a number in the label column",
                    self.label_column_not_numeric
                ));
            }
            s.push('\n');
        }
        s.push_str(&format!(
            "clean: {} columns, {} rows written to {}, {} rows dropped for an empty cell; left \
             out: {} empty columns, {} non-numeric columns\n",
            self.clean_columns.len(),
            self.clean_rows_written,
            config.cleaned_file.display(),
            self.clean_rows_dropped,
            self.empty_columns.len(),
            self.non_numeric_columns.len(),
        ));
        s.push_str(&format!(
            "metadata: {} and {}",
            self.fulldata_metadata.display(),
            self.cleaned_metadata.display()
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_decimal_only() {
        for ok in ["0", "-1", "+2", "3.5", ".5", "5.", "1e3", "1.5E-7", "00012"] {
            assert!(is_number(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "", "-", ".", "e3", "1e", "1e+", "nan", "inf", "0x10", " 1", "1 ", "1,000", "[1]",
            "True",
        ] {
            assert!(!is_number(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn draw_is_seeded_and_in_range() {
        let a: Vec<u64> = {
            let mut r = SplitMix64::new(7);
            (0..1000).map(|_| r.percent_draw()).collect()
        };
        let b: Vec<u64> = {
            let mut r = SplitMix64::new(7);
            (0..1000).map(|_| r.percent_draw()).collect()
        };
        assert_eq!(a, b);
        assert!(a.iter().all(|&v| v <= 100));
        assert!(a.contains(&0) || a.contains(&100) || a.iter().any(|&v| v > 90));
        let mut c = SplitMix64::new(8);
        assert_ne!(
            a[..20],
            (0..20).map(|_| c.percent_draw()).collect::<Vec<_>>()[..]
        );
    }

    #[test]
    fn splitmix_first_value_is_the_published_one() {
        // Reference value of SplitMix64 for seed 0 (first output), as in Vigna's splitmix64.c.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn metadata_sits_beside_the_csv() {
        assert_eq!(
            metadata_path(Path::new("/a/b/full.csv"), "fulldata_metadata.json"),
            PathBuf::from("/a/b/fulldata_metadata.json")
        );
        assert_eq!(
            metadata_path(Path::new("full.csv"), "x.json"),
            PathBuf::from("x.json")
        );
    }

    #[test]
    fn ragged_problem_names_file_and_line() {
        let p = RowProblem {
            file: PathBuf::from("in.csv"),
            line: 4,
            kind: RowProblemKind::Ragged {
                expected: 3,
                found: 2,
            },
        };
        assert_eq!(
            p.to_string(),
            "in.csv:4: ragged row: 2 fields where the header has 3; row skipped"
        );
    }

    /// A scratch directory for one test, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let p =
                std::env::temp_dir().join(format!("np-prepare-unit-{}-{tag}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn config_for(dir: &Path, input: &Path) -> PrepareConfig {
        PrepareConfig {
            inputs: vec![input.to_string_lossy().into_owned()],
            fulldata_file: dir.join("full.csv"),
            cleaned_file: dir.join("clean.csv"),
            drop_columns: DEFAULT_DROP_COLUMNS.map(String::from).to_vec(),
            label: Some(LabelRule {
                above: 50.0,
                column: None,
                names: ["a".into(), "b".into()],
                values: [0, 1],
            }),
            seed: 1,
            fill_missing: None,
        }
    }

    /// Issue 9 item 9: the old temporaries were `.<name>.tmp-<pid>` beside the output (in
    /// /tmp by default), created following links. Links planted at those names for this very
    /// process are neither followed nor used.
    #[test]
    fn links_at_the_old_predictable_temporary_names_are_not_followed() {
        let dir = Scratch::new("oldtmp");
        let input = dir.0.join("in.csv");
        fs::write(&input, b"idx,x\n0,1\n1,2\n").unwrap();
        let victim = dir.0.join("victim");
        fs::write(&victim, b"precious").unwrap();
        let pid = std::process::id();
        let planted: Vec<PathBuf> = [
            "full.csv",
            "clean.csv",
            "fulldata_metadata.json",
            "cleaned_metadata.json",
        ]
        .iter()
        .map(|n| dir.0.join(format!(".{n}.tmp-{pid}")))
        .collect();
        for at in &planted {
            std::os::unix::fs::symlink(&victim, at).unwrap();
        }
        prepare(&config_for(&dir.0, &input)).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        for at in &planted {
            assert!(fs::symlink_metadata(at).unwrap().file_type().is_symlink());
        }
        assert_eq!(
            fs::read_to_string(dir.0.join("full.csv"))
                .unwrap()
                .lines()
                .count(),
            3
        );
    }

    #[test]
    fn invalid_utf8_row_is_skipped_with_its_line() {
        let dir = Scratch::new("utf8");
        let input = dir.0.join("in.csv");
        fs::write(&input, b"idx,x\n0,1\n1,\xff\xfe\n2,3\n").unwrap();
        let report = prepare(&config_for(&dir.0, &input)).unwrap();
        assert_eq!((report.rows_read, report.rows_written), (3, 2));
        assert_eq!(
            report.problems,
            [RowProblem {
                file: input.clone(),
                line: 3,
                kind: RowProblemKind::InvalidUtf8
            }]
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Any bytes as an input CSV: a report or an error, never a panic; every row read is
        /// either written or counted as skipped.
        #[test]
        fn any_bytes_no_panic(bytes in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::prelude::Just(b','),
                proptest::prelude::Just(b'"'),
                proptest::prelude::Just(b'\n'),
                proptest::prelude::Just(b'\r'),
                proptest::prelude::Just(b'1'),
                proptest::prelude::Just(b'a'),
                proptest::prelude::any::<u8>(),
            ],
            0..300,
        )) {
            let dir = Scratch::new("prop");
            let input = dir.0.join("in.csv");
            fs::write(&input, &bytes).unwrap();
            if let Ok(r) = prepare(&config_for(&dir.0, &input)) {
                proptest::prop_assert_eq!(r.rows_read, r.rows_written + r.rows_skipped);
                proptest::prop_assert_eq!(
                    r.clean_rows_written + r.clean_rows_dropped,
                    r.rows_written
                );
            }
        }
    }
}
