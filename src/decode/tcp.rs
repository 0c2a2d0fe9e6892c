//! TCP (RFC 9293) with its options. Inside an ICMP error the header is scapy's `TCPerror`.

use super::{fail, note, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};
use zerocopy::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// The fixed 20-byte TCP header (RFC 9293).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct TcpHdr {
    /// Source port.
    pub sport: U16,
    /// Destination port.
    pub dport: U16,
    /// Sequence number.
    pub seq: U32,
    /// Acknowledgment number.
    pub ack: U32,
    /// data offset (4 bits), reserved (3), then the 9 flag bits.
    pub off_flags: U16,
    /// Window size.
    pub window: U16,
    /// Checksum.
    pub chksum: U16,
    /// Urgent pointer.
    pub urgptr: U16,
}

impl TcpHdr {
    /// Header length in 32-bit words.
    pub fn dataofs(&self) -> u16 {
        self.off_flags.get() >> 12
    }
    /// The three reserved bits.
    pub fn reserved(&self) -> u16 {
        (self.off_flags.get() >> 9) & 0x7
    }
    /// NS..FIN as scapy's integer flag field.
    pub fn flags(&self) -> u16 {
        self.off_flags.get() & 0x1ff
    }
}

/// A decoded TCP header, kept to two words.
#[derive(Clone, Copy, Debug)]
pub struct Tcp<'a> {
    /// The fixed header followed by the option bytes as captured; at least 20 bytes.
    pub bytes: &'a [u8],
    /// Quoted inside an ICMP error (scapy `TCPerror`).
    pub quoted: bool,
}

impl<'a> Tcp<'a> {
    /// The fixed header and the options.
    pub fn split(&self) -> Option<(&'a TcpHdr, &'a [u8])> {
        TcpHdr::ref_from_prefix(self.bytes).ok()
    }
}

/// One TCP option as found on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpOption<'a> {
    /// Option kind (0: EOL, 1: NOP, 2: MSS, ...).
    pub kind: u8,
    /// Data after kind and length (empty for EOL and NOP).
    pub data: &'a [u8],
}

/// Iterates the options the way scapy 2.5 reads them: EOL ends the list, a length below 2 is
/// taken as 2, a length past the end takes what is there.
#[derive(Clone, Debug)]
pub struct TcpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> TcpOptions<'a> {
    /// Options from the bytes after the fixed header.
    pub fn new(options: &'a [u8]) -> Self {
        TcpOptions { rest: options }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = TcpOption<'a>;

    fn next(&mut self) -> Option<TcpOption<'a>> {
        let (&kind, after) = self.rest.split_first()?;
        match kind {
            0 => {
                self.rest = &[];
                Some(TcpOption { kind, data: &[] })
            }
            1 => {
                self.rest = after;
                Some(TcpOption { kind, data: &[] })
            }
            _ => {
                let len = usize::from(after.first().copied().unwrap_or(0)).max(2);
                let data = self.rest.get(2..len.min(self.rest.len())).unwrap_or(&[]);
                self.rest = self.rest.get(len..).unwrap_or(&[]);
                Some(TcpOption { kind, data })
            }
        }
    }
}

/// TCP ports where scapy 2.5 decodes another protocol (Kerberos, DCE/RPC, LDAP, SMB/NetBIOS,
/// PPTP, Skinny): the TLS/HTTP look-alike test is not applied there, so the output keeps
/// matching scapy's (those protocols are raw here). A `match`, not a list walked for every
/// segment.
fn is_other_protocol_port(port: u16) -> bool {
    matches!(port, 88 | 135 | 139 | 389 | 445 | 1723 | 2000 | 3268)
}

/// The application layers scapy 2.5 binds to TCP ports once `http` and `tls` are loaded:
/// HTTP/1.x on 80 and 8080, TLS on 443 (either side). On any other port a payload that
/// starts like a TLS ClientHello/ServerHello record or an HTTP/1.x first line is tried as
/// one (the decoders check the rest; anything else stays raw).
///
/// scapy takes the first binding that matches, in the order they were made: the other
/// protocols' ports come before HTTP's and TLS's. Inside an ICMP error (`TCPerror`, which
/// shares TCP's bindings) only the ports count.
///
/// On the bound ports the same first-bytes test the decoders start with is made here, so a
/// body segment (most of port 80's) stops at once instead of taking one more step of the walk.
fn app_by_ports(sport: u16, dport: u16, payload: &[u8], quoted: bool) -> Next {
    let either = |p: u16| sport == p || dport == p;
    if is_other_protocol_port(sport) || is_other_protocol_port(dport) {
        Next::Stop
    } else if either(80) || either(8080) {
        if super::http::may_start_http(payload) {
            Next::Http
        } else {
            Next::Stop
        }
    } else if either(443) {
        if super::tls::looks_like_hello(payload) {
            Next::Tls
        } else {
            Next::Stop
        }
    } else if quoted {
        Next::Stop
    } else if super::tls::looks_like_hello(payload) {
        Next::Tls
    } else if super::http::may_start_http(payload) {
        Next::Http
    } else {
        Next::Stop
    }
}

// Inlined into the walk (decode_into), as LLVM did by itself until the walk's cold over-limit
// code tipped its size estimate (callgrind, decode of mixed.pcap: 827.5 -> 821.7 instructions
// per packet with tcp, dns and decode_ether inlined again; 805.5 before that code).
#[inline(always)]
pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>, quoted: bool) -> Next {
    let Ok((hdr, rest)) = TcpHdr::ref_from_prefix(cur.rest()) else {
        return fail(pkt, LayerName::Tcp, ErrorKind::Truncated);
    };
    let opt_len = (usize::from(hdr.dataofs()) * 4).saturating_sub(20);
    let options = rest.get(..opt_len).unwrap_or(rest);
    if !push(
        pkt,
        Layer::Tcp(Tcp {
            bytes: cur.rest().get(..20 + options.len()).unwrap_or(&[]),
            quoted,
        }),
    ) {
        return Next::Stop;
    }
    cur.advance(20 + options.len());
    if hdr.dataofs() < 5 {
        note(pkt, LayerName::Tcp, ErrorKind::BadLength);
    }
    if options.len() < opt_len {
        return fail(pkt, LayerName::Tcp, ErrorKind::Truncated);
    }
    if cur.rest().is_empty() {
        return Next::Stop;
    }
    if hdr.sport.get() == 53 || hdr.dport.get() == 53 {
        Next::Dns { tcp: true }
    } else {
        app_by_ports(hdr.sport.get(), hdr.dport.get(), cur.rest(), quoted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_like_scapy() {
        let raw = [
            2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 0, 9, 9,
        ];
        let v: Vec<_> = TcpOptions::new(&raw).map(|o| o.kind).collect();
        assert_eq!(v, [2, 1, 3, 4, 8, 0]);
        // Length 0 is read as 2; a length past the end takes what is there.
        let v: Vec<_> = TcpOptions::new(&[30, 0, 28, 9, 1]).collect();
        assert_eq!(
            v[0],
            TcpOption {
                kind: 30,
                data: &[]
            }
        );
        assert_eq!(
            v[1],
            TcpOption {
                kind: 28,
                data: &[1]
            }
        );
        assert_eq!(v.len(), 2);
    }
}
