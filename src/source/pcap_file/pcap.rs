//! Classic pcap (draft-ietf-opsawg-pcap): the file header and the 16- or 24-byte record
//! headers.

use std::io::Read;

use super::{
    saturate_i64, CaptureFormat, CaptureReader, Endian, FrameMeta, ReadError, State,
    MAX_RECORD_BYTES, NS_PER_SEC, PCAP_DEFAULT_MAX_CAPLEN_BYTES, PCAP_MODIFIED_RECORD_HEADER_BYTES,
    PCAP_RECORD_HEADER_BYTES,
};

const PCAP_FILE_HEADER_BYTES: usize = 24;

/// How pcap record lengths are laid out (see the `pcap_file` module docs on versions before
/// 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LengthOrder {
    Normal,
    Swapped,
    SwappedIfCaplenLarger,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct PcapState {
    endian: Endian,
    nanosecond: bool,
    record_header_bytes: usize,
    max_caplen_bytes: u32,
    length_order: LengthOrder,
    link_type: u32,
}

impl<R: Read> CaptureReader<R> {
    pub(super) fn read_pcap_header(
        &mut self,
        endian: Endian,
        nanosecond: bool,
        record_header_bytes: usize,
    ) -> Result<(), ReadError> {
        // The magic (4 bytes) is already consumed; read the other 20.
        let mut rest = [0u8; PCAP_FILE_HEADER_BYTES - 4];
        let got = self.read_in(&mut rest)?;
        if got < rest.len() {
            return Err(self.truncated(
                0,
                "the pcap file header",
                PCAP_FILE_HEADER_BYTES as u64,
                4 + got as u64,
            ));
        }
        // Offsets below are relative to `rest`, i.e. file offset minus 4.
        let field = |at| endian.u32(&rest, at).unwrap_or(0);
        let major = endian.u16(&rest, 0).unwrap_or(0);
        let minor = endian.u16(&rest, 2).unwrap_or(0);
        let snaplen = field(12);
        let link_field = field(16);
        if major != 2 {
            return Err(ReadError::UnsupportedVersion {
                name: self.name.clone(),
                offset: 0,
                format: "pcap",
                major,
                minor,
            });
        }
        let length_order = match minor {
            0..=2 => LengthOrder::Swapped,
            3 => LengthOrder::SwappedIfCaplenLarger,
            _ => LengthOrder::Normal,
        };
        let big_endian = endian == Endian::Big;
        self.format = CaptureFormat::Pcap {
            big_endian,
            nanosecond,
        };
        // Low 16 bits: link type; bits 28..=31: optional FCS length (see the `pcap_file`
        // module docs).
        let link_type = link_field & 0xffff;
        self.link_types = vec![link_type];
        self.state = State::Pcap(PcapState {
            endian,
            nanosecond,
            record_header_bytes,
            max_caplen_bytes: snaplen.clamp(PCAP_DEFAULT_MAX_CAPLEN_BYTES, MAX_RECORD_BYTES),
            length_order,
            link_type,
        });
        self.offset = PCAP_FILE_HEADER_BYTES as u64;
        Ok(())
    }

    pub(super) fn next_pcap_record(&mut self) -> Result<Option<FrameMeta>, ReadError> {
        let State::Pcap(pcap) = &self.state else {
            return Ok(None);
        };
        let PcapState {
            endian,
            nanosecond,
            record_header_bytes: header_bytes,
            max_caplen_bytes: max_caplen,
            length_order,
            link_type,
        } = *pcap;
        let record_offset = self.offset;
        let mut header = [0u8; PCAP_MODIFIED_RECORD_HEADER_BYTES];
        let header = header.get_mut(..header_bytes).unwrap_or_default();
        let got = self.read_in(header)?;
        if got == 0 {
            return Ok(None);
        }
        if got < header_bytes {
            return Err(self.truncated(
                record_offset,
                "a packet record header",
                header_bytes as u64,
                got as u64,
            ));
        }
        let field = |at| endian.u32(header, at).unwrap_or(0);
        let (ts_sec, ts_frac, mut caplen, mut orig_len) = (field(0), field(4), field(8), field(12));
        let swap = match length_order {
            LengthOrder::Normal => false,
            LengthOrder::Swapped => true,
            LengthOrder::SwappedIfCaplenLarger => caplen > orig_len,
        };
        if swap {
            std::mem::swap(&mut caplen, &mut orig_len);
        }
        if caplen > max_caplen {
            return Err(self.corrupt(
                record_offset,
                format!(
                    "packet record claims {caplen} captured bytes, more than the limit of \
                     {max_caplen} for this file"
                ),
            ));
        }
        let data_len = caplen as usize;
        let got = self.fill_buf(data_len)?;
        if got < data_len {
            return Err(self.truncated(
                record_offset,
                "a packet record",
                (header_bytes + data_len) as u64,
                (header_bytes + got) as u64,
            ));
        }
        self.offset = record_offset.saturating_add((header_bytes + data_len) as u64);
        let frac_ns = if nanosecond {
            i128::from(ts_frac)
        } else {
            i128::from(ts_frac) * 1_000
        };
        let time_ns = saturate_i64(i128::from(ts_sec) * NS_PER_SEC + frac_ns);
        Ok(Some(FrameMeta {
            start: 0,
            end: data_len,
            wire_len: orig_len.max(caplen),
            time_ns,
            link_type,
            interface_id: 0,
        }))
    }
}

impl<R: Read> CaptureReader<R> {
    /// [`CaptureReader::next_pcap_record`] for a pcap file read in place, in the usual case:
    /// a whole record, within the limits, with the lengths in the usual order. The header is
    /// read where it lies (fixed-size loads, no copy) and the result is exactly what
    /// `next_pcap_record` gives for it: the same frame, offsets and pages dropped behind.
    /// `None` for anything else (not pcap, streamed, end of file, a record cut short or over
    /// the limit, lengths that may need swapping), with nothing consumed: the general path
    /// then reads the record and says what is wrong with it.
    #[inline(always)]
    pub(super) fn next_pcap_in_place(&mut self) -> Option<FrameMeta> {
        let (State::Pcap(pcap), Some(place)) = (&self.state, &mut self.in_place) else {
            return None;
        };
        if pcap.length_order != LengthOrder::Normal {
            return None;
        }
        let bytes = place.shared.bytes();
        let header_at = place.pos;
        let data_at = header_at.checked_add(pcap.record_header_bytes)?;
        // The first 16 bytes are the same in the 24-byte (modified pcap) record header.
        let header: &[u8; PCAP_RECORD_HEADER_BYTES] = bytes
            .get(header_at..header_at.checked_add(PCAP_RECORD_HEADER_BYTES)?)?
            .try_into()
            .ok()?;
        let field = |at: usize| {
            let raw = [header[at], header[at + 1], header[at + 2], header[at + 3]];
            match pcap.endian {
                Endian::Little => u32::from_le_bytes(raw),
                Endian::Big => u32::from_be_bytes(raw),
            }
        };
        let (ts_sec, ts_frac, caplen, orig_len) = (field(0), field(4), field(8), field(12));
        if caplen > pcap.max_caplen_bytes {
            return None;
        }
        let data_len = caplen as usize;
        let data_end = data_at.checked_add(data_len)?;
        if data_end > bytes.len() {
            return None;
        }
        let frac_ns = if pcap.nanosecond {
            i64::from(ts_frac)
        } else {
            i64::from(ts_frac) * 1_000
        };
        // At most (2^32 - 1) s and (2^32 - 1) µs: about 4.3e18 ns, half of i64::MAX, so the
        // general path's saturation never applies.
        let time_ns = i64::from(ts_sec) * 1_000_000_000 + frac_ns;
        let (link_type, header_bytes) = (pcap.link_type, pcap.record_header_bytes);
        place.pos = data_end;
        place.record_start = data_at;
        place.record_end = data_end;
        #[cfg(feature = "capture")]
        place.passed(data_at, data_end);
        self.offset = self.offset.saturating_add((header_bytes + data_len) as u64);
        Some(FrameMeta {
            start: 0,
            end: data_len,
            wire_len: orig_len.max(caplen),
            time_ns,
            link_type,
            interface_id: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;

    // ---- pcap ------------------------------------------------------------------------------

    #[test]
    fn pcap_all_four_magics_read_every_field() {
        for big in [false, true] {
            for nanosecond in [false, true] {
                let mut image = Pcap::new(big, nanosecond, ETH);
                image
                    .rec(BASE_S, 123_456, 60, &[0xaa; 60])
                    .rec(BASE_S + 1, 999_999, 1514, &[1, 2, 3])
                    .rec(0, 0, 0, &[]);
                let mut reader = open_bytes(&image.out).unwrap();
                assert_eq!(
                    reader.format(),
                    CaptureFormat::Pcap {
                        big_endian: big,
                        nanosecond
                    }
                );
                assert_eq!(reader.link_types(), &[ETH]);
                assert_eq!(reader.offset(), 24);
                let unit = if nanosecond { 1 } else { 1_000 };
                let first = reader.next_frame().unwrap().unwrap();
                assert_eq!(first.data, &[0xaa; 60][..]);
                assert_eq!(first.wire_len, 60);
                assert_eq!(first.time_ns, BASE_NS + 123_456 * unit);
                assert_eq!((first.link_type, first.interface_id), (ETH, 0));
                assert_eq!(reader.offset(), 24 + 16 + 60);
                let second = reader.next_frame().unwrap().unwrap();
                assert_eq!(second.data, &[1, 2, 3]);
                assert_eq!(second.wire_len, 1514);
                assert_eq!(second.time_ns, BASE_NS + 1_000_000_000 + 999_999 * unit);
                let third = reader.next_frame().unwrap().unwrap();
                assert_eq!((third.data.len(), third.wire_len, third.time_ns), (0, 0, 0));
                assert!(reader.next_frame().unwrap().is_none());
                assert!(reader.next_frame().unwrap().is_none());
                assert_eq!(reader.offset(), image.out.len() as u64);
            }
        }
    }

    #[test]
    fn pcap_header_only_file_has_no_frames() {
        let image = Pcap::new(false, false, RAW);
        assert!(read_ok(&image.out).is_empty());
    }

    #[test]
    fn pcap_link_type_keeps_low_16_bits_only() {
        // F bit (28) set and an FCS length of 2 (16-bit words) in bits 29..=31.
        let field = (2u32 << 29) | (1 << 28) | LINUX_SLL;
        let mut image = Pcap::with(true, MAGIC_PCAP_US_BE, (2, 4), 65_535, field);
        image.rec(1, 2, 4, &[1, 2, 3, 4]);
        let reader = open_bytes(&image.out).unwrap();
        assert_eq!(reader.link_types(), &[LINUX_SLL]);
        assert_eq!(read_ok(&image.out)[0].link_type, LINUX_SLL);
    }

    #[test]
    fn pcap_caplen_above_wire_len_keeps_bytes_and_raises_wire_len() {
        let mut image = Pcap::new(false, false, ETH);
        image.rec(1, 0, 10, &[7; 20]);
        let frames = read_ok(&image.out);
        assert_eq!(frames, vec![owned(&[7; 20], 20, 1_000_000_000, ETH, 0)]);
    }

    #[test]
    fn pcap_old_versions_swap_lengths_like_libpcap() {
        // 2.2: lengths always stored as (orig, caplen).
        let mut old = Pcap::with(false, MAGIC_PCAP_US_BE, (2, 2), 65_535, ETH);
        old.raw(0, 0, 100, 3, &[1, 2, 3]);
        assert_eq!(read_ok(&old.out), vec![owned(&[1, 2, 3], 100, 0, ETH, 0)]);
        // 2.3: swapped only when the "caplen" is the larger one.
        let mut maybe = Pcap::with(true, MAGIC_PCAP_US_BE, (2, 3), 65_535, ETH);
        maybe.raw(0, 0, 100, 3, &[1, 2, 3]); // swapped
        maybe.raw(0, 0, 2, 50, &[4, 5]); // not swapped
        assert_eq!(
            read_ok(&maybe.out),
            vec![
                owned(&[1, 2, 3], 100, 0, ETH, 0),
                owned(&[4, 5], 50, 0, ETH, 0)
            ]
        );
    }

    #[test]
    fn pcap_modified_format_has_24_byte_record_headers() {
        for big in [false, true] {
            let mut image = Pcap::with(big, MAGIC_PCAP_MODIFIED_BE, (2, 4), 65_535, ETH);
            for data in [&[1u8, 2, 3][..], &[4, 5]] {
                put32(&mut image.out, big, 5);
                put32(&mut image.out, big, 6);
                put32(&mut image.out, big, data.len() as u32);
                put32(&mut image.out, big, 64);
                image.out.extend_from_slice(&[0; 8]); // ifindex, protocol, pkt_type, pad
                image.out.extend_from_slice(data);
            }
            let frames = read_ok(&image.out);
            assert_eq!(
                frames,
                vec![
                    owned(&[1, 2, 3], 64, 5_000_006_000, ETH, 0),
                    owned(&[4, 5], 64, 5_000_006_000, ETH, 0)
                ]
            );
        }
    }

    #[test]
    fn pcap_extreme_timestamps_do_not_overflow() {
        let mut image = Pcap::new(false, false, ETH);
        image.rec(u32::MAX, u32::MAX, 0, &[]);
        let frames = read_ok(&image.out);
        assert_eq!(
            frames[0].time_ns,
            i64::from(u32::MAX) * 1_000_000_000 + i64::from(u32::MAX) * 1_000
        );
    }

    #[test]
    fn pcap_caplen_limits() {
        // Small snaplen: the 256 KiB default limit applies.
        let mut image = Pcap::new(false, false, ETH);
        image.rec(0, 0, 1, &[1]);
        image.raw(0, 0, 256 * 1024 + 1, 256 * 1024 + 1, &[]);
        let (frames, error) = read_err(&image.out);
        assert_eq!(frames.len(), 1);
        assert_eq!(corrupt_at(&error), 24 + 17);
        assert_eq!(
            error.to_string(),
            "t.cap: corrupt capture at offset 41: packet record claims 262145 captured bytes, \
             more than the limit of 262144 for this file"
        );
        assert_eq!(error.exit_code(), 5);
        // Exactly 256 KiB is fine.
        let mut image = Pcap::new(false, false, ETH);
        image.rec(0, 0, 256 * 1024, &vec![9; 256 * 1024]);
        assert_eq!(read_ok(&image.out)[0].data.len(), 256 * 1024);
        // A larger snaplen raises the limit to itself...
        let mut image = Pcap::with(true, MAGIC_PCAP_NS_BE, (2, 4), 1 << 20, ETH);
        image.rec(0, 0, 300_000, &vec![3; 300_000]);
        assert_eq!(read_ok(&image.out)[0].data.len(), 300_000);
        image.raw(0, 0, (1 << 20) + 1, 0, &[]);
        assert!(matches!(read_err(&image.out).1, ReadError::Corrupt { .. }));
        // ...but never above 16 MiB, and a huge caplen is refused before any allocation.
        let mut image = Pcap::with(false, MAGIC_PCAP_US_BE, (2, 4), u32::MAX, ETH);
        image.raw(0, 0, u32::MAX, u32::MAX, &[]);
        let (_, error) = read_err(&image.out);
        assert!(error.to_string().contains("limit of 16777216"), "{error}");
    }

    #[test]
    fn pcap_unsupported_version() {
        let image = Pcap::with(false, MAGIC_PCAP_US_BE, (3, 0), 65_535, ETH);
        let (_, error) = read_err(&image.out);
        assert!(matches!(
            error,
            ReadError::UnsupportedVersion {
                major: 3,
                minor: 0,
                offset: 0,
                ..
            }
        ));
        assert_eq!(
            error.to_string(),
            "t.cap: unsupported pcap version 3.0 at offset 0"
        );
        assert_eq!(error.exit_code(), 5);
    }

    #[test]
    fn pcap_truncation_messages() {
        let mut image = Pcap::new(false, false, ETH);
        image.rec(0, 0, 1514, &[5; 1514]);
        image.rec(0, 0, 1514, &[6; 1514]);
        let full = image.out.clone();
        // Cut in the second record's bytes: the first frame still arrives.
        let cut = &full[..24 + 16 + 1514 + 16 + 212];
        let (frames, error) = read_err(cut);
        assert_eq!(frames.len(), 1);
        assert_eq!(
            error.to_string(),
            "t.cap: file ends in the middle of a packet record at offset 1554 \
             (1530 bytes needed, 228 present)"
        );
        assert_eq!(error.exit_code(), 5);
        // Cut in the second record's header.
        let (frames, error) = read_err(&full[..24 + 16 + 1514 + 5]);
        assert_eq!(frames.len(), 1);
        assert_eq!(
            error.to_string(),
            "t.cap: file ends in the middle of a packet record header at offset 1554 \
             (16 bytes needed, 5 present)"
        );
        // Cut in the file header.
        let (_, error) = read_err(&full[..10]);
        assert_eq!(
            error.to_string(),
            "t.cap: file ends in the middle of the pcap file header at offset 0 \
             (24 bytes needed, 10 present)"
        );
    }

    #[test]
    fn pcap_every_cut_is_clean_end_or_truncated() {
        let mut image = Pcap::new(true, true, ETH);
        image
            .rec(1, 2, 3, &[1, 2, 3])
            .rec(4, 5, 6, &[])
            .rec(7, 8, 9, &[9; 9]);
        let mut starts = vec![24];
        starts.extend(&image.record_ends);
        let records: Vec<_> = starts
            .windows(2)
            .map(|pair| (pair[0], pair[1], true))
            .collect();
        check_every_cut(&image.out, &records, 24);
    }

    /// The in-place fast path (`next_pcap_in_place`) gives what the general path gives, frame
    /// by frame and offset by offset, for every kind of pcap: both byte orders, µs and ns,
    /// modified pcap, the largest timestamp, a record over the limit, lengths that may need
    /// swapping (versions before 2.4), and a file cut in a header or in a record.
    #[test]
    fn in_place_records_read_as_streamed_ones() {
        let mut images = Vec::new();
        for big in [false, true] {
            for nanosecond in [false, true] {
                let mut image = Pcap::new(big, nanosecond, ETH);
                image
                    .rec(BASE_S, 123_456, 60, &[0xaa; 60])
                    .rec(u32::MAX, u32::MAX, 3, &[1, 2, 3])
                    .rec(0, 0, 0, &[])
                    .rec(BASE_S + 1, 999_999, 1514, &[7; 100]);
                images.push(image.out.clone());
                // Cut in the last record's data, then in its header.
                images.push(image.out[..image.out.len() - 10].to_vec());
                images.push(image.out[..image.out.len() - 100 - 10].to_vec());
                // A record over the limit (256 KiB for this snaplen).
                let mut over = Pcap::new(big, nanosecond, ETH);
                over.rec(1, 2, 60, &[0xbb; 60])
                    .raw(3, 4, 300_000, 300_000, &[0; 16]);
                images.push(over.out);
            }
            for version in [(2, 2), (2, 3)] {
                let mut old = Pcap::with(big, MAGIC_PCAP_US_BE, version, 65_535, ETH);
                old.raw(1, 2, 60, 40, &[0xcc; 60])
                    .raw(3, 4, 40, 60, &[0xdd; 40]);
                images.push(old.out);
            }
            let mut modified = Pcap::with(big, MAGIC_PCAP_MODIFIED_BE, (2, 4), 65_535, ETH);
            for (i, len) in [60u32, 0, 1514].into_iter().enumerate() {
                put32(&mut modified.out, big, BASE_S + i as u32);
                put32(&mut modified.out, big, 10);
                put32(&mut modified.out, big, len.min(200));
                put32(&mut modified.out, big, len);
                modified.out.extend_from_slice(&[0, 0, 0, 1, 0, 8, 0, 0]);
                modified
                    .out
                    .extend(std::iter::repeat_n(i as u8, len.min(200) as usize));
            }
            images.push(modified.out);
        }
        for image in &images {
            let mut streamed = open_bytes(image).unwrap();
            let shared: std::sync::Arc<dyn AsRef<[u8]> + Send + Sync> =
                std::sync::Arc::new(image.clone());
            let mut in_place = CaptureReader::from_shared_bytes(shared, "t.cap".into()).unwrap();
            let own = |f: Frame<'_>| owned(f.data, f.wire_len, f.time_ns, f.link_type, 0);
            loop {
                let a = streamed.next_frame().map(|next| next.map(own));
                let a = a.map_err(|e| e.to_string());
                let b = in_place.next_frame_placed().map(|next| {
                    next.map(|(frame, at)| {
                        let at = at.expect("in place");
                        assert_eq!(&image[at..at + frame.data.len()], frame.data);
                        own(frame)
                    })
                });
                let b = b.map_err(|e| e.to_string());
                assert_eq!(a, b);
                assert_eq!(streamed.offset(), in_place.offset());
                if !matches!(a, Ok(Some(_))) {
                    break;
                }
            }
        }
    }
}
