//! Sinks: where the publisher thread writes batches. This version has JSON lines to stdout and
//! to a file.

use crate::pipeline::batch::JsonBatch;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

/// A destination for pre-serialised batches.
pub trait Sink: Send {
    /// Writes every message of the batch, in order.
    fn write_batch(&mut self, batch: &JsonBatch) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

/// The `--output` choices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Stdout,
    File(PathBuf),
}

impl Output {
    /// `-` or `stdout`, or `file:PATH`.
    pub fn parse(s: &str) -> Result<Output, String> {
        match s {
            "-" | "stdout" => Ok(Output::Stdout),
            _ => match s.strip_prefix("file:") {
                Some("") => Err("output \"file:\" needs a path, as in file:/tmp/packets.jsonl".into()),
                Some(path) => Ok(Output::File(PathBuf::from(path))),
                None => Err(format!(
                    "unsupported output \"{}\": this version writes to \"-\" (stdout) or \"file:PATH\"",
                    redact(s)
                )),
            },
        }
    }

    pub fn open(&self) -> io::Result<Box<dyn Sink>> {
        Ok(match self {
            Output::Stdout => Box::new(StdoutSink),
            Output::File(path) => Box::new(FileSink {
                file: File::create(path)?,
            }),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Output::Stdout => "stdout".into(),
            Output::File(p) => format!("file:{}", p.display()),
        }
    }
}

/// Hides a password in a URL (`scheme://user:secret@host` becomes `scheme://user:***@host`).
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((cred, host)) = rest.split_once('@') {
            if let Some((user, _)) = cred.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    url.to_string()
}

struct StdoutSink;

impl Sink for StdoutSink {
    fn write_batch(&mut self, batch: &JsonBatch) -> io::Result<()> {
        io::stdout().lock().write_all(batch.bytes())
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

struct FileSink {
    file: File,
}

impl Sink for FileSink {
    fn write_batch(&mut self, batch: &JsonBatch) -> io::Result<()> {
        self.file.write_all(batch.bytes())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_outputs() {
        assert_eq!(Output::parse("-"), Ok(Output::Stdout));
        assert_eq!(Output::parse("file:/x"), Ok(Output::File("/x".into())));
        assert!(Output::parse("file:").is_err());
        let e = Output::parse("redis://u:hunter2@h:1/0").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
