//! DNS messages (RFC 1035) on UDP/TCP port 53 and mDNS port 5353: header, questions and the
//! answer, authority and additional records, with name decompression bounded against loops
//! and runaway names.
//!
//! `decode` validates the whole message once; the encoder walks it again with the same
//! [`Walker`], which is cheap and keeps the layer a pair of borrowed slices.
//!
//! Name compression lets a few wire bytes stand for a long name: a 2-byte pointer can repeat a
//! 255-byte name, so per-name limits alone let one 1,511-byte frame become 83 KB of JSON. The
//! budget is therefore per message too: at most [`MAX_MESSAGE_NAME_JSON_BYTES`] of expanded names
//! and [`MAX_RECORDS_PER_SECTION`] entries per section are decoded. The question or record
//! that would go past either limit, and everything after it, stays undecoded (`raw`) and the
//! packet gets `decode_error` `{"layer":"dns","reason":"over limit"}`; the header counts still
//! say what the message claimed. docs/FORMAT.md states the resulting bound on a message's JSON.

use super::{fail, note, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};

/// Most compression pointers followed for one name (RFC 1035 names have at most 127 labels).
pub const MAX_POINTERS: usize = 128;
/// Longest decoded name accepted, in bytes (RFC 1035 allows 255 on the wire).
pub const MAX_NAME_BYTES: usize = 1024;
/// Expanded names decoded per message, counted as they are written in JSON (each label byte
/// 1, 2 or 6 bytes as escaped, plus its dot; every name of every decoded question and record,
/// rdata names included). Ordinary answers use well under 2 KiB; a 64 KiB zone-transfer
/// message may pass it and is then decoded in part.
pub const MAX_MESSAGE_NAME_JSON_BYTES: usize = 16 * 1024;
/// Questions or records decoded per section (qd, an, ns, ar). Ordinary answers hold a few
/// dozen; this keeps the per-record keys of a datagram of empty records bounded as well.
pub const MAX_RECORDS_PER_SECTION: u16 = 512;

/// A DNS message (RFC 1035), validated once at decode time.
#[derive(Clone, Copy, Debug)]
pub struct Dns<'a> {
    /// The message from its 12-byte header to the end of the UDP payload or TCP segment
    /// (compression pointers may point anywhere in it, as they did when it was validated).
    pub msg: &'a [u8],
    /// The 2-byte length prefix of DNS over TCP.
    pub tcp_length: Option<u16>,
    /// Offset just after the last decoded question or record.
    pub used: usize,
    /// Entries decoded per section (qd, an, ns, ar): the header counts, or fewer when a
    /// per-message limit was reached.
    pub shown: [u16; 4],
    /// JSON bytes of the expanded names of the decoded entries (at most
    /// [`MAX_MESSAGE_NAME_JSON_BYTES`]).
    pub name_bytes: usize,
}

impl Dns<'_> {
    fn be16(&self, at: usize) -> u16 {
        match self.msg.get(at..at + 2) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]),
            None => 0,
        }
    }
    /// Message ID.
    pub fn id(&self) -> u16 {
        self.be16(0)
    }
    /// The 16-bit flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, RCODE).
    pub fn flags(&self) -> u16 {
        self.be16(2)
    }
    /// Number of questions the header announces.
    pub fn qdcount(&self) -> u16 {
        self.be16(4)
    }
    /// Number of answer records the header announces.
    pub fn ancount(&self) -> u16 {
        self.be16(6)
    }
    /// Number of authority records the header announces.
    pub fn nscount(&self) -> u16 {
        self.be16(8)
    }
    /// Number of additional records the header announces.
    pub fn arcount(&self) -> u16 {
        self.be16(10)
    }
    /// A reader over the questions and records, from just after the header.
    pub fn walker(&self) -> Walker<'_> {
        Walker {
            msg: self.msg,
            pos: 12,
        }
    }
}

/// A question: where its name starts, and its type and class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question {
    /// Offset of the name in the message.
    pub name_at: usize,
    /// Question type (1: A, 28: AAAA, ...).
    pub qtype: u16,
    /// Question class (1: IN).
    pub qclass: u16,
}

/// A resource record: where its owner name starts, its fixed fields and its rdata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Offset of the owner name in the message.
    pub name_at: usize,
    /// Record type.
    pub rtype: u16,
    /// Record class (the UDP payload size for OPT).
    pub rclass: u16,
    /// Time to live in seconds (extended RCODE and flags for OPT).
    pub ttl: u32,
    /// Length of the rdata as the record says.
    pub rdlen: u16,
    /// Offset of the rdata in the message (names inside it may point anywhere before).
    pub rdata_at: usize,
    /// The rdata bytes.
    pub rdata: &'a [u8],
}

/// Reads questions and records in order from a message.
pub struct Walker<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Walker<'a> {
    /// Reads the next question.
    pub fn question(&mut self) -> Result<Question, ErrorKind> {
        self.question_with(|_| {})
    }

    /// Reads the next question, calling `label` for each label of its name as
    /// [`walk_name`] does: a reader that also wants the name (the encoder writing it, the
    /// decoder measuring it) walks it once, not twice.
    #[inline]
    pub fn question_with<F: FnMut(&[u8])>(&mut self, label: F) -> Result<Question, ErrorKind> {
        let name_at = self.pos;
        let end = walk_name(self.msg, self.pos, label)?;
        let f = self.msg.get(end..end + 4).ok_or(ErrorKind::Truncated)?;
        self.pos = end + 4;
        Ok(Question {
            name_at,
            qtype: u16::from_be_bytes([f[0], f[1]]),
            qclass: u16::from_be_bytes([f[2], f[3]]),
        })
    }

    /// Reads the next resource record.
    pub fn record(&mut self) -> Result<Record<'a>, ErrorKind> {
        self.record_with(|_| {})
    }

    /// Reads the next resource record, calling `label` for each label of its owner name (see
    /// [`Walker::question_with`]).
    #[inline]
    pub fn record_with<F: FnMut(&[u8])>(&mut self, label: F) -> Result<Record<'a>, ErrorKind> {
        let name_at = self.pos;
        let end = walk_name(self.msg, self.pos, label)?;
        let f = self.msg.get(end..end + 10).ok_or(ErrorKind::Truncated)?;
        let rdlen = u16::from_be_bytes([f[8], f[9]]);
        let rdata_at = end + 10;
        let rdata = self
            .msg
            .get(rdata_at..rdata_at + usize::from(rdlen))
            .ok_or(ErrorKind::Truncated)?;
        self.pos = rdata_at + usize::from(rdlen);
        Ok(Record {
            name_at,
            rtype: u16::from_be_bytes([f[0], f[1]]),
            rclass: u16::from_be_bytes([f[2], f[3]]),
            ttl: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
            rdlen,
            rdata_at,
            rdata,
        })
    }

    /// Offset of the next unread byte in the message.
    pub fn position(&self) -> usize {
        self.pos
    }
}

/// Walks the (possibly compressed) name at `pos`, calling `label` for each label in order,
/// and returns the offset just after the name as it is stored at `pos`.
///
/// Like scapy, a pointer to a place already visited ends the name (loop); unlike scapy, a
/// pointer into the header, a label past the end, more than [`MAX_POINTERS`] pointers or a
/// name longer than [`MAX_NAME_BYTES`] is an error.
pub fn walk_name<F: FnMut(&[u8])>(
    msg: &[u8],
    pos: usize,
    mut label: F,
) -> Result<usize, ErrorKind> {
    let mut p = pos;
    let mut after_first_pointer: Option<usize> = None;
    let mut visited = [0u16; MAX_POINTERS];
    let mut hops = 0usize;
    let mut name_len = 0usize;
    loop {
        let &len = msg.get(p).ok_or(ErrorKind::Truncated)?;
        if len & 0xc0 != 0 {
            let &low = msg.get(p + 1).ok_or(ErrorKind::Truncated)?;
            if after_first_pointer.is_none() {
                after_first_pointer = Some(p + 2);
            }
            let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
            if target < 12 || target >= msg.len() {
                return Err(ErrorKind::BadName);
            }
            // Targets fit in 14 bits, so u16 holds them.
            if visited[..hops].contains(&(target as u16)) {
                break;
            }
            if hops == MAX_POINTERS {
                return Err(ErrorKind::BadName);
            }
            visited[hops] = target as u16;
            hops += 1;
            p = target;
        } else if len > 0 {
            let start = p + 1;
            let bytes = msg
                .get(start..start + usize::from(len))
                .ok_or(ErrorKind::Truncated)?;
            name_len += bytes.len() + 1;
            if name_len > MAX_NAME_BYTES {
                return Err(ErrorKind::BadName);
            }
            label(bytes);
            p = start + usize::from(len);
        } else {
            p += 1;
            break;
        }
    }
    Ok(after_first_pointer.unwrap_or(p))
}

/// TXT rdata: the character-strings in order (a string cut short keeps what is there).
pub fn txt_strings(rdata: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = rdata;
    std::iter::from_fn(move || {
        let (&len, after) = rest.split_first()?;
        let n = usize::from(len).min(after.len());
        let (s, tail) = after.split_at(n);
        rest = tail;
        Some(s)
    })
}

/// EDNS(0) options in OPT rdata: (code, declared length, data as captured).
pub fn edns_options(rdata: &[u8]) -> impl Iterator<Item = (u16, u16, &[u8])> {
    let mut rest = rdata;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let code = u16::from_be_bytes([rest[0], rest[1]]);
        let len = u16::from_be_bytes([rest[2], rest[3]]);
        let end = (4 + usize::from(len)).min(rest.len());
        let data = &rest[4..end];
        rest = &rest[end..];
        Some((code, len, data))
    })
}

/// An EDNS(0) Client Subnet option (RFC 7871), shown field by field as scapy does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSubnet {
    /// Address family (1: IPv4, 2: IPv6).
    pub family: u16,
    /// Source prefix length in bits.
    pub source_plen: u8,
    /// Scope prefix length in bits.
    pub scope_plen: u8,
    /// The address prefix, zero-filled to a whole address.
    pub address: SubnetAddr,
}

/// The address of a Client Subnet option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubnetAddr {
    /// An IPv4 prefix.
    V4([u8; 4]),
    /// An IPv6 prefix.
    V6([u8; 16]),
}

/// Decodes option code 8 the way scapy's `EDNS0ClientSubnet` does: `source_plen / 8` address
/// bytes, zero-filled. `None` (shown as plain option data) when the prefix is not a whole
/// number of bytes or the bytes are missing.
pub fn client_subnet(code: u16, data: &[u8]) -> Option<ClientSubnet> {
    if code != 8 || data.len() < 4 {
        return None;
    }
    let family = u16::from_be_bytes([data[0], data[1]]);
    let (source_plen, scope_plen) = (data[2], data[3]);
    let addr_len = if family == 2 { 16 } else { 4 };
    let take = (usize::from(source_plen) / 8).min(addr_len);
    let prefix = data.get(4..4 + take)?;
    let pad = (addr_len * 8).saturating_sub(usize::from(source_plen)) / 8;
    if take + pad < addr_len {
        return None;
    }
    let mut full = [0u8; 16];
    full[..take].copy_from_slice(prefix);
    let address = if family == 2 {
        SubnetAddr::V6(full)
    } else {
        SubnetAddr::V4([full[0], full[1], full[2], full[3]])
    };
    Some(ClientSubnet {
        family,
        source_plen,
        scope_plen,
        address,
    })
}

/// What [`validate`] found: how far the decoded part goes and how much of it there is.
struct Validated {
    used: usize,
    shown: [u16; 4],
    name_bytes: usize,
    over_limit: bool,
}

/// The end of the name at `pos` and its length as written in JSON (see [`label_json_len`]).
/// The enclosing quotes are counted with the record's keys.
fn name_len(msg: &[u8], pos: usize) -> Result<(usize, usize), ErrorKind> {
    let mut n = 0usize;
    let end = walk_name(msg, pos, |l| n += label_json_len(l))?;
    Ok((end, n))
}

/// A label's length as written in JSON, with its dot: each byte as the encoder escapes it
/// (`"` and `\\` two bytes, printable ASCII one, anything else six, `\u00XX`). The bytes
/// are summed from a table, no branch per byte.
#[inline(always)]
fn label_json_len(label: &[u8]) -> usize {
    1 + label
        .iter()
        .map(|&b| usize::from(JSON_BYTES[usize::from(b)]))
        .sum::<usize>()
}

/// JSON bytes of each byte value inside a latin-1 string (see [`label_json_len`]).
static JSON_BYTES: [u8; 256] = {
    let mut t = [6u8; 256];
    let mut b = 0x20;
    while b <= 0x7e {
        t[b] = if b == b'"' as usize || b == b'\\' as usize {
            2
        } else {
            1
        };
        b += 1;
    }
    t
};

/// Validates every name and record so that encoding can walk the message without surprises,
/// up to the per-message limits (see the module documentation).
fn validate(msg: &[u8]) -> Result<Validated, ErrorKind> {
    if msg.len() < 12 {
        return Err(ErrorKind::Truncated);
    }
    let dns = Dns {
        msg,
        tcp_length: None,
        used: 12,
        shown: [0; 4],
        name_bytes: 0,
    };
    let body = msg.len() - 12;
    let counts = [dns.qdcount(), dns.ancount(), dns.nscount(), dns.arcount()];
    if counts.iter().any(|&c| usize::from(c) > body) {
        return Err(ErrorKind::BadRecord);
    }
    let mut v = Validated {
        used: 12,
        shown: [0; 4],
        name_bytes: 0,
        over_limit: false,
    };
    let mut w = dns.walker();
    for (section, &count) in counts.iter().enumerate() {
        for _ in 0..count {
            let before = w.position();
            // The owner name is measured while the walker reads it (one walk per name).
            let mut names = 0usize;
            let measure = |l: &[u8]| names += label_json_len(l);
            if section == 0 {
                w.question_with(measure)?;
            } else {
                let r = w.record_with(measure)?;
                if let Some(name_kind) = rdata_name_offsets(r.rtype) {
                    names += check_rdata_names(msg, &r, name_kind)?;
                } else {
                    match r.rtype {
                        1 if r.rdata.len() < 4 => return Err(ErrorKind::Truncated),
                        28 if r.rdata.len() < 16 => return Err(ErrorKind::Truncated),
                        _ => {}
                    }
                }
            }
            if v.shown[section] == MAX_RECORDS_PER_SECTION
                || v.name_bytes + names > MAX_MESSAGE_NAME_JSON_BYTES
            {
                // This entry and the rest stay undecoded.
                v.used = before;
                v.over_limit = true;
                return Ok(v);
            }
            v.shown[section] += 1;
            v.name_bytes += names;
        }
    }
    v.used = w.position();
    Ok(v)
}

/// Record types whose rdata holds names, and how they are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RdataNames {
    /// NS, MD, MF, CNAME, PTR: one name.
    One,
    /// MX: preference, exchange.
    Mx,
    /// SOA: mname, rname, then five 32-bit numbers.
    Soa,
    /// SRV: priority, weight, port, target.
    Srv,
}

/// Where the compressed names sit in the rdata of `rtype`, for types that hold names.
pub fn rdata_name_offsets(rtype: u16) -> Option<RdataNames> {
    match rtype {
        2..=5 | 12 => Some(RdataNames::One),
        15 => Some(RdataNames::Mx),
        6 => Some(RdataNames::Soa),
        33 => Some(RdataNames::Srv),
        _ => None,
    }
}

/// Checks the names in `r`'s rdata; returns their expanded bytes.
fn check_rdata_names(msg: &[u8], r: &Record<'_>, kind: RdataNames) -> Result<usize, ErrorKind> {
    let end = r.rdata_at + r.rdata.len();
    let walk = |at: usize| -> Result<(usize, usize), ErrorKind> {
        if at >= end {
            return Err(ErrorKind::Truncated);
        }
        name_len(msg, at)
    };
    Ok(match kind {
        RdataNames::One => walk(r.rdata_at)?.1,
        RdataNames::Mx => walk(r.rdata_at + 2)?.1,
        RdataNames::Srv => walk(r.rdata_at + 6)?.1,
        RdataNames::Soa => {
            let (after_m, m) = walk(r.rdata_at)?;
            let (after_r, n) = walk(after_m)?;
            if after_r + 20 > end {
                return Err(ErrorKind::Truncated);
            }
            m + n
        }
    })
}

// Inlined into the walk (decode_into), as LLVM did by itself until the walk's cold over-limit
// code tipped its size estimate (callgrind, decode of mixed.pcap: 827.5 -> 821.7 instructions
// per packet with tcp, dns and decode_ether inlined again; 805.5 before that code).
#[inline(always)]
pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>, tcp: bool) -> Next {
    let rest = cur.rest();
    let (tcp_length, msg, prefix) = if tcp {
        let Some(len) = rest.get(..2) else {
            return fail(pkt, LayerName::Dns, ErrorKind::Truncated);
        };
        let len = u16::from_be_bytes([len[0], len[1]]);
        // scapy refuses DNS over TCP whose length is below 14 or beyond the segment.
        if len < 14 || usize::from(len) > rest.len() - 2 {
            return fail(pkt, LayerName::Dns, ErrorKind::BadLength);
        }
        (Some(len), &rest[2..], 2)
    } else {
        (None, rest, 0)
    };
    let v = match validate(msg) {
        Ok(v) => v,
        Err(kind) => return fail(pkt, LayerName::Dns, kind),
    };
    if !push(
        pkt,
        Layer::Dns(Dns {
            msg,
            tcp_length,
            used: v.used,
            shown: v.shown,
            name_bytes: v.name_bytes,
        }),
    ) {
        return Next::Stop;
    }
    if v.over_limit {
        note(pkt, LayerName::Dns, ErrorKind::OverLimit);
    }
    cur.advance(prefix + v.used);
    Next::Stop
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(msg: &[u8], at: usize) -> Result<(String, usize), ErrorKind> {
        let mut s = String::new();
        let end = walk_name(msg, at, |l| {
            s.push_str(std::str::from_utf8(l).unwrap());
            s.push('.');
        })?;
        Ok((s, end))
    }

    #[test]
    fn compression_and_loops() {
        let mut m = vec![0u8; 12];
        m.extend_from_slice(b"\x03www\x07example\x03com\x00");
        m.extend_from_slice(&[0x04, b'm', b'a', b'i', b'l', 0xc0, 16]);
        assert_eq!(name_of(&m, 12).unwrap(), ("www.example.com.".into(), 29));
        assert_eq!(name_of(&m, 29).unwrap(), ("mail.example.com.".into(), 36));
        // A pointer to itself: ends the name (as scapy does).
        let mut l = vec![0u8; 12];
        l.extend_from_slice(&[0xc0, 12]);
        assert_eq!(name_of(&l, 12).unwrap(), (String::new(), 14));
        // A pointer into the header or past the end is an error.
        let mut h = vec![0u8; 12];
        h.extend_from_slice(&[0xc0, 2]);
        assert_eq!(name_of(&h, 12), Err(ErrorKind::BadName));
        let mut t = vec![0u8; 12];
        t.extend_from_slice(&[9, b'a']);
        assert_eq!(name_of(&t, 12), Err(ErrorKind::Truncated));
    }

    #[test]
    fn long_pointer_chain_is_bounded() {
        // 200 labels of 1 byte each chained by pointers: more than MAX_POINTERS hops.
        let mut m = vec![0u8; 12];
        for i in 0..200usize {
            let next = 12 + (i + 1) * 4;
            m.extend_from_slice(&[1, b'a', 0xc0 | (next >> 8) as u8, next as u8]);
        }
        m.push(0);
        assert_eq!(name_of(&m, 12), Err(ErrorKind::BadName));
    }

    #[test]
    fn txt_and_edns() {
        let v: Vec<_> = txt_strings(b"\x02hi\x05there\x09cut").collect();
        assert_eq!(v, [&b"hi"[..], b"there", b"cut"]);
        let v: Vec<_> = edns_options(&[0, 10, 0, 2, 1, 2, 0, 3, 0, 9, 7]).collect();
        assert_eq!(v, [(10, 2, &[1u8, 2][..]), (3, 9, &[7u8][..])]);
    }
}
