//! Frames the tests build by hand, and the capture files that carry them: Ethernet/IPv4
//! frames with a correct header checksum, the Internet checksum, pcap files written by the
//! crate's own `-w` writer (`netpipe_fast::test_util`), and capinfos' count of a file.

use std::path::Path;
use std::process::Command;

/// Destination MAC of the built frames: not the receiving veth's, so B's stack ignores them.
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Source MAC of the built frames.
pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// Ethernet (802.1Q-tagged with `vlan_tci`) + IPv4 192.0.2.1 -> 192.0.2.2 with `proto`,
/// identification `ident` and a correct header checksum, then `l4`.
pub fn ipv4_frame(vlan_tci: Option<u16>, proto: u8, ident: u16, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    if let Some(tci) = vlan_tci {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4.len()) as u16;
    let mut hdr = vec![0x45, 0];
    hdr.extend_from_slice(&total.to_be_bytes());
    hdr.extend_from_slice(&ident.to_be_bytes());
    hdr.extend_from_slice(&[0x40, 0, 64, proto, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
    let sum = checksum(&hdr);
    hdr[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&hdr);
    f.extend_from_slice(l4);
    f
}

/// The Internet checksum (RFC 1071).
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes `frames` as a pcap file of `link_type` at `path`, frame `i` captured at
/// `first_ns` plus `i` microseconds (a replay of the file sends them back to back).
pub fn write_pcap<F: AsRef<[u8]>>(path: &Path, link_type: u32, first_ns: i64, frames: &[F]) {
    netpipe_fast::test_util::write_pcap(
        path,
        link_type,
        frames
            .iter()
            .enumerate()
            .map(|(i, f)| (first_ns + i as i64 * 1_000, f.as_ref())),
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// capinfos' exact frame count and data bytes (`-M`: machine-readable numbers).
pub fn capinfos(path: &Path) -> (u64, u64) {
    let out = Command::new("capinfos")
        .args(["-M", "-c", "-d"])
        .arg(path)
        .output()
        .expect("run capinfos (apt-get install tshark)");
    assert!(out.status.success(), "capinfos {}: {out:?}", path.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |label: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(label))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {label} in capinfos output: {text}"))
    };
    (field("Number of packets"), field("Data size"))
}

/// Whether `bytes` is a big-endian classic pcap (`Some(true)`), a little-endian one
/// (`Some(false)`), or not a classic pcap (`None`); micro- or nanosecond magic alike.
pub fn pcap_big_endian(bytes: &[u8]) -> Option<bool> {
    match bytes.get(..4)? {
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => Some(true),
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => Some(false),
        _ => None,
    }
}

/// Packet records of a capture file, as (start, end) byte ranges of each record or block,
/// in file order, found by walking the file here (independently of src/source, so a test can
/// check the reader against it). pcap: 16-byte record header + incl_len bytes. pcapng:
/// Enhanced, Simple and (obsolete) Packet Blocks; other blocks are skipped. Panics on a
/// truncated file or trailing bytes.
pub fn packet_records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut records = Vec::new();
    match pcap_big_endian(bytes) {
        Some(big_endian) => walk_pcap(bytes, big_endian, &mut records),
        None if bytes[..4] == [0x0a, 0x0d, 0x0d, 0x0a] => walk_pcapng(bytes, &mut records),
        None => panic!("not a capture file: magic {:02x?}", &bytes[..4]),
    }
    records
}

fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> u32 {
    let b: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
    if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

fn walk_pcap(bytes: &[u8], big_endian: bool, records: &mut Vec<(usize, usize)>) {
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let end = at + 16 + read_u32(bytes, at + 8, big_endian) as usize;
        assert!(end <= bytes.len(), "fixture itself is truncated at {at}");
        records.push((at, end));
        at = end;
    }
    assert_eq!(at, bytes.len(), "fixture has trailing bytes");
}

fn walk_pcapng(bytes: &[u8], records: &mut Vec<(usize, usize)>) {
    let mut at = 0;
    let mut big_endian = false;
    while at + 12 <= bytes.len() {
        if bytes[at..at + 4] == [0x0a, 0x0d, 0x0d, 0x0a] {
            // The byte-order magic 0x1A2B3C4D decides the order of this section.
            big_endian = bytes[at + 8..at + 12] == [0x1a, 0x2b, 0x3c, 0x4d];
        }
        let block_type = read_u32(bytes, at, big_endian);
        let end = at + read_u32(bytes, at + 4, big_endian) as usize;
        assert!(end > at && end <= bytes.len(), "bad pcapng block at {at}");
        if matches!(block_type, 2 | 3 | 6) {
            records.push((at, end));
        }
        at = end;
    }
    assert_eq!(at, bytes.len(), "fixture has trailing bytes");
}
