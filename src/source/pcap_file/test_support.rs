//! Builders of pcap and pcapng images and reading helpers shared by the reader's tests.

use std::io::Read;

use super::pcapng::{BLOCK_EPB, BLOCK_IDB, BLOCK_PB, BLOCK_SPB, BYTE_ORDER_MAGIC, OPT_ENDOFOPT};
use super::*;

// ---- image builders -------------------------------------------------------------------

pub(super) fn put16(out: &mut Vec<u8>, big: bool, v: u16) {
    out.extend_from_slice(&if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    });
}

pub(super) fn put32(out: &mut Vec<u8>, big: bool, v: u32) {
    out.extend_from_slice(&if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    });
}

pub(super) fn put64(out: &mut Vec<u8>, big: bool, v: u64) {
    out.extend_from_slice(&if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    });
}

/// A pcap image; `records` remembers where each record ends.
pub(super) struct Pcap {
    pub(super) big: bool,
    pub(super) out: Vec<u8>,
    pub(super) record_ends: Vec<usize>,
}

impl Pcap {
    pub(super) fn with(
        big: bool,
        magic: u32,
        version: (u16, u16),
        snaplen: u32,
        link: u32,
    ) -> Pcap {
        let mut out = Vec::new();
        put32(&mut out, big, magic);
        put16(&mut out, big, version.0);
        put16(&mut out, big, version.1);
        put32(&mut out, big, 0); // thiszone
        put32(&mut out, big, 0); // sigfigs
        put32(&mut out, big, snaplen);
        put32(&mut out, big, link);
        Pcap {
            big,
            out,
            record_ends: Vec::new(),
        }
    }

    pub(super) fn new(big: bool, nanosecond: bool, link: u32) -> Pcap {
        let magic = if nanosecond {
            MAGIC_PCAP_NS_BE
        } else {
            MAGIC_PCAP_US_BE
        };
        Pcap::with(big, magic, (2, 4), 65_535, link)
    }

    /// Writes a record with explicit header fields (caplen may disagree with `data`).
    pub(super) fn raw(
        &mut self,
        sec: u32,
        frac: u32,
        caplen: u32,
        orig: u32,
        data: &[u8],
    ) -> &mut Self {
        put32(&mut self.out, self.big, sec);
        put32(&mut self.out, self.big, frac);
        put32(&mut self.out, self.big, caplen);
        put32(&mut self.out, self.big, orig);
        self.out.extend_from_slice(data);
        self.record_ends.push(self.out.len());
        self
    }

    pub(super) fn rec(&mut self, sec: u32, frac: u32, orig: u32, data: &[u8]) -> &mut Self {
        self.raw(sec, frac, data.len() as u32, orig, data)
    }
}

/// A pcapng image; `blocks` remembers (start, end, carries a packet) for each block.
pub(super) struct Ng {
    pub(super) big: bool,
    pub(super) out: Vec<u8>,
    pub(super) blocks: Vec<(usize, usize, bool)>,
}

pub(super) fn options(big: bool, opts: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    if opts.is_empty() {
        return out;
    }
    for (code, value) in opts {
        put16(&mut out, big, *code);
        put16(&mut out, big, value.len() as u16);
        out.extend_from_slice(value);
        out.resize((out.len() + 3) & !3, 0);
    }
    put16(&mut out, big, OPT_ENDOFOPT);
    put16(&mut out, big, 0);
    out
}

impl Ng {
    pub(super) fn new(big: bool) -> Ng {
        let mut ng = Ng {
            big,
            out: Vec::new(),
            blocks: Vec::new(),
        };
        ng.shb(big);
        ng
    }

    pub(super) fn block(&mut self, block_type: u32, body: &[u8], packet: bool) -> &mut Self {
        let start = self.out.len();
        let total = (12 + body.len() + 3) & !3;
        put32(&mut self.out, self.big, block_type);
        put32(&mut self.out, self.big, total as u32);
        self.out.extend_from_slice(body);
        self.out.resize(start + total - 4, 0);
        put32(&mut self.out, self.big, total as u32);
        self.blocks.push((start, self.out.len(), packet));
        self
    }

    pub(super) fn shb_version(&mut self, big: bool, major: u16, minor: u16) -> &mut Self {
        self.big = big;
        let mut body = Vec::new();
        put32(&mut body, big, BYTE_ORDER_MAGIC);
        put16(&mut body, big, major);
        put16(&mut body, big, minor);
        put64(&mut body, big, u64::MAX); // section length: unknown
        body.extend(options(big, &[(1, b"a comment")]));
        self.block(BLOCK_SHB, &body, false)
    }

    pub(super) fn shb(&mut self, big: bool) -> &mut Self {
        self.shb_version(big, 1, 0)
    }

    pub(super) fn idb(&mut self, link: u16, snaplen: u32, opts: &[(u16, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        put16(&mut body, self.big, link);
        put16(&mut body, self.big, 0);
        put32(&mut body, self.big, snaplen);
        body.extend(options(self.big, opts));
        self.block(BLOCK_IDB, &body, false)
    }

    pub(super) fn epb_raw(
        &mut self,
        ifid: u32,
        ts: u64,
        caplen: u32,
        orig: u32,
        data: &[u8],
    ) -> &mut Self {
        let mut body = Vec::new();
        put32(&mut body, self.big, ifid);
        put32(&mut body, self.big, (ts >> 32) as u32);
        put32(&mut body, self.big, ts as u32);
        put32(&mut body, self.big, caplen);
        put32(&mut body, self.big, orig);
        body.extend_from_slice(data);
        body.resize((body.len() + 3) & !3, 0);
        body.extend(options(self.big, &[(1, b"epb comment")]));
        self.block(BLOCK_EPB, &body, true)
    }

    pub(super) fn epb(&mut self, ifid: u32, ts: u64, orig: u32, data: &[u8]) -> &mut Self {
        self.epb_raw(ifid, ts, data.len() as u32, orig, data)
    }

    pub(super) fn spb(&mut self, orig: u32, data: &[u8]) -> &mut Self {
        let mut body = Vec::new();
        put32(&mut body, self.big, orig);
        body.extend_from_slice(data);
        self.block(BLOCK_SPB, &body, true)
    }

    pub(super) fn pb(&mut self, ifid: u16, ts: u64, orig: u32, data: &[u8]) -> &mut Self {
        let mut body = Vec::new();
        put16(&mut body, self.big, ifid);
        put16(&mut body, self.big, 0); // drops
        put32(&mut body, self.big, (ts >> 32) as u32);
        put32(&mut body, self.big, ts as u32);
        put32(&mut body, self.big, data.len() as u32);
        put32(&mut body, self.big, orig);
        body.extend_from_slice(data);
        self.block(BLOCK_PB, &body, true)
    }

    /// Name resolution, interface statistics, decryption secrets, custom, unknown.
    pub(super) fn other_blocks(&mut self) -> &mut Self {
        let big = self.big;
        let mut nrb = Vec::new();
        put16(&mut nrb, big, 1); // nrb_record_ipv4
        put16(&mut nrb, big, 13);
        nrb.extend_from_slice(&[10, 0, 0, 1]);
        nrb.extend_from_slice(b"host.a\0\0\0");
        nrb.resize((nrb.len() + 3) & !3, 0);
        nrb.extend_from_slice(&[0, 0, 0, 0]); // nrb_record_end
        self.block(4, &nrb, false);
        let mut isb = Vec::new();
        put32(&mut isb, big, 0);
        put64(&mut isb, big, 12345);
        self.block(5, &isb, false);
        self.block(0x0000_000a, &[1, 2, 3, 4, 0, 0, 0, 1, 9, 9, 9, 9], false);
        self.block(0x0000_0bad, &[0, 0, 0x7e, 0x4f, 1, 2, 3], false);
        self.block(0x4000_0bad, &[0, 0, 0x7e, 0x4f], false);
        self.block(0x1234_5678, &[], false)
    }
}

// ---- reading helpers -----------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Owned {
    pub(super) data: Vec<u8>,
    pub(super) wire_len: u32,
    pub(super) time_ns: i64,
    pub(super) link_type: u32,
    pub(super) interface_id: u32,
}

pub(super) fn owned(
    data: &[u8],
    wire_len: u32,
    time_ns: i64,
    link_type: u32,
    interface_id: u32,
) -> Owned {
    Owned {
        data: data.to_vec(),
        wire_len,
        time_ns,
        link_type,
        interface_id,
    }
}

pub(super) fn open_bytes(bytes: &[u8]) -> Result<CaptureReader<&[u8]>, ReadError> {
    CaptureReader::new(bytes, "t.cap".to_string())
}

/// Every frame until the end or the first error.
pub(super) fn drain<R: Read>(reader: &mut CaptureReader<R>) -> (Vec<Owned>, Option<ReadError>) {
    let mut frames = Vec::new();
    loop {
        match reader.next_frame() {
            Ok(Some(f)) => frames.push(owned(
                f.data,
                f.wire_len,
                f.time_ns,
                f.link_type,
                f.interface_id,
            )),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

/// Frames, the error (as text) and the final offset of reading `bytes` in place.
pub(super) fn read_in_place(bytes: &[u8]) -> (Vec<Owned>, Option<String>, u64) {
    let shared: std::sync::Arc<dyn AsRef<[u8]> + Send + Sync> = std::sync::Arc::new(bytes.to_vec());
    match CaptureReader::from_shared_bytes(shared, "t.cap".to_string()) {
        Err(e) => (Vec::new(), Some(e.to_string()), 0),
        Ok(mut reader) => {
            assert!(reader.is_in_place());
            let (frames, error) = drain(&mut reader);
            if error.is_some() {
                assert!(matches!(reader.next_frame(), Ok(None)));
            }
            (frames, error.map(|e| e.to_string()), reader.offset())
        }
    }
}

pub(super) fn read_ok(bytes: &[u8]) -> Vec<Owned> {
    let mut reader = open_bytes(bytes).expect("header");
    let (frames, error) = drain(&mut reader);
    assert!(error.is_none(), "unexpected error: {}", error.unwrap());
    assert_eq!(reader.offset(), bytes.len() as u64);
    // In place: the same frames, to the same end.
    assert_eq!(
        read_in_place(bytes),
        (frames.clone(), None, reader.offset())
    );
    frames
}

pub(super) fn read_err(bytes: &[u8]) -> (Vec<Owned>, ReadError) {
    match open_bytes(bytes) {
        Err(e) => {
            assert_eq!(read_in_place(bytes), (Vec::new(), Some(e.to_string()), 0));
            (Vec::new(), e)
        }
        Ok(mut reader) => {
            let (frames, error) = drain(&mut reader);
            let error = error.expect("an error");
            // After an error the reader is finished.
            assert!(matches!(reader.next_frame(), Ok(None)));
            // In place: the same frames before the same error.
            let (in_place, in_place_error, _) = read_in_place(bytes);
            assert_eq!(in_place, frames);
            assert_eq!(in_place_error, Some(error.to_string()));
            (frames, error)
        }
    }
}

pub(super) fn corrupt_at(error: &ReadError) -> u64 {
    match error {
        ReadError::Corrupt { offset, .. } => *offset,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

pub(super) const ETH: u32 = 1;
pub(super) const RAW: u32 = 101;
pub(super) const LINUX_SLL: u32 = 113;
pub(super) const BASE_S: u32 = 1_700_000_000;
pub(super) const BASE_NS: i64 = 1_700_000_000 * 1_000_000_000;

/// Cutting a valid image anywhere yields exactly the frames before the cut, then a clean
/// end at a record boundary or a Truncated error naming the record cut in two.
pub(super) fn check_every_cut(
    full: &[u8],
    record_ends: &[(usize, usize, bool)],
    header_end: usize,
) {
    let expected = read_ok(full);
    for cut in 0..full.len() {
        let bytes = &full[..cut];
        let result = open_bytes(bytes);
        if cut < 4 {
            let error = result.unwrap_err();
            assert!(matches!(error, ReadError::NotACapture { .. }), "{cut}");
            assert_eq!(error.exit_code(), 4);
            continue;
        }
        if cut < header_end {
            let error = result.unwrap_err();
            assert!(
                matches!(error, ReadError::Truncated { offset: 0, .. }),
                "{cut}: {error}"
            );
            continue;
        }
        let mut reader = result.unwrap();
        let (frames, error) = drain(&mut reader);
        let whole_packets = record_ends
            .iter()
            .filter(|(_, end, packet)| *packet && *end <= cut)
            .count();
        assert_eq!(frames, expected[..whole_packets], "cut at {cut}");
        match record_ends
            .iter()
            .find(|(start, end, _)| *start < cut && cut < *end)
        {
            None => assert!(error.is_none(), "cut at {cut}: {}", error.unwrap()),
            Some((start, end, _)) => match error {
                Some(ReadError::Truncated {
                    offset,
                    needed_bytes,
                    present_bytes,
                    ..
                }) => {
                    assert_eq!(offset, *start as u64, "cut at {cut}");
                    assert_eq!(present_bytes, (cut - start) as u64, "cut at {cut}");
                    assert!(needed_bytes <= (end - start) as u64);
                    assert!(needed_bytes > present_bytes);
                }
                other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
            },
        }
    }
}

/// One section: three interfaces with different link types and resolutions, every packet
/// block kind, and every skipped block kind.
pub(super) fn rich_pcapng(big: bool) -> (Ng, Vec<Owned>) {
    let mut ng = Ng::new(big);
    let offset = if big { 100i64 } else { -100i64 };
    let offset_bytes = if big {
        offset.to_be_bytes()
    } else {
        offset.to_le_bytes()
    };
    ng.idb(ETH as u16, 0, &[(2, b"eth0")]) // default: microseconds
        .idb(RAW as u16, 65_535, &[(9, &[9]), (2, b"raw0")]) // nanoseconds
        .idb(
            LINUX_SLL as u16,
            8,
            &[(9, &[0x80 | 10]), (14, &offset_bytes)], // 2^-10 s, offset
        )
        .other_blocks();
    let us = u64::from(BASE_S) * 1_000_000 + 250_000;
    let ns = u64::from(BASE_S) * 1_000_000_000 + 123_456_789;
    let binary = (u64::from(BASE_S) << 10) | 512; // + 0.5 s
    ng.epb(0, us, 60, &[0x11; 60])
        .epb(1, ns, 40, &[0x45, 0, 0, 40])
        .other_blocks()
        .epb(2, binary, 1000, &[1, 2, 3, 4, 5, 6, 7, 8])
        .spb(100, &[0x22; 100])
        .pb(1, ns + 1, 9, &[8, 7, 6, 5, 4, 3, 2, 1, 0])
        .epb(0, 0, 0, &[]);
    let expected = vec![
        owned(&[0x11; 60], 60, BASE_NS + 250_000_000, ETH, 0),
        owned(&[0x45, 0, 0, 40], 40, BASE_NS + 123_456_789, RAW, 1),
        owned(
            &[1, 2, 3, 4, 5, 6, 7, 8],
            1000,
            BASE_NS + 500_000_000 + offset * 1_000_000_000,
            LINUX_SLL,
            2,
        ),
        owned(&[0x22; 100], 100, 0, ETH, 0),
        owned(
            &[8, 7, 6, 5, 4, 3, 2, 1, 0],
            9,
            BASE_NS + 123_456_790,
            RAW,
            1,
        ),
        owned(&[], 0, 0, ETH, 0),
    ];
    (ng, expected)
}
