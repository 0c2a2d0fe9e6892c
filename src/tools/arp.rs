//! `send arp`: one ARP request (RFC 826) on an interface, then wait for the reply, as the
//! original's `arp_send_msg.py` did with scapy's `srp(Ether(dst=..)/ARP(pdst=..))`: sender
//! addresses are the interface's own, the target hardware address is zero, and by default
//! the request asks for the interface's own address and goes to its own MAC address.
//!
//! The frame goes out on an AF_PACKET socket bound to the interface (root or CAP_NET_RAW);
//! the system calls are the ring module's (`source::ring::sys`), the crate's only unsafe code.

use super::{send_exit, ToolError};
use crate::source::ring::iface::{interface_index, interface_ipv4_address, interface_mac_address};
use crate::source::ring::rx::{bind_interface, poll_readable, PollOutcome};
use crate::source::ring::sys::open_packet_socket;
use serde_json::json;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// The EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// `ARPHRD_ETHER` and `ARPHRD_LOOPBACK` (linux/if_arp.h): interfaces that carry Ethernet
/// frames.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;
/// ARP operation codes (RFC 826): who-has and is-at.
pub const OP_REQUEST: u16 = 1;
/// See [`OP_REQUEST`].
pub const OP_REPLY: u16 = 2;
/// Ethernet header (14) + ARP for Ethernet/IPv4 (28); sent unpadded, as scapy sends it.
pub const FRAME_BYTES: usize = 42;

/// One `send arp`: the request to make and how long to wait for its answer.
#[derive(Clone, Debug)]
pub struct ArpSend {
    /// The interface to send on; it must carry Ethernet frames.
    pub iface: String,
    /// The address asked for; `None`: the interface's own IPv4 address.
    pub dst_ip: Option<Ipv4Addr>,
    /// The frame's destination; `None`: the interface's own MAC address.
    pub dst_mac: Option<[u8; 6]>,
    /// How long to wait for the reply after sending.
    pub timeout: Duration,
}

/// What was sent and whether it was answered; printed as one JSON line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpOutcome {
    /// The interface the request went out on.
    pub iface: String,
    /// The frame's Ethernet destination.
    pub dst_mac: [u8; 6],
    /// The interface's MAC address (Ethernet source and ARP sender).
    pub src_mac: [u8; 6],
    /// The ARP sender address: the interface's IPv4 address, or 0.0.0.0 (a probe).
    pub src_ip: Ipv4Addr,
    /// The address asked for.
    pub dst_ip: Ipv4Addr,
    /// The answering hardware address, when a reply came in time.
    pub reply_from: Option<[u8; 6]>,
}

/// `aa:bb:cc:dd:ee:ff`, lower-case hex.
pub fn format_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// `aa:bb:cc:dd:ee:ff` (or with `-`); `None` when malformed.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

impl ArpOutcome {
    /// The JSON line printed on stdout (scapy's field names: `hwsrc`, `psrc`, `pdst`).
    pub fn json_line(&self) -> String {
        json!({
            "sent": "arp",
            "iface": self.iface,
            "dst_mac": format_mac(&self.dst_mac),
            "hwsrc": format_mac(&self.src_mac),
            "psrc": self.src_ip.to_string(),
            "pdst": self.dst_ip.to_string(),
            "reply": self.reply_from.is_some(),
            "reply_hwsrc": self.reply_from.as_ref().map(format_mac),
        })
        .to_string()
    }
}

/// The request frame: Ethernet to `dst_mac`, ARP who-has `dst_ip` tell `src_ip`.
pub fn request_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
) -> [u8; FRAME_BYTES] {
    let mut f = [0u8; FRAME_BYTES];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol type: IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&OP_REQUEST.to_be_bytes());
    f[22..28].copy_from_slice(&src_mac);
    f[28..32].copy_from_slice(&src_ip.octets());
    // 32..38: target hardware address, zero (unknown)
    f[38..42].copy_from_slice(&dst_ip.octets());
    f
}

/// The answering MAC when `frame` is an ARP reply from `ip`.
pub fn reply_from(frame: &[u8], ip: Ipv4Addr) -> Option<[u8; 6]> {
    if frame.len() < FRAME_BYTES
        || frame[12..14] != ETHERTYPE_ARP.to_be_bytes()
        || frame[20..22] != OP_REPLY.to_be_bytes()
        || frame[28..32] != ip.octets()
    {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&frame[22..28]);
    Some(mac)
}

fn socket_error(what: &str, e: io::Error) -> ToolError {
    let code = match e.kind() {
        io::ErrorKind::PermissionDenied => send_exit::PERMISSION,
        _ => send_exit::IO,
    };
    let hint = if code == send_exit::PERMISSION {
        " (sending ARP needs root: CAP_NET_RAW)"
    } else {
        ""
    };
    ToolError::new(code, format!("{what}: {e}{hint}"))
}

/// Sends the request on `cfg.iface` and waits up to `cfg.timeout` for a reply; no reply is
/// `Ok` with `reply_from: None`. Needs CAP_NET_RAW.
pub fn send_arp(cfg: &ArpSend) -> Result<ArpOutcome, ToolError> {
    let fd = open_packet_socket().map_err(|e| socket_error("cannot open a packet socket", e))?;
    let ifindex = interface_index(&cfg.iface).map_err(|e| {
        ToolError::new(
            send_exit::INTERFACE,
            format!("no interface {}: {e}", cfg.iface),
        )
    })?;
    let (hw_type, src_mac) = interface_mac_address(&fd, &cfg.iface).map_err(|e| {
        ToolError::new(
            send_exit::INTERFACE,
            format!("cannot read the MAC address of {}: {e}", cfg.iface),
        )
    })?;
    // An Ethernet frame on anything else (a tun device, a GRE tunnel) would be garbage.
    if hw_type != ARPHRD_ETHER && hw_type != ARPHRD_LOOPBACK {
        return Err(ToolError::new(
            send_exit::INTERFACE,
            format!(
                "{} is not an Ethernet interface (hardware type {hw_type})",
                cfg.iface
            ),
        ));
    }
    let own_ip = interface_ipv4_address(&fd, &cfg.iface).ok();
    let dst_ip = match (cfg.dst_ip, own_ip) {
        (Some(ip), _) => ip,
        (None, Some(ip)) => ip,
        (None, None) => {
            return Err(ToolError::new(
                send_exit::INTERFACE,
                format!(
                    "{} has no IPv4 address to ask for: give --dst-ip (ARP_DST_IP)",
                    cfg.iface
                ),
            ))
        }
    };
    // No address of our own: an ARP probe's sender address, 0.0.0.0 (RFC 5227).
    let src_ip = own_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let dst_mac = cfg.dst_mac.unwrap_or(src_mac);
    bind_interface(&fd, ifindex)
        .map_err(|e| socket_error(&format!("cannot bind a packet socket to {}", cfg.iface), e))?;
    let io_fd = fd
        .try_clone()
        .map_err(|e| socket_error("cannot duplicate the packet socket", e))?;
    let mut file = File::from(io_fd);
    let frame = request_frame(dst_mac, src_mac, src_ip, dst_ip);
    // A bound packet socket sends a write(2) as one frame on its interface.
    let n = file
        .write(&frame)
        .map_err(|e| socket_error(&format!("sending on {}", cfg.iface), e))?;
    if n != frame.len() {
        return Err(ToolError::new(
            send_exit::IO,
            format!("only {n} of {} bytes sent on {}", frame.len(), cfg.iface),
        ));
    }
    let deadline = Instant::now() + cfg.timeout;
    let mut buf = [0u8; 65_536];
    let mut reply = None;
    while reply.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match poll_readable(&fd, left) {
            Ok(PollOutcome::Readable) => {}
            Ok(PollOutcome::TimedOut) => break,
            Ok(PollOutcome::Interrupted) => continue,
            Ok(PollOutcome::Error) => {
                return Err(ToolError::new(
                    send_exit::IO,
                    format!("packet socket error on {}", cfg.iface),
                ))
            }
            Err(e) => return Err(socket_error("waiting for the reply", e)),
        }
        let got = match file.read(&mut buf) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(socket_error("reading the reply", e)),
        };
        reply = reply_from(&buf[..got], dst_ip);
    }
    Ok(ArpOutcome {
        iface: cfg.iface.clone(),
        dst_mac,
        src_mac,
        src_ip,
        dst_ip,
        reply_from: reply,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_and_print() {
        let m = parse_mac("02:00:0a:FF:00:01").unwrap();
        assert_eq!(m, [2, 0, 0x0a, 0xff, 0, 1]);
        assert_eq!(format_mac(&m), "02:00:0a:ff:00:01");
        assert_eq!(parse_mac("02-00-0a-ff-00-01"), Some(m));
        for bad in [
            "",
            "02:00:0a:ff:00",
            "02:00:0a:ff:00:01:02",
            "02:00:0a:ff:00:zz",
            "002:0:0:0:0:0",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn request_and_reply_layout() {
        let me = [2, 0, 0, 0, 0, 1];
        let them = [2, 0, 0, 0, 0, 2];
        let f = request_frame(
            [0xff; 6],
            me,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
        );
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[14..22], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&f[38..42], &[10, 0, 0, 2]);
        // The reply, built by swapping roles as a responder would.
        let mut r = request_frame(
            me,
            them,
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 1),
        );
        r[20..22].copy_from_slice(&OP_REPLY.to_be_bytes());
        assert_eq!(reply_from(&r, Ipv4Addr::new(10, 0, 0, 2)), Some(them));
        assert_eq!(reply_from(&r, Ipv4Addr::new(10, 0, 0, 3)), None);
        assert_eq!(reply_from(&f, Ipv4Addr::new(10, 0, 0, 1)), None);
        assert_eq!(reply_from(&r[..41], Ipv4Addr::new(10, 0, 0, 2)), None);
    }
}
