//! The reader's error type, its messages and its exit codes.

use std::fmt;
use std::io;

/// Why a capture could not be read (further).
#[derive(Debug)]
pub enum ReadError {
    /// The file could not be opened or read.
    Io {
        /// The file's name as given.
        name: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The file does not start with a pcap or pcapng magic number. `magic` holds the first
    /// four bytes (read big-endian) when the file has that many; `bytes_present` how many
    /// bytes there were, up to 4.
    NotACapture {
        /// The file's name as given.
        name: String,
        /// The first four bytes, read big-endian, if there were four.
        magic: Option<u32>,
        /// How many bytes the file had, up to 4.
        bytes_present: usize,
    },
    /// The file ends inside `what`, which starts at `offset` and needs `needed_bytes`; only
    /// `present_bytes` of them are there.
    Truncated {
        /// The file's name as given.
        name: String,
        /// Byte offset of the header, record or block that was cut.
        offset: u64,
        /// What was cut (`"a packet record header"`, `"a pcapng block"`, ...).
        what: &'static str,
        /// Bytes it needs.
        needed_bytes: u64,
        /// Bytes that are there.
        present_bytes: u64,
    },
    /// The record or block at `offset` breaks the format; `what` says how.
    Corrupt {
        /// The file's name as given.
        name: String,
        /// Byte offset of the record or block.
        offset: u64,
        /// How it breaks the format.
        what: String,
    },
    /// A version of the format this reader does not know.
    UnsupportedVersion {
        /// The file's name as given.
        name: String,
        /// Byte offset of the header that names the version.
        offset: u64,
        /// `"pcap"` or `"pcapng"`.
        format: &'static str,
        /// Major version number.
        major: u16,
        /// Minor version number.
        minor: u16,
    },
}

impl ReadError {
    /// Process exit code for this error: unreadable, not a capture, damaged/unsupported.
    pub fn exit_code(&self) -> i32 {
        i32::from(match self {
            ReadError::Io { .. } => crate::exit::INPUT_UNREADABLE,
            ReadError::NotACapture { .. } => crate::exit::NOT_A_CAPTURE,
            ReadError::Truncated { .. }
            | ReadError::Corrupt { .. }
            | ReadError::UnsupportedVersion { .. } => crate::exit::CAPTURE_DAMAGED,
        })
    }

    /// The file name the error is about.
    pub fn name(&self) -> &str {
        match self {
            ReadError::Io { name, .. }
            | ReadError::NotACapture { name, .. }
            | ReadError::Truncated { name, .. }
            | ReadError::Corrupt { name, .. }
            | ReadError::UnsupportedVersion { name, .. } => name,
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io { name, source } => write!(f, "{name}: {}", io_message(source)),
            ReadError::NotACapture {
                name,
                magic: Some(magic),
                ..
            } => match compression(*magic) {
                // Not decompressed on the fly: a pipe through the tool says what it costs.
                Some((kind, tool)) => write!(
                    f,
                    "{name}: {kind}-compressed, not a pcap or pcapng file; decompress it \
                     first: {tool} -dc {name} | netpipe-fast read -"
                ),
                None => write!(
                    f,
                    "{name}: not a pcap or pcapng file (starts with {magic:#010x})"
                ),
            },
            ReadError::NotACapture {
                name,
                bytes_present: 0,
                ..
            } => write!(f, "{name}: empty file, not a pcap or pcapng file"),
            ReadError::NotACapture {
                name,
                bytes_present,
                ..
            } => write!(
                f,
                "{name}: not a pcap or pcapng file (only {bytes_present} bytes long)"
            ),
            ReadError::Truncated {
                name,
                offset,
                what,
                needed_bytes,
                present_bytes,
            } => write!(
                f,
                "{name}: file ends in the middle of {what} at offset {offset} \
                 ({needed_bytes} bytes needed, {present_bytes} present)"
            ),
            ReadError::Corrupt { name, offset, what } => {
                write!(f, "{name}: corrupt capture at offset {offset}: {what}")
            }
            ReadError::UnsupportedVersion {
                name,
                offset,
                format,
                major,
                minor,
            } => write!(
                f,
                "{name}: unsupported {format} version {major}.{minor} at offset {offset}"
            ),
        }
    }
}

/// The compressor whose magic starts a file's first four bytes (big-endian), and the tool
/// that undoes it: gzip (RFC 1952), zstd (RFC 8878), xz, bzip2.
fn compression(magic: u32) -> Option<(&'static str, &'static str)> {
    match magic {
        m if m >> 16 == 0x1f8b => Some(("gzip", "gzip")),
        0x28b5_2ffd => Some(("zstd", "zstd")),
        0xfd37_7a58 => Some(("xz", "xz")),
        m if m >> 8 == 0x42_5a68 => Some(("bzip2", "bzip2")),
        _ => None,
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `io::Error`'s text without the " (os error N)" tail, so messages read like the C tools'.
fn io_message(error: &io::Error) -> String {
    let text = error.to_string();
    if let Some(code) = error.raw_os_error() {
        if let Some(stripped) = text.strip_suffix(&format!(" (os error {code})")) {
            return stripped.to_owned();
        }
    }
    text
}
