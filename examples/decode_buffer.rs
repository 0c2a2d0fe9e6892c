//! Decoding frames from a buffer of your own: no capture, no threads, no I/O.
//!
//! Builds one Ethernet/IPv4/UDP/DNS query in memory, decodes it, walks its layers, writes
//! its JSON message, runs a classic BPF program compiled elsewhere (`tcpdump -ddd`) over it,
//! and reads the same frame back out of an in-memory pcap file. Everything here is in the
//! crate with `default-features = false` (no async runtime, no TLS, no libpcap):
//!
//! ```text
//! cargo run --no-default-features --example decode_buffer
//! ```
//!
//! It prints the JSON message on stdout and exits non-zero if any step disagrees with what
//! the frame holds.

use std::io::Cursor;
use std::process::ExitCode;

use netpipe_fast::decode::{self, Layer, LinkType};
use netpipe_fast::encode::{FrameMeta, JsonEncoder};
use netpipe_fast::source::filter::BpfFilter;
use netpipe_fast::source::pcap_file::CaptureReader;

/// `tcpdump -ddd -y EN10MB 'udp port 53'` (libpcap 1.10): a filter compiled on another
/// machine, shipped as text.
const UDP_53: &str = "20\n40 0 0 12\n21 0 6 34525\n48 0 0 20\n21 0 15 17\n40 0 0 54\n\
21 12 0 53\n40 0 0 56\n21 10 11 53\n21 0 10 2048\n48 0 0 23\n21 0 8 17\n40 0 0 20\n\
69 6 0 8191\n177 0 0 14\n72 0 0 14\n21 2 0 53\n72 0 0 16\n21 0 1 53\n6 0 0 262144\n6 0 0 0\n";

/// An Ethernet frame carrying a DNS query for `example.com` (type A) from 192.0.2.1:40000
/// to 198.51.100.53:53.
fn dns_query_frame() -> Vec<u8> {
    let mut dns = vec![
        0x12, 0x34, // id
        0x01, 0x00, // flags: recursion desired
        0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 1 question
    ];
    for label in ["example", "com"] {
        dns.push(label.len() as u8);
        dns.extend_from_slice(label.as_bytes());
    }
    dns.extend_from_slice(&[0, 0x00, 0x01, 0x00, 0x01]); // root, type A, class IN

    let udp_len = 8 + dns.len() as u16;
    let mut udp = Vec::new();
    udp.extend_from_slice(&40000u16.to_be_bytes());
    udp.extend_from_slice(&53u16.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]); // checksum not computed (allowed over IPv4)
    udp.extend_from_slice(&dns);

    let total_len = 20 + udp.len() as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total_len.to_be_bytes());
    ip.extend_from_slice(&[0x00, 0x01, 0x40, 0x00, 64, 17, 0, 0]); // id, DF, ttl, UDP
    ip.extend_from_slice(&[192, 0, 2, 1, 198, 51, 100, 53]);
    let sum = ip
        .chunks(2)
        .fold(0u32, |s, w| s + u32::from(u16::from_be_bytes([w[0], w[1]])));
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&udp);

    let mut frame = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00];
    frame.extend_from_slice(&ip);
    frame
}

/// A classic pcap file (microsecond timestamps, Ethernet) holding `frame` once.
fn pcap_file_with(frame: &[u8], time_ns: i64) -> Vec<u8> {
    let mut file = Vec::new();
    file.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic: little-endian, µs
    file.extend_from_slice(&2u16.to_le_bytes());
    file.extend_from_slice(&4u16.to_le_bytes());
    for word in [0u32, 0, 262_144, 1] {
        file.extend_from_slice(&word.to_le_bytes());
    }
    let (sec, usec) = (time_ns / 1_000_000_000, time_ns % 1_000_000_000 / 1_000);
    let len = frame.len() as u32;
    for word in [sec as u32, usec as u32, len, len] {
        file.extend_from_slice(&word.to_le_bytes());
    }
    file.extend_from_slice(frame);
    file
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("decode_buffer: {why}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let frame = dns_query_frame();
    // 2024-01-02 03:04:05.5 UTC.
    let time_ns = 1_704_164_645_500_000_000;

    // 1. Decode: no allocation; every layer borrows from `frame`.
    let packet = decode::decode(LinkType::Ethernet, &frame);
    if let Some(error) = packet.error {
        return Err(format!("the frame did not decode: {error:?}"));
    }
    let mut names = Vec::new();
    for layer in packet.layers() {
        names.push(match layer {
            Layer::Ether(_) => "Ethernet".to_string(),
            Layer::Ipv4(ip) => match ip.split() {
                Some((hdr, _options)) => format!("IPv4 ttl {}", hdr.ttl),
                None => "IPv4 (short)".to_string(),
            },
            Layer::Udp(udp) => format!("UDP {}->{}", udp.hdr.sport.get(), udp.hdr.dport.get()),
            Layer::Dns(_) => "DNS".to_string(),
            other => format!("{other:?}"),
        });
    }
    eprintln!("layers: {}", names.join(" / "));
    if names != ["Ethernet", "IPv4 ttl 64", "UDP 40000->53", "DNS"] {
        return Err(format!("unexpected layers {names:?}"));
    }

    // 2. Encode: the AntiNex-compatible JSON message, appended to a buffer you own.
    let mut encoder = JsonEncoder::new("example-host");
    let meta = FrameMeta {
        time_ns,
        wire_len: frame.len() as u32,
        cap_len: frame.len() as u32,
    };
    let mut json = Vec::new();
    encoder.encode(&mut json, &meta, &packet);
    let text = String::from_utf8(json).map_err(|e| format!("JSON is not UTF-8: {e}"))?;
    for needle in ["\"source\":\"example-host\"", "\"qname\":\"example.com.\""] {
        if !text.contains(needle) {
            return Err(format!("the message lacks {needle}: {text}"));
        }
    }
    print!("{text}");

    // 3. Filter with a program compiled elsewhere: our interpreter, no libpcap.
    let filter = BpfFilter::from_ddd("udp port 53", LinkType::Ethernet.number(), UDP_53)
        .map_err(|e| e.to_string())?;
    if !filter.matches(&frame, frame.len() as u32) {
        return Err("`udp port 53` rejected a DNS query".into());
    }
    let mut not_dns = frame.clone();
    not_dns[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&54u16.to_be_bytes());
    not_dns[14 + 20..14 + 20 + 2].copy_from_slice(&54u16.to_be_bytes());
    if filter.matches(&not_dns, not_dns.len() as u32) {
        return Err("`udp port 53` accepted port 54".into());
    }
    eprintln!("filter: `udp port 53` accepts the query, refuses port 54");

    // 4. Read it back from a capture file held in memory (any `io::Read` works).
    let file = pcap_file_with(&frame, time_ns);
    let mut reader =
        CaptureReader::new(Cursor::new(file), "memory.pcap".into()).map_err(|e| e.to_string())?;
    let mut frames = 0;
    while let Some(read) = reader.next_frame().map_err(|e| e.to_string())? {
        frames += 1;
        if read.data != frame.as_slice() || read.time_ns != time_ns || read.link_type != 1 {
            return Err(format!("frame {frames} of memory.pcap differs: {read:?}"));
        }
    }
    if frames != 1 {
        return Err(format!("memory.pcap held {frames} frames, expected 1"));
    }
    eprintln!("pcap: 1 frame read back, bytes and time unchanged");
    Ok(())
}
