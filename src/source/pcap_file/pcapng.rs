//! pcapng (draft-ietf-opsawg-pcapng): section headers, interface descriptions and the
//! packet blocks; every other block is skipped.

use std::io::Read;

use super::{
    saturate_i64, CaptureFormat, CaptureReader, Endian, FrameMeta, ReadError, State, BLOCK_SHB,
    MAX_RECORD_BYTES, NS_PER_SEC,
};

/// Interfaces one pcapng section may describe before it is called corrupt; keeps the
/// per-interface table bounded whatever the file says.
const MAX_INTERFACES_PER_SECTION: usize = 65_536;

pub(super) const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;

pub(super) const BLOCK_IDB: u32 = 0x0000_0001;
/// Obsolete Packet Block (draft-ietf-opsawg-pcapng appendix).
pub(super) const BLOCK_PB: u32 = 0x0000_0002;
pub(super) const BLOCK_SPB: u32 = 0x0000_0003;
pub(super) const BLOCK_EPB: u32 = 0x0000_0006;

/// Smallest total length of each block type: header (8) + fixed fields + trailer (4).
const MIN_BLOCK_BYTES: u32 = 12;
const MIN_SHB_BYTES: u32 = 28;
const MIN_IDB_BYTES: u32 = 20;
const MIN_EPB_BYTES: u32 = 32;
const MIN_PB_BYTES: u32 = 32;
const MIN_SPB_BYTES: u32 = 16;

pub(super) const OPT_ENDOFOPT: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// Timestamp resolution of a pcapng interface (option `if_tsresol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsResolution {
    /// Units of 10^-n seconds.
    Decimal(u8),
    /// Units of 2^-n seconds.
    Binary(u8),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Interface {
    link_type: u32,
    snaplen: u32,
    resolution: TsResolution,
    offset_s: i64,
}

impl Interface {
    /// `time_units` in this interface's resolution, plus its `if_tsoffset`, as nanoseconds.
    fn time_ns(&self, time_units: u64) -> i64 {
        let units = i128::from(time_units);
        let ns = match self.resolution {
            TsResolution::Decimal(n) if n <= 9 => {
                // 10^(9-n) ≤ 10^9 and units < 2^64: the product stays far below i128::MAX.
                units.saturating_mul(10i128.pow(u32::from(9 - n)))
            }
            TsResolution::Decimal(n) => {
                // Beyond 10^38 the divisor does not fit, and the quotient would be 0 anyway.
                10i128
                    .checked_pow(u32::from(n - 9))
                    .map_or(0, |divisor| units / divisor)
            }
            // units * 10^9 < 2^94, and n ≤ 127: neither the product nor the shift overflows.
            TsResolution::Binary(n) => units.saturating_mul(NS_PER_SEC) >> n,
        };
        let total = ns.saturating_add(i128::from(self.offset_s).saturating_mul(NS_PER_SEC));
        saturate_i64(total)
    }
}

#[derive(Debug)]
pub(super) struct PcapNgState {
    pub(super) endian: Endian,
    pub(super) interfaces: Vec<Interface>,
}

impl<R: Read> CaptureReader<R> {
    /// Checks a block's total length against the format's rules and this block's minimum.
    fn check_block_len(
        &self,
        block_offset: u64,
        block: &str,
        total_len: u32,
        min_len: u32,
    ) -> Result<(), ReadError> {
        if total_len < min_len {
            return Err(self.corrupt(
                block_offset,
                format!("{block} total length {total_len} is below its minimum of {min_len}"),
            ));
        }
        if total_len % 4 != 0 {
            return Err(self.corrupt(
                block_offset,
                format!("{block} total length {total_len} is not a multiple of 4"),
            ));
        }
        if total_len > MAX_RECORD_BYTES {
            return Err(self.corrupt(
                block_offset,
                format!(
                    "{block} total length {total_len} is above the limit of {MAX_RECORD_BYTES}"
                ),
            ));
        }
        Ok(())
    }

    /// Reads `body_len` bytes (everything after the bytes already consumed, trailer
    /// included) into `buf[..body_len]` and checks the trailing length.
    fn read_block_body(
        &mut self,
        block_offset: u64,
        endian: Endian,
        consumed: u32,
        total_len: u32,
    ) -> Result<usize, ReadError> {
        let body_len = total_len.saturating_sub(consumed) as usize;
        let got = self.fill_buf(body_len)?;
        if got < body_len {
            return Err(self.truncated(
                block_offset,
                "a pcapng block",
                u64::from(total_len),
                u64::from(consumed) + got as u64,
            ));
        }
        let trailer = endian
            .u32(self.record(), body_len.saturating_sub(4))
            .unwrap_or(0);
        if trailer != total_len {
            return Err(self.corrupt(
                block_offset,
                format!("block trailing length {trailer} differs from its leading {total_len}"),
            ));
        }
        Ok(body_len)
    }

    /// Reads a Section Header Block whose type (4 bytes) at `block_offset` is consumed.
    pub(super) fn read_section_header(&mut self, block_offset: u64) -> Result<(), ReadError> {
        let mut head = [0u8; 8];
        let got = self.read_in(&mut head)?;
        if got < head.len() {
            return Err(self.truncated(
                block_offset,
                "a section header block",
                u64::from(MIN_SHB_BYTES),
                4 + got as u64,
            ));
        }
        let [l0, l1, l2, l3, m0, m1, m2, m3] = head;
        let endian = match u32::from_be_bytes([m0, m1, m2, m3]) {
            BYTE_ORDER_MAGIC => Endian::Big,
            m if m == BYTE_ORDER_MAGIC.swap_bytes() => Endian::Little,
            other => {
                return Err(self.corrupt(
                    block_offset,
                    format!(
                        "section header byte-order magic is {other:#010x}, \
                         not 0x1a2b3c4d in either byte order"
                    ),
                ))
            }
        };
        let total_len = match endian {
            Endian::Big => u32::from_be_bytes([l0, l1, l2, l3]),
            Endian::Little => u32::from_le_bytes([l0, l1, l2, l3]),
        };
        self.check_block_len(
            block_offset,
            "section header block",
            total_len,
            MIN_SHB_BYTES,
        )?;
        self.read_block_body(block_offset, endian, 12, total_len)?;
        // Body now holds: major (2), minor (2), section length (8), options, trailer.
        let major = endian.u16(self.record(), 0).unwrap_or(0);
        let minor = endian.u16(self.record(), 2).unwrap_or(0);
        if major != 1 {
            return Err(ReadError::UnsupportedVersion {
                name: self.name.clone(),
                offset: block_offset,
                format: "pcapng",
                major,
                minor,
            });
        }
        // A new section starts with no interfaces (the table keeps its allocation).
        match &mut self.state {
            State::PcapNg(ng) => {
                ng.endian = endian;
                ng.interfaces.clear();
            }
            State::Pcap(_) => {
                self.state = State::PcapNg(PcapNgState {
                    endian,
                    interfaces: Vec::new(),
                })
            }
        }
        self.format = CaptureFormat::PcapNg;
        self.link_types.clear();
        self.offset = block_offset.saturating_add(u64::from(total_len));
        Ok(())
    }

    /// Parses an Interface Description Block body (`buf[..body_len]`, trailer included) and
    /// appends the interface to the current section.
    fn add_interface(
        &mut self,
        block_offset: u64,
        endian: Endian,
        body_len: usize,
    ) -> Result<(), ReadError> {
        let interface_count = match &self.state {
            State::PcapNg(ng) => ng.interfaces.len(),
            State::Pcap(_) => return Ok(()),
        };
        if interface_count >= MAX_INTERFACES_PER_SECTION {
            return Err(self.corrupt(
                block_offset,
                format!("more than {MAX_INTERFACES_PER_SECTION} interfaces in one section"),
            ));
        }
        // Body: link type (2), reserved (2), snaplen (4), options, trailer (4). The block
        // length check guarantees the 12 fixed bytes.
        let body = self.record().get(..body_len).unwrap_or_default();
        let link_type = u32::from(endian.u16(body, 0).unwrap_or(0));
        let snaplen = endian.u32(body, 4).unwrap_or(0);
        let mut interface = Interface {
            link_type,
            snaplen,
            // Without if_tsresol, timestamps are in microseconds.
            resolution: TsResolution::Decimal(6),
            offset_s: 0,
        };
        let options = body.get(8..body_len.saturating_sub(4)).unwrap_or_default();
        // Each option may appear once; should a writer repeat one, the first counts.
        let mut seen_resolution = false;
        let mut seen_offset = false;
        let parsed = for_each_option(endian, options, |code, value| {
            match code {
                OPT_IF_TSRESOL if !seen_resolution => {
                    let [byte] = value else {
                        return Err(format!(
                            "if_tsresol option has length {}, not 1",
                            value.len()
                        ));
                    };
                    // High bit clear: 10^-n seconds; set: 2^-(n & 0x7f) seconds.
                    interface.resolution = if byte & 0x80 == 0 {
                        TsResolution::Decimal(*byte)
                    } else {
                        TsResolution::Binary(byte & 0x7f)
                    };
                    seen_resolution = true;
                }
                OPT_IF_TSOFFSET if !seen_offset => {
                    interface.offset_s = match (value.len(), endian.i64(value, 0)) {
                        (8, Some(seconds)) => seconds,
                        _ => {
                            return Err(format!(
                                "if_tsoffset option has length {}, not 8",
                                value.len()
                            ))
                        }
                    };
                    seen_offset = true;
                }
                _ => {}
            }
            Ok(())
        });
        if let Err(what) = parsed {
            return Err(self.corrupt(block_offset, format!("interface description block: {what}")));
        }
        if let State::PcapNg(ng) = &mut self.state {
            ng.interfaces.push(interface);
        }
        self.link_types.push(link_type);
        Ok(())
    }

    /// Looks up interface `interface_id` of the current section.
    fn interface(
        &self,
        block_offset: u64,
        block: &str,
        interface_id: u32,
    ) -> Result<Interface, ReadError> {
        let interfaces: &[Interface] = match &self.state {
            State::PcapNg(ng) => &ng.interfaces,
            State::Pcap(_) => &[],
        };
        usize::try_from(interface_id)
            .ok()
            .and_then(|index| interfaces.get(index))
            .copied()
            .ok_or_else(|| {
                self.corrupt(
                    block_offset,
                    format!(
                        "{block} names interface {interface_id}, but the section has described \
                         {} interfaces",
                        interfaces.len()
                    ),
                )
            })
    }

    /// Skips `len` bytes of a block body without buffering them; returns the bytes skipped.
    fn skip(&mut self, len: u64) -> Result<u64, ReadError> {
        self.skip_bytes(len)
    }

    /// Reads blocks until a packet block, skipping what carries no packets.
    pub(super) fn next_pcapng_packet(&mut self) -> Result<Option<FrameMeta>, ReadError> {
        loop {
            let block_offset = self.offset;
            let endian = match &self.state {
                State::PcapNg(ng) => ng.endian,
                State::Pcap(_) => return Ok(None),
            };
            let mut type_bytes = [0u8; 4];
            let got = self.read_in(&mut type_bytes)?;
            if got == 0 {
                return Ok(None);
            }
            if got < type_bytes.len() {
                return Err(self.truncated(block_offset, "a pcapng block header", 8, got as u64));
            }
            let block_type = endian.u32(&type_bytes, 0).unwrap_or(0);
            if block_type == BLOCK_SHB {
                // A new section, perhaps in the other byte order.
                self.read_section_header(block_offset)?;
                continue;
            }
            let mut len_bytes = [0u8; 4];
            let got = self.read_in(&mut len_bytes)?;
            if got < len_bytes.len() {
                return Err(self.truncated(
                    block_offset,
                    "a pcapng block header",
                    8,
                    4 + got as u64,
                ));
            }
            let total_len = endian.u32(&len_bytes, 0).unwrap_or(0);
            let (name, min_len) = match block_type {
                BLOCK_IDB => ("interface description block", MIN_IDB_BYTES),
                BLOCK_EPB => ("enhanced packet block", MIN_EPB_BYTES),
                BLOCK_SPB => ("simple packet block", MIN_SPB_BYTES),
                BLOCK_PB => ("packet block", MIN_PB_BYTES),
                _ => ("block", MIN_BLOCK_BYTES),
            };
            self.check_block_len(block_offset, name, total_len, min_len)?;
            let next_offset = block_offset.saturating_add(u64::from(total_len));
            if !matches!(block_type, BLOCK_IDB | BLOCK_EPB | BLOCK_SPB | BLOCK_PB) {
                // Name resolution, statistics, secrets, custom and unknown blocks: skip the
                // body unbuffered, then check the trailer.
                let skip_len = u64::from(total_len) - 12;
                let skipped = self.skip(skip_len)?;
                let mut trailer = [0u8; 4];
                let got = if skipped == skip_len {
                    self.read_in(&mut trailer)?
                } else {
                    0
                };
                if skipped < skip_len || got < trailer.len() {
                    return Err(self.truncated(
                        block_offset,
                        "a pcapng block",
                        u64::from(total_len),
                        8 + skipped + got as u64,
                    ));
                }
                let trailer_len = endian.u32(&trailer, 0).unwrap_or(0);
                if trailer_len != total_len {
                    return Err(self.corrupt(
                        block_offset,
                        format!(
                            "block trailing length {trailer_len} differs from its leading \
                             {total_len}"
                        ),
                    ));
                }
                self.offset = next_offset;
                continue;
            }
            let body_len = self.read_block_body(block_offset, endian, 8, total_len)?;
            if block_type == BLOCK_IDB {
                self.add_interface(block_offset, endian, body_len)?;
                self.offset = next_offset;
                continue;
            }
            let meta = self.packet_meta(block_offset, endian, block_type, name, body_len)?;
            self.offset = next_offset;
            return Ok(Some(meta));
        }
    }

    /// Describes the packet in a packet block whose body is `buf[..body_len]`.
    fn packet_meta(
        &self,
        block_offset: u64,
        endian: Endian,
        block_type: u32,
        block: &str,
        body_len: usize,
    ) -> Result<FrameMeta, ReadError> {
        let body = self.record().get(..body_len).unwrap_or_default();
        // Room for packet bytes: the body minus its trailer and the fixed fields.
        let field = |at| endian.u32(body, at).unwrap_or(0);
        if block_type == BLOCK_SPB {
            // Body: original length (4), packet data, trailer (4).
            let interface = self.interface(block_offset, block, 0)?;
            let orig_len = field(0);
            let room = body_len.saturating_sub(8);
            let mut caplen = usize::try_from(orig_len).unwrap_or(usize::MAX).min(room);
            if interface.snaplen != 0 {
                caplen = caplen.min(usize::try_from(interface.snaplen).unwrap_or(usize::MAX));
            }
            return Ok(FrameMeta {
                start: 4,
                end: 4 + caplen,
                wire_len: orig_len,
                time_ns: 0,
                link_type: interface.link_type,
                interface_id: 0,
            });
        }
        // EPB: interface (4), ts high (4), ts low (4), caplen (4), orig len (4), data.
        // PB: interface (2), drops (2), then the same.
        let interface_id = if block_type == BLOCK_PB {
            u32::from(endian.u16(body, 0).unwrap_or(0))
        } else {
            field(0)
        };
        let interface = self.interface(block_offset, block, interface_id)?;
        let time_units = (u64::from(field(4)) << 32) | u64::from(field(8));
        let caplen = field(12);
        let orig_len = field(16);
        let room = body_len.saturating_sub(24);
        let data_len = usize::try_from(caplen).unwrap_or(usize::MAX);
        if data_len > room {
            return Err(self.corrupt(
                block_offset,
                format!("{block} captured length {caplen} exceeds the {room} bytes of room in the block"),
            ));
        }
        Ok(FrameMeta {
            start: 20,
            end: 20 + data_len,
            wire_len: orig_len.max(caplen),
            time_ns: interface.time_ns(time_units),
            link_type: interface.link_type,
            interface_id,
        })
    }
}

/// Calls `visit(code, value)` for each option in `options` until `opt_endofopt` or the end.
/// Values are padded to 32 bits; an option that runs past the end is an error.
fn for_each_option(
    endian: Endian,
    options: &[u8],
    mut visit: impl FnMut(u16, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut at = 0usize;
    while options.len().saturating_sub(at) >= 4 {
        let code = endian.u16(options, at).unwrap_or(OPT_ENDOFOPT);
        let len = usize::from(endian.u16(options, at + 2).unwrap_or(0));
        if code == OPT_ENDOFOPT {
            return Ok(());
        }
        let value_at = at + 4;
        let Some(value) = options.get(value_at..value_at + len) else {
            return Err(format!(
                "option {code} of {len} bytes runs past the end of the block"
            ));
        };
        visit(code, value)?;
        at = value_at + ((len + 3) & !3);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;
    use super::*;

    // ---- pcapng ----------------------------------------------------------------------------

    #[test]
    fn pcapng_both_byte_orders_read_every_field() {
        for big in [false, true] {
            let (ng, expected) = rich_pcapng(big);
            let mut reader = open_bytes(&ng.out).unwrap();
            assert_eq!(reader.format(), CaptureFormat::PcapNg);
            assert_eq!(reader.offset(), ng.blocks[0].1 as u64);
            assert!(reader.link_types().is_empty());
            let (frames, error) = drain(&mut reader);
            assert!(error.is_none());
            assert_eq!(frames, expected);
            assert_eq!(reader.link_types(), &[ETH, RAW, LINUX_SLL]);
            assert_eq!(reader.offset(), ng.out.len() as u64);
        }
    }

    #[test]
    fn pcapng_offset_points_after_each_packet_block() {
        let (ng, _) = rich_pcapng(false);
        let mut reader = open_bytes(&ng.out).unwrap();
        let packet_ends: Vec<u64> = ng
            .blocks
            .iter()
            .filter(|b| b.2)
            .map(|b| b.1 as u64)
            .collect();
        for end in packet_ends {
            reader.next_frame().unwrap().unwrap();
            assert_eq!(reader.offset(), end);
        }
    }

    #[test]
    fn pcapng_sections_reset_interfaces_and_may_switch_byte_order() {
        let mut ng = Ng::new(false);
        ng.idb(ETH as u16, 0, &[]).idb(RAW as u16, 0, &[(9, &[3])]);
        ng.epb(1, 5, 1, &[1]);
        ng.shb(true).idb(LINUX_SLL as u16, 0, &[(9, &[0])]);
        ng.epb(0, 7, 2, &[2, 2]);
        let mut reader = open_bytes(&ng.out).unwrap();
        let first = reader.next_frame().unwrap().unwrap();
        assert_eq!((first.link_type, first.interface_id), (RAW, 1));
        assert_eq!(first.time_ns, 5_000_000); // milliseconds
        assert_eq!(reader.link_types(), &[ETH, RAW]);
        let second = reader.next_frame().unwrap().unwrap();
        assert_eq!((second.link_type, second.interface_id), (LINUX_SLL, 0));
        assert_eq!(second.time_ns, 7_000_000_000); // seconds
        assert_eq!(reader.link_types(), &[LINUX_SLL]);
        assert!(reader.next_frame().unwrap().is_none());

        // Interface 1 of the first section is gone in the second.
        let second_section_start = ng.out.len();
        ng.shb(false).idb(ETH as u16, 0, &[]);
        let epb_start = ng.out.len();
        ng.epb(1, 0, 0, &[]);
        let (frames, error) = read_err(&ng.out);
        assert_eq!(frames.len(), 2);
        assert!(second_section_start < epb_start);
        assert_eq!(corrupt_at(&error), epb_start as u64);
        assert_eq!(
            error.to_string(),
            format!(
                "t.cap: corrupt capture at offset {epb_start}: enhanced packet block names \
                 interface 1, but the section has described 1 interfaces"
            )
        );
    }

    #[test]
    fn pcapng_simple_packet_block_uses_interface_zero_and_its_snaplen() {
        let mut ng = Ng::new(true);
        ng.idb(ETH as u16, 64, &[]).idb(RAW as u16, 0, &[]);
        ng.spb(1500, &[0x33; 64]); // snapped to 64 by interface 0
        ng.spb(10, &[0x44; 12]); // more bytes than the packet: padding, not data
        assert_eq!(
            read_ok(&ng.out),
            vec![
                owned(&[0x33; 64], 1500, 0, ETH, 0),
                owned(&[0x44; 10], 10, 0, ETH, 0)
            ]
        );
        let mut ng = Ng::new(false);
        let spb_start = ng.out.len();
        ng.spb(4, &[1, 2, 3, 4]);
        let (_, error) = read_err(&ng.out);
        assert_eq!(corrupt_at(&error), spb_start as u64);
        assert!(error
            .to_string()
            .contains("simple packet block names interface 0"));
    }

    #[test]
    fn pcapng_epb_caplen_above_wire_len_keeps_bytes() {
        let mut ng = Ng::new(false);
        ng.idb(ETH as u16, 0, &[(9, &[9])])
            .epb(0, 1, 2, &[1, 2, 3, 4]);
        assert_eq!(read_ok(&ng.out), vec![owned(&[1, 2, 3, 4], 4, 1, ETH, 0)]);
    }

    #[test]
    fn pcapng_resolution_arithmetic_never_overflows() {
        let interface = |resolution, offset_s| Interface {
            link_type: 0,
            snaplen: 0,
            resolution,
            offset_s,
        };
        for n in 0..=255u8 {
            for units in [0, 1, 1 << 40, u64::MAX] {
                for offset_s in [0, i64::MIN, i64::MAX, -1] {
                    interface(TsResolution::Decimal(n), offset_s).time_ns(units);
                    interface(TsResolution::Binary(n & 0x7f), offset_s).time_ns(units);
                }
            }
        }
        let ns = |resolution, units| interface(resolution, 0).time_ns(units);
        assert_eq!(ns(TsResolution::Decimal(0), 3), 3_000_000_000);
        assert_eq!(ns(TsResolution::Decimal(6), 3), 3_000);
        assert_eq!(ns(TsResolution::Decimal(9), 3), 3);
        assert_eq!(ns(TsResolution::Decimal(12), 3_000_000), 3_000);
        assert_eq!(ns(TsResolution::Decimal(60), u64::MAX), 0);
        assert_eq!(ns(TsResolution::Binary(0), 2), 2_000_000_000);
        assert_eq!(ns(TsResolution::Binary(1), 3), 1_500_000_000);
        assert_eq!(ns(TsResolution::Binary(30), 1 << 30), 1_000_000_000);
        assert_eq!(ns(TsResolution::Decimal(0), u64::MAX), i64::MAX);
        assert_eq!(
            interface(TsResolution::Decimal(9), i64::MIN).time_ns(0),
            i64::MIN
        );
        assert_eq!(
            interface(TsResolution::Decimal(9), -2).time_ns(500),
            -2_000_000_000 + 500
        );
    }

    #[test]
    fn pcapng_idb_option_errors_are_corrupt() {
        for (opts, message) in [
            (
                vec![(9u16, &[6u8, 6][..])],
                "if_tsresol option has length 2, not 1",
            ),
            (
                vec![(14, &[0u8; 4][..])],
                "if_tsoffset option has length 4, not 8",
            ),
        ] {
            let mut ng = Ng::new(false);
            let idb_start = ng.out.len();
            ng.idb(ETH as u16, 0, &opts);
            let (_, error) = read_err(&ng.out);
            assert_eq!(corrupt_at(&error), idb_start as u64);
            assert!(error.to_string().ends_with(message), "{error}");
        }
        // An option whose length runs past the block.
        let mut ng = Ng::new(false);
        let idb_start = ng.out.len();
        ng.idb(ETH as u16, 0, &[(2, b"eth0")]);
        ng.out[idb_start + 18] = 200; // option length (LE, low byte)
        let (_, error) = read_err(&ng.out);
        assert_eq!(
            error.to_string(),
            format!(
                "t.cap: corrupt capture at offset {idb_start}: interface description block: \
                 option 2 of 200 bytes runs past the end of the block"
            )
        );
        // Options without opt_endofopt, and unknown options, are fine.
        let mut ng = Ng::new(true);
        let mut body = Vec::new();
        put16(&mut body, true, RAW as u16);
        put16(&mut body, true, 0);
        put32(&mut body, true, 0);
        body.extend_from_slice(&[0x7f, 0xff, 0, 1, 5, 0, 0, 0, 0, 9, 0, 1, 3, 0, 0, 0]);
        ng.block(BLOCK_IDB, &body, false).epb(0, 7, 0, &[]);
        assert_eq!(read_ok(&ng.out)[0].time_ns, 7_000_000);
    }

    #[test]
    fn pcapng_block_length_errors_are_corrupt_with_offset() {
        let base = {
            let mut ng = Ng::new(false);
            ng.idb(ETH as u16, 0, &[]).epb(0, 0, 1, &[1]);
            ng
        };
        let epb_start = base.blocks[2].0;
        let set_len = |bytes: &mut Vec<u8>, at: usize, len: u32| {
            bytes[at..at + 4].copy_from_slice(&len.to_le_bytes());
        };
        let cases: Vec<(u32, &str)> = vec![
            (
                31,
                "enhanced packet block total length 31 is below its minimum of 32",
            ),
            (
                34,
                "enhanced packet block total length 34 is not a multiple of 4",
            ),
            (
                (16 << 20) + 4,
                "enhanced packet block total length 16777220 is above the limit of 16777216",
            ),
        ];
        for (len, message) in cases {
            let mut bytes = base.out.clone();
            set_len(&mut bytes, epb_start + 4, len);
            let (_, error) = read_err(&bytes);
            assert_eq!(
                error.to_string(),
                format!("t.cap: corrupt capture at offset {epb_start}: {message}")
            );
        }
        // A trailing length that differs from the leading one.
        let epb_end = base.blocks[2].1;
        let mut bytes = base.out.clone();
        set_len(&mut bytes, epb_end - 4, 52);
        let (_, error) = read_err(&bytes);
        assert_eq!(
            error.to_string(),
            format!(
                "t.cap: corrupt capture at offset {epb_start}: block trailing length 52 \
                 differs from its leading {}",
                epb_end - epb_start
            )
        );
        // Unknown blocks are checked too, and need only 12 bytes.
        let mut ng = Ng::new(false);
        let start = ng.out.len();
        ng.block(0x99, &[], false);
        assert!(read_ok(&ng.out).is_empty());
        set_len(&mut ng.out, start + 4, 8);
        let (_, error) = read_err(&ng.out);
        assert!(error
            .to_string()
            .ends_with("block total length 8 is below its minimum of 12"));
        let mut ng = Ng::new(false);
        ng.block(0x99, &[1, 2, 3, 4], false);
        let end = ng.out.len();
        set_len(&mut ng.out, end - 4, 12);
        let (_, error) = read_err(&ng.out);
        assert!(error
            .to_string()
            .ends_with("block trailing length 12 differs from its leading 16"));
        // A captured length beyond the block.
        let mut bytes = base.out.clone();
        // Room: the block minus its 28 fixed bytes and 4-byte trailer (data, padding and
        // options all count, since only the captured length separates them).
        let room = epb_end - epb_start - 32;
        set_len(&mut bytes, epb_start + 20, room as u32 + 1);
        let (_, error) = read_err(&bytes);
        assert_eq!(corrupt_at(&error), epb_start as u64);
        assert!(error.to_string().ends_with(&format!(
            "enhanced packet block captured length {} exceeds the {room} bytes of room in the \
             block",
            room + 1
        )));
        set_len(&mut bytes, epb_start + 20, room as u32);
        assert_eq!(read_ok(&bytes)[0].data.len(), room);
    }

    #[test]
    fn pcapng_section_header_errors() {
        // Byte-order magic in neither order.
        let mut ng = Ng::new(false);
        ng.out[8..12].copy_from_slice(&[1, 2, 3, 4]);
        let (_, error) = read_err(&ng.out);
        assert_eq!(
            error.to_string(),
            "t.cap: corrupt capture at offset 0: section header byte-order magic is \
             0x01020304, not 0x1a2b3c4d in either byte order"
        );
        // Major version 2, in a later section.
        let mut ng = Ng::new(false);
        ng.idb(ETH as u16, 0, &[]).epb(0, 0, 0, &[]);
        let start = ng.out.len();
        ng.shb_version(true, 2, 0);
        let (frames, error) = read_err(&ng.out);
        assert_eq!(frames.len(), 1);
        assert_eq!(
            error.to_string(),
            format!("t.cap: unsupported pcapng version 2.0 at offset {start}")
        );
        // Minor versions of major 1 are accepted.
        let mut ng = Ng::new(false);
        ng.shb_version(false, 1, 2);
        assert!(read_ok(&ng.out).is_empty());
        // A section header shorter than its minimum.
        let mut ng = Ng::new(true);
        ng.out[4..8].copy_from_slice(&24u32.to_be_bytes());
        assert!(read_err(&ng.out)
            .1
            .to_string()
            .ends_with("section header block total length 24 is below its minimum of 28"));
    }

    #[test]
    fn pcapng_truncation_messages() {
        let mut ng = Ng::new(false);
        ng.idb(ETH as u16, 0, &[]).epb(0, 0, 1514, &[0; 1514]);
        let epb_start = ng.blocks[2].0;
        let (frames, error) = read_err(&ng.out[..epb_start + 100]);
        assert!(frames.is_empty());
        assert_eq!(
            error.to_string(),
            format!(
                "t.cap: file ends in the middle of a pcapng block at offset {epb_start} \
                 ({} bytes needed, 100 present)",
                ng.blocks[2].1 - epb_start
            )
        );
        let (_, error) = read_err(&ng.out[..epb_start + 6]);
        assert_eq!(
            error.to_string(),
            format!(
                "t.cap: file ends in the middle of a pcapng block header at offset {epb_start} \
                 (8 bytes needed, 6 present)"
            )
        );
        let (_, error) = read_err(&ng.out[..20]);
        assert!(error
            .to_string()
            .starts_with("t.cap: file ends in the middle of a pcapng block at offset 0"));
        let (_, error) = read_err(&ng.out[..6]);
        assert_eq!(
            error.to_string(),
            "t.cap: file ends in the middle of a section header block at offset 0 \
             (28 bytes needed, 6 present)"
        );
    }

    #[test]
    fn pcapng_every_cut_is_clean_end_or_truncated() {
        for big in [false, true] {
            let (mut ng, _) = rich_pcapng(big);
            ng.shb(!big).idb(RAW as u16, 0, &[]).epb(0, 1, 1, &[1]);
            let header_end = ng.blocks[0].1;
            check_every_cut(&ng.out, &ng.blocks, header_end);
        }
    }
}
