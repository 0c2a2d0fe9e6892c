//! An appliance embedding the engine with a sink of its own.
//!
//! The engine (reader, decoding workers, bounded queues, the publisher thread) runs a
//! [`ReadJob`] over a capture file and hands the finished JSON batches to `CountingSink`, a
//! [`Sink`] written here: it counts messages and bytes and folds every message into an
//! order-sensitive FNV-1a hash, where a real appliance would forward them to its own store.
//! The example then decodes the same file a second time on its own thread, with the library's
//! decoder and encoder directly, and exits non-zero unless both agree message for message.
//!
//! ```text
//! cargo run --example appliance_sink [FILE.pcap]     # default: pcaps/mixed.pcap
//! ```
//!
//! Live capture (`pipeline::capture::CaptureJob`) runs the same workers and publisher over
//! the TPACKET_V3 ring, but needs CAP_NET_RAW and takes its output as an `Output`; reading a
//! file needs no privilege, so this is what CI runs.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use netpipe_fast::decode::{self, LinkType};
use netpipe_fast::encode::batch::JsonBatch;
use netpipe_fast::encode::{FrameMeta, JsonEncoder};
use netpipe_fast::pipeline::read::ReadJob;
use netpipe_fast::sink::{Output, Sink};
use netpipe_fast::source::pcap_file::CaptureReader;

/// What a stream of messages looked like: how many, how many bytes, and a hash of them in
/// order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    messages: u64,
    bytes: u64,
    fnv1a: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            messages: 0,
            bytes: 0,
            fnv1a: 0xcbf2_9ce4_8422_2325,
        }
    }

    /// Adds one message (a JSON object, without the newline that ends it in a stream).
    fn add(&mut self, message: &[u8]) {
        self.messages += 1;
        self.bytes += message.len() as u64;
        for &b in message {
            self.fnv1a = (self.fnv1a ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The appliance's sink. The publisher thread owns it (hence `Send`); the tally is shared so
/// the caller can read it after the run.
struct CountingSink {
    tally: Arc<Mutex<Tally>>,
    not_json: u64,
}

impl Sink for CountingSink {
    fn write_batch(&mut self, batch: &JsonBatch) -> io::Result<()> {
        let mut tally = self
            .tally
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        for message in batch.messages() {
            // `messages()` gives each message without its newline.
            if !(message.starts_with(b"{") && message.ends_with(b"}")) {
                self.not_json += 1;
            }
            tally.add(message);
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.not_json > 0 {
            return Err(io::Error::other(format!(
                "{} messages were not one JSON object",
                self.not_json
            )));
        }
        Ok(())
    }

    fn report(&self) -> Option<String> {
        let tally = self.tally.lock().ok()?;
        Some(format!(
            "counting sink: {} messages, {} bytes",
            tally.messages, tally.bytes
        ))
    }
}

/// The same file decoded and encoded on this thread, frame by frame, with the library's
/// building blocks: the reference the engine's output must equal.
fn reference(file: &Path, source_host: &str) -> Result<Tally, String> {
    let mut reader = CaptureReader::open(file).map_err(|e| e.to_string())?;
    let mut encoder = JsonEncoder::new(source_host);
    let mut tally = Tally::new();
    let mut json = Vec::new();
    while let Some(frame) = reader.next_frame().map_err(|e| e.to_string())? {
        let link = LinkType::from_number(frame.link_type)
            .ok_or_else(|| format!("link type {} is not decoded", frame.link_type))?;
        let meta = FrameMeta {
            time_ns: frame.time_ns,
            wire_len: frame.wire_len,
            cap_len: frame.data.len() as u32,
        };
        json.clear();
        encoder.encode(&mut json, &meta, &decode::decode(link, frame.data));
        tally.add(json.strip_suffix(b"\n").unwrap_or(&json));
    }
    Ok(tally)
}

fn main() -> ExitCode {
    let file = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/pcaps/mixed.pcap")),
        PathBuf::from,
    );
    let source_host = "appliance-1";

    let tally = Arc::new(Mutex::new(Tally::new()));
    let sink = CountingSink {
        tally: Arc::clone(&tally),
        not_json: 0,
    };
    let job = ReadJob {
        files: vec![file.clone()],
        filter: None,
        count: None,
        workers: 2,
        source_host: source_host.into(),
        // Names the destination in messages; the sink given to run_with_sink is what is used.
        output: Arc::new(Output::Discard),
        packet: Default::default(),
    };
    let outcome = job.run_with_sink(Box::new(sink));
    // What was decoded before an error was still delivered: say so either way.
    println!("{}", outcome.summary);
    if let Some(line) = &outcome.sink_report {
        println!("{line}");
    }
    if let Some(error) = &outcome.error {
        eprintln!("appliance_sink: {error}");
        return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1));
    }
    let engine = *tally.lock().expect("the publisher thread has ended");

    let expected = match reference(&file, source_host) {
        Ok(t) => t,
        Err(why) => {
            eprintln!(
                "appliance_sink: reference decode of {}: {why}",
                file.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let mut wrong = Vec::new();
    if outcome.summary.written != engine.messages {
        wrong.push(format!(
            "the engine says {} written, the sink counted {}",
            outcome.summary.written, engine.messages
        ));
    }
    if outcome.undelivered.any() {
        wrong.push(outcome.undelivered.line());
    }
    if engine != expected {
        wrong.push(format!(
            "engine {engine:?} differs from the frame-by-frame reference {expected:?}"
        ));
    }
    if !wrong.is_empty() {
        for line in wrong {
            eprintln!("appliance_sink: {line}");
        }
        return ExitCode::FAILURE;
    }
    println!(
        "ok: {} messages, {} bytes, fnv1a {:016x}, same as the reference",
        engine.messages, engine.bytes, engine.fnv1a
    );
    ExitCode::SUCCESS
}
