//! Huge records do not pin memory: `read -j 16` of a capture with 80 records of 16 MiB (the
//! largest a record may be) used to reach 2.4 GB of resident memory, because every buffer of
//! the pools grew to the largest frame (and twice that for its JSON) and stayed there, and the
//! pools bound buffers by count, not size. Now oversized buffers shrink back when reused and
//! only a few oversized batches are in flight, so the peak stays near a few frames' worth.
//!
//! The capture goes through a FIFO and the JSON to a pipe, so the test needs no 1.3 GB input
//! file nor 2.7 GB of output on disk; GNU time (`/usr/bin/time`, installed by scripts/test.sh)
//! reports the peak resident set of the process.

use std::io::{BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::harness::{mkfifo, TempDir};
use netpipe_fast::test_util::PcapFeed;

const RECORDS: usize = 80;
const RECORD_BYTES: usize = 16 * 1024 * 1024;
/// Peak resident memory allowed: the reader's record buffer, two oversized frame batches and
/// their JSON being encoded, a few encoded batches on their way out, and the ordinary pools.
/// (Before: 2.4 GB.)
const PEAK_RSS_LIMIT_KB: u64 = 640 * 1024;

/// A pcap (Ethernet, snaplen 16 MiB) of `RECORDS` records of `RECORD_BYTES` each, written
/// to `path`: an Ethernet header with an experimental EtherType, then bytes (shown as `raw`
/// hex).
fn write_capture(path: &Path) -> std::io::Result<()> {
    let mut feed = PcapFeed::create(path, 1, RECORD_BYTES as u32)?;
    let mut frame = vec![0x5au8; RECORD_BYTES];
    frame[..14].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5]);
    for i in 0..RECORDS {
        feed.write((i as i64 + 1) * 1_000_000_000, &frame)?;
    }
    feed.finish()
}

#[test]
fn sixteen_mib_records_with_16_workers_stay_within_memory_bound() {
    let dir = TempDir::new("np-big-records", "rss");
    let fifo = dir.path("big.pcap");
    mkfifo(&fifo);
    let mut child = Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kb=%M"])
        .arg(env!("CARGO_BIN_EXE_netpipe-fast"))
        .arg("read")
        .arg(&fifo)
        .args(["-j", "16", "-o", "-"])
        .env_remove("FORWARD_BROKER_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/time is installed (scripts/test.sh installs it)");
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || write_capture(&fifo))
    };
    let mut stderr = child.stderr.take().expect("stderr");
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // Count the messages and check each is one whole record's JSON.
    let mut out = BufReader::with_capacity(1 << 20, child.stdout.take().expect("stdout"));
    let mut lines = 0usize;
    let mut line_bytes = 0usize;
    let mut shortest = usize::MAX;
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = out.read(&mut chunk).expect("read stdout");
        if n == 0 {
            break;
        }
        for &b in &chunk[..n] {
            line_bytes += 1;
            if b == b'\n' {
                lines += 1;
                shortest = shortest.min(line_bytes);
                line_bytes = 0;
            }
        }
    }
    let status = child.wait().expect("wait");
    writer
        .join()
        .expect("writer thread")
        .expect("write the capture");
    let stderr = stderr_reader.join().expect("stderr thread");
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(lines, RECORDS, "every record written once: {stderr}");
    assert!(
        shortest > 2 * RECORD_BYTES,
        "each message holds its record as hex ({shortest} bytes)"
    );
    let peak_kb: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no maxrss_kb line from /usr/bin/time: {stderr}"));
    println!("peak resident set: {peak_kb} KiB");
    assert!(
        peak_kb <= PEAK_RSS_LIMIT_KB,
        "peak resident set {peak_kb} KiB is above {PEAK_RSS_LIMIT_KB} KiB"
    );
}
