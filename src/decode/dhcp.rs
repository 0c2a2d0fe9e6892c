//! BOOTP (RFC 951) and the DHCP options after its magic cookie (RFC 2131/2132), on UDP
//! 67 <-> 68 as scapy 2.5 binds them. The option list is walked the way scapy's
//! `DHCPOptionsField` walks it, so each option shows with scapy's name and value types, and a
//! malformed tail is kept whole, as scapy keeps it.

use super::bytes::{be16, be32};
use super::{fail, push, Cursor, ErrorKind, Layer, LayerName, Next, Packet};

/// The fixed BOOTP header, `op` to `file`.
pub const FIXED_BYTES: usize = 236;
/// RFC 2131's magic cookie in front of the DHCP options.
pub const MAGIC: [u8; 4] = [99, 130, 83, 99];

/// One slice keeps [`Layer`] at its size (every frame's `Packet` holds
/// [`super::MAX_LAYERS`] of them).
#[derive(Clone, Copy, Debug)]
pub struct Bootp<'a> {
    /// The fixed header ([`FIXED_BYTES`]) and then scapy's `options` field: the magic cookie
    /// alone when DHCP follows, else every byte after the fixed header.
    pub bytes: &'a [u8],
}

impl<'a> Bootp<'a> {
    /// The fixed BOOTP header (empty when cut).
    pub fn fixed(&self) -> &'a [u8] {
        self.bytes.get(..FIXED_BYTES).unwrap_or(&[])
    }
    /// What follows the fixed header (scapy's `options` field).
    pub fn options(&self) -> &'a [u8] {
        self.bytes.get(FIXED_BYTES..).unwrap_or(&[])
    }
    /// The byte at `at` of the fixed header (0 past it).
    pub fn byte(&self, at: usize) -> u8 {
        self.fixed().get(at).copied().unwrap_or(0)
    }
    /// The big-endian `u16` at `at` of the fixed header (0 past it).
    pub fn be16(&self, at: usize) -> u16 {
        be16(self.fixed(), at)
    }
    /// The big-endian `u32` at `at` of the fixed header (0 past it).
    pub fn be32(&self, at: usize) -> u32 {
        be32(self.fixed(), at)
    }
    /// `fixed[from..to]` (empty if out of range, which cannot happen for a decoded layer).
    pub fn field(&self, from: usize, to: usize) -> &[u8] {
        self.fixed().get(from..to).unwrap_or(&[])
    }
}

/// The DHCP options after the magic cookie, as captured (scapy's `DHCP.options` bytes).
#[derive(Clone, Copy, Debug)]
pub struct Dhcp<'a> {
    /// The option bytes after the magic cookie.
    pub options: &'a [u8],
}

impl<'a> Dhcp<'a> {
    /// The options one by one, as scapy lists them.
    pub fn iter(&self) -> DhcpOptions<'a> {
        DhcpOptions { rest: self.options }
    }
}

/// How scapy 2.5 reads an option's value (`DHCPOptions` table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptKind {
    /// Named by a plain string in scapy's table: one byte-string value, even when empty.
    Bytes,
    /// `StrField`: one byte-string value, none when empty.
    Str,
    /// `IPField`: IPv4 addresses, four bytes each.
    Ip,
    /// `IntField`: unsigned 32-bit numbers.
    Int,
    /// `ShortField`: unsigned 16-bit numbers.
    Short,
    /// `ByteField` / `ByteEnumField`: one number per byte.
    Byte,
    /// `param_req_list`: one list of byte numbers.
    ByteList,
    /// RFC 3442 classless static routes: one list of `dest/prefix:router` texts.
    Classless,
}

/// One item of scapy's option list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DhcpOption<'a> {
    /// Option 0, padding.
    Pad,
    /// Option 255, the end of the options.
    End,
    /// A complete option: its code, scapy's name for it (`None`: shown by number) and kind,
    /// and its value bytes.
    Value {
        /// The option code.
        code: u8,
        /// scapy's name for it (`None`: shown by number).
        name: Option<&'static str>,
        /// How its value is shown.
        kind: OptKind,
        /// The value bytes.
        data: &'a [u8],
    },
    /// The rest of the options from a malformed one on, as one byte string (scapy appends
    /// the remaining bytes and stops).
    Malformed(&'a [u8]),
}

/// Iterator over DHCP options ([`Dhcp::iter`]).
pub struct DhcpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for DhcpOptions<'a> {
    type Item = DhcpOption<'a>;

    fn next(&mut self) -> Option<DhcpOption<'a>> {
        let x = self.rest;
        let (&code, after) = x.split_first()?;
        match code {
            255 => {
                self.rest = after;
                return Some(DhcpOption::End);
            }
            0 => {
                self.rest = after;
                return Some(DhcpOption::Pad);
            }
            _ => {}
        }
        let Some(&olen) = after.first() else {
            self.rest = &[];
            return Some(DhcpOption::Malformed(x));
        };
        let end = 2 + usize::from(olen);
        let Some(data) = x.get(2..end) else {
            self.rest = &[];
            return Some(DhcpOption::Malformed(x));
        };
        let (name, kind) = match option_info(code) {
            Some((n, k)) => (Some(n), k),
            None => (None, OptKind::Bytes),
        };
        if !value_parses(kind, data) {
            self.rest = &[];
            return Some(DhcpOption::Malformed(x));
        }
        self.rest = &x[end..];
        Some(DhcpOption::Value {
            code,
            name,
            kind,
            data,
        })
    }
}

/// Whether scapy's field reads `data` whole without raising (scapy then keeps the rest of
/// the options as one malformed byte string).
fn value_parses(kind: OptKind, data: &[u8]) -> bool {
    match kind {
        OptKind::Ip | OptKind::Int => data.len() % 4 == 0,
        OptKind::Short => data.len() % 2 == 0,
        OptKind::Classless => ClasslessRoutes::new(data).all(|r| r.is_some()),
        _ => true,
    }
}

/// One RFC 3442 route: destination (zero-filled), prefix length, router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination network, zero-filled past the prefix.
    pub dest: [u8; 4],
    /// Prefix length in bits.
    pub prefix: u8,
    /// The router for that destination.
    pub router: [u8; 4],
}

/// The routes of option 121; `Some(None)` for a route scapy cannot read (a prefix over 32,
/// on which scapy 2.5 loops forever, or a cut route).
pub struct ClasslessRoutes<'a> {
    rest: &'a [u8],
}

impl<'a> ClasslessRoutes<'a> {
    /// The routes in the value of option 121.
    pub fn new(data: &'a [u8]) -> Self {
        ClasslessRoutes { rest: data }
    }
}

impl Iterator for ClasslessRoutes<'_> {
    type Item = Option<Route>;

    fn next(&mut self) -> Option<Option<Route>> {
        let (&prefix, _) = self.rest.split_first()?;
        if prefix > 32 {
            self.rest = &[];
            return Some(None);
        }
        let octets = usize::from(prefix).div_ceil(8);
        let route_len = 5 + octets;
        let Some(r) = self.rest.get(..route_len) else {
            self.rest = &[];
            return Some(None);
        };
        self.rest = &self.rest[route_len..];
        let mut dest = [0u8; 4];
        dest[..octets].copy_from_slice(&r[1..1 + octets]);
        let mut router = [0u8; 4];
        router.copy_from_slice(&r[1 + octets..route_len]);
        Some(Some(Route {
            dest,
            prefix,
            router,
        }))
    }
}

/// scapy 2.5's `DHCPOptions` table: name and value kind of each known option code.
pub fn option_info(code: u8) -> Option<(&'static str, OptKind)> {
    Some(match code {
        1 => ("subnet_mask", OptKind::Ip),
        2 => ("time_zone", OptKind::Int),
        3 => ("router", OptKind::Ip),
        4 => ("time_server", OptKind::Ip),
        5 => ("IEN_name_server", OptKind::Ip),
        6 => ("name_server", OptKind::Ip),
        7 => ("log_server", OptKind::Ip),
        8 => ("cookie_server", OptKind::Ip),
        9 => ("lpr_server", OptKind::Ip),
        10 => ("impress-servers", OptKind::Ip),
        11 => ("resource-location-servers", OptKind::Ip),
        12 => ("hostname", OptKind::Bytes),
        13 => ("boot-size", OptKind::Short),
        14 => ("dump_path", OptKind::Bytes),
        15 => ("domain", OptKind::Bytes),
        16 => ("swap-server", OptKind::Ip),
        17 => ("root_disk_path", OptKind::Bytes),
        18 => ("extensions-path", OptKind::Bytes),
        19 => ("ip-forwarding", OptKind::Byte),
        20 => ("non-local-source-routing", OptKind::Byte),
        21 => ("policy-filter", OptKind::Ip),
        22 => ("max_dgram_reass_size", OptKind::Short),
        23 => ("default_ttl", OptKind::Byte),
        24 => ("pmtu_timeout", OptKind::Int),
        25 => ("path-mtu-plateau-table", OptKind::Short),
        26 => ("interface-mtu", OptKind::Short),
        27 => ("all-subnets-local", OptKind::Byte),
        28 => ("broadcast_address", OptKind::Ip),
        29 => ("perform-mask-discovery", OptKind::Byte),
        30 => ("mask-supplier", OptKind::Byte),
        31 => ("router-discovery", OptKind::Byte),
        32 => ("router-solicitation-address", OptKind::Ip),
        33 => ("static-routes", OptKind::Ip),
        34 => ("trailer-encapsulation", OptKind::Byte),
        35 => ("arp_cache_timeout", OptKind::Int),
        36 => ("ieee802-3-encapsulation", OptKind::Byte),
        37 => ("tcp_ttl", OptKind::Byte),
        38 => ("tcp_keepalive_interval", OptKind::Int),
        39 => ("tcp_keepalive_garbage", OptKind::Byte),
        40 => ("NIS_domain", OptKind::Str),
        41 => ("NIS_server", OptKind::Ip),
        42 => ("NTP_server", OptKind::Ip),
        43 => ("vendor_specific", OptKind::Bytes),
        44 => ("NetBIOS_server", OptKind::Ip),
        45 => ("NetBIOS_dist_server", OptKind::Ip),
        46 => ("NetBIOS_node_type", OptKind::Byte),
        47 => ("netbios-scope", OptKind::Bytes),
        48 => ("font-servers", OptKind::Ip),
        49 => ("x-display-manager", OptKind::Ip),
        50 => ("requested_addr", OptKind::Ip),
        51 => ("lease_time", OptKind::Int),
        52 => ("dhcp-option-overload", OptKind::Byte),
        53 => ("message-type", OptKind::Byte),
        54 => ("server_id", OptKind::Ip),
        55 => ("param_req_list", OptKind::ByteList),
        56 => ("error_message", OptKind::Bytes),
        57 => ("max_dhcp_size", OptKind::Short),
        58 => ("renewal_time", OptKind::Int),
        59 => ("rebinding_time", OptKind::Int),
        60 => ("vendor_class_id", OptKind::Str),
        61 => ("client_id", OptKind::Str),
        62 => ("nwip-domain-name", OptKind::Bytes),
        64 => ("NISplus_domain", OptKind::Bytes),
        65 => ("NISplus_server", OptKind::Ip),
        66 => ("tftp_server_name", OptKind::Bytes),
        67 => ("boot-file-name", OptKind::Str),
        68 => ("mobile-ip-home-agent", OptKind::Ip),
        69 => ("SMTP_server", OptKind::Ip),
        70 => ("POP3_server", OptKind::Ip),
        71 => ("NNTP_server", OptKind::Ip),
        72 => ("WWW_server", OptKind::Ip),
        73 => ("Finger_server", OptKind::Ip),
        74 => ("IRC_server", OptKind::Ip),
        75 => ("StreetTalk_server", OptKind::Ip),
        76 => ("StreetTalk_Dir_Assistance", OptKind::Ip),
        77 => ("user_class", OptKind::Bytes),
        78 => ("slp_service_agent", OptKind::Bytes),
        79 => ("slp_service_scope", OptKind::Bytes),
        81 => ("client_FQDN", OptKind::Bytes),
        82 => ("relay_agent_information", OptKind::Bytes),
        85 => ("nds-server", OptKind::Ip),
        86 => ("nds-tree-name", OptKind::Str),
        87 => ("nds-context", OptKind::Str),
        88 => ("bcms-controller-namesi", OptKind::Bytes),
        89 => ("bcms-controller-address", OptKind::Ip),
        91 => ("client-last-transaction-time", OptKind::Int),
        92 => ("associated-ip", OptKind::Ip),
        93 => ("pxe_client_architecture", OptKind::Bytes),
        94 => ("pxe_client_network_interface", OptKind::Bytes),
        97 => ("pxe_client_machine_identifier", OptKind::Bytes),
        98 => ("uap-servers", OptKind::Str),
        100 => ("pcode", OptKind::Str),
        101 => ("tcode", OptKind::Str),
        112 => ("netinfo-server-address", OptKind::Ip),
        113 => ("netinfo-server-tag", OptKind::Str),
        114 => ("default-url", OptKind::Str),
        116 => ("auto-config", OptKind::Byte),
        117 => ("name-service-search", OptKind::Short),
        118 => ("subnet-selection", OptKind::Ip),
        121 => ("classless_static_routes", OptKind::Classless),
        124 => ("vendor_class", OptKind::Bytes),
        125 => ("vendor_specific_information", OptKind::Bytes),
        128 => ("tftp_server_ip_address", OptKind::Ip),
        136 => ("pana-agent", OptKind::Ip),
        137 => ("v4-lost", OptKind::Bytes),
        138 => ("capwap-ac-v4", OptKind::Ip),
        141 => ("sip_ua_service_domains", OptKind::Bytes),
        146 => ("rdnss-selection", OptKind::Bytes),
        150 => ("tftp_server_address", OptKind::Ip),
        159 => ("v4-portparams", OptKind::Bytes),
        160 => ("v4-captive-portal", OptKind::Str),
        161 => ("mud-url", OptKind::Str),
        208 => ("pxelinux_magic", OptKind::Bytes),
        209 => ("pxelinux_configuration_file", OptKind::Bytes),
        210 => ("pxelinux_path_prefix", OptKind::Bytes),
        211 => ("pxelinux_reboot_time", OptKind::Bytes),
        212 => ("option-6rd", OptKind::Bytes),
        213 => ("v4-access-domain", OptKind::Bytes),
        _ => return None,
    })
}

// Out of line: see `decode_into` (the common path stays small).
#[inline(never)]
pub(crate) fn decode<'a>(cur: &mut Cursor<'a>, pkt: &mut Packet<'a>) -> Next {
    let rest = cur.rest();
    let Some(fixed) = rest.get(..FIXED_BYTES) else {
        return fail(pkt, LayerName::Bootp, ErrorKind::Truncated);
    };
    let after = &rest[FIXED_BYTES..];
    let dhcp = after.starts_with(&MAGIC);
    let options = if dhcp { &after[..4] } else { after };
    let bytes = &rest[..fixed.len() + options.len()];
    if !push(pkt, Layer::Bootp(Bootp { bytes })) {
        return Next::Stop;
    }
    cur.advance(FIXED_BYTES + options.len());
    if dhcp
        && push(
            pkt,
            Layer::Dhcp(Dhcp {
                options: &after[4..],
            }),
        )
    {
        cur.advance(after.len() - 4);
    }
    Next::Stop
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_like_scapy() {
        let raw = b"\x35\x01\x01\x37\x03\x01\x03\x06\x79\x08\x18\x0a\x00\x00\x0a\x00\x00\x01\
                    \x0c\x03abc\x33\x00\xff\x00\x01\x02\x03";
        let v: Vec<_> = Dhcp { options: raw }.iter().collect();
        assert_eq!(v.len(), 8);
        assert!(matches!(
            v[0],
            DhcpOption::Value {
                code: 53,
                name: Some("message-type"),
                kind: OptKind::Byte,
                data: [1]
            }
        ));
        let DhcpOption::Value { data, .. } = v[2] else {
            panic!()
        };
        let routes: Vec<_> = ClasslessRoutes::new(data).collect();
        assert_eq!(
            routes,
            [Some(Route {
                dest: [10, 0, 0, 0],
                prefix: 24,
                router: [10, 0, 0, 1]
            })]
        );
        assert!(matches!(
            v[4],
            DhcpOption::Value {
                code: 51,
                data: [],
                ..
            }
        ));
        assert_eq!(v[5], DhcpOption::End);
        assert_eq!(v[6], DhcpOption::Pad);
        // Option 1 says 2 bytes but only 1 follows: the rest is kept whole.
        assert_eq!(v[7], DhcpOption::Malformed(b"\x01\x02\x03"));
        // An address option of 3 bytes is malformed from there on.
        let v: Vec<_> = Dhcp {
            options: b"\x03\x03\x01\x02\x03\xff",
        }
        .iter()
        .collect();
        assert_eq!(v, [DhcpOption::Malformed(b"\x03\x03\x01\x02\x03\xff")]);
    }
}
