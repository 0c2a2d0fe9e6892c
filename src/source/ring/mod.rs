//! Live capture from one TPACKET_V3 receive ring on an AF_PACKET socket, and the packet
//! rings' kernel interface in the submodules:
//! - [`abi`]: the TPACKET_V3 (RX) and TPACKET_V2 (TX) structures and constants;
//! - [`rx`]: the receive socket's set-up calls, its mapped ring and the bounds-checked walk
//!   over a retired block;
//! - [`tx`]: the transmit socket and its ring (used by [`super::tx_ring`]);
//! - [`iface`]: interface index, flags, addresses and MTU;
//! - [`sys`]: the system calls and the shared ring memory, the capture-file mapping and
//!   libpcap's compile functions (opened on first use): the crate's only unsafe code.
//!
//! This module itself has no unsafe code.
//!
//! [`Ring::open`] sets the socket up in the order that lets no unwanted frame in: TPACKET_V3,
//! the BPF filter, the ring, and only then `bind` to the interface (the socket is created
//! with protocol 0, so before `bind` it receives nothing at all); anything that still sits in
//! the ordinary receive queue is drained. Promiscuous mode and the fanout group come after
//! `bind`, which the kernel requires for fanout.
//!
//! [`Ring::next_block`] waits for the next retired block, lends each frame to a callback and
//! hands the block back. Frames whose VLAN tag the kernel moved into `tp_vlan_tci` get their
//! 802.1Q/802.1ad header back (copied into a per-ring scratch buffer), so decoders see the
//! frame as it was on the wire. Kernel counters (`PACKET_STATISTICS`, zeroed on every read)
//! are summed into running totals by [`Ring::stats`].

pub mod abi;
pub mod iface;
pub mod rx;
pub mod sys;
pub mod tx;

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::str::FromStr;
use std::time::Duration;

use super::filter::{BpfFilter, BpfInsn};
use crate::decode::LinkType;
use crate::encode::FrameMeta;
use crate::exit;
use abi::TpacketReq3;
use rx::{PacketSocket, PollOutcome};

/// libpcap's largest snapshot length; frames are never cut shorter by default.
pub const MAX_SNAPLEN_BYTES: u32 = 262_144;
/// Fewest blocks a ring is shrunk to when the kernel cannot give us the memory asked for.
pub const MIN_BLOCK_COUNT: usize = 2;
/// `BPF_RET | BPF_K`: "return the constant k".
const BPF_RET_K: u16 = 0x06;
const VLAN_HEADER_BYTES: usize = 4;
/// The interface name that captures on every interface, as tcpdump's `any`.
pub const ANY_INTERFACE: &str = "any";
/// `LINKTYPE_LINUX_SLL2`: what a ring on [`ANY_INTERFACE`] delivers.
pub const LINKTYPE_LINUX_SLL2: u32 = 276;
/// The Linux cooked v2 header (https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html).
const SLL2_HEADER_BYTES: usize = 20;
/// `PACKET_OUTGOING` (`linux/if_packet.h`).
const PACKET_OUTGOING: u8 = 4;
const TPID_8021Q: u16 = 0x8100;

/// How the kernel spreads frames over the rings of one fanout group (`packet(7)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanoutMode {
    /// By the kernel's symmetric flow hash: both directions of a flow on one ring, and every
    /// fragment of one IP datagram on one ring (see [`FanoutMode::type_flags`]).
    Hash,
    /// Round robin.
    Lb,
    /// By the CPU the frame arrived on.
    Cpu,
    /// Fill one ring, then the next (breaks flows across rings).
    Rollover,
    /// By the NIC's receive queue.
    Qm,
}

impl FanoutMode {
    /// The `PACKET_FANOUT` type-and-flags half word.
    ///
    /// `Hash` does not set `PACKET_FANOUT_FLAG_DEFRAG`. With it, `packet_rcv_fanout`
    /// (net/packet/af_packet.c) hands IPv4 frames to `ip_check_defrag` before the fanout, and
    /// the fragments of a datagram that never completes, or whose fragments overlap, never
    /// reach a ring and are counted nowhere (not even in `tp_drops`): a silent loss, and not
    /// what tcpdump or one ring sees. Without it the fragments of one datagram still share a
    /// ring: `fanout_demux_hash` takes `__skb_get_hash_symmetric` (kernel commit
    /// eb70db875671; `__skb_get_hash_symmetric_net` now), which dissects with
    /// `flow_keys_dissector_symmetric` and without `FLOW_DISSECTOR_F_PARSE_1ST_FRAG`. In
    /// `__skb_flow_dissect` (net/core/flow_dissector.c) an IPv4 header with MF or an offset
    /// (`ip_is_fragment`), first fragment included, stops the dissection before the ports,
    /// and so does an IPv6 fragment header (`NEXTHDR_FRAGMENT`); the ports stay 0. The hash
    /// of every fragment is then that of its addresses and protocol. IPv4: source,
    /// destination and protocol, all part of the reassembler's key, so one datagram is one
    /// ring. IPv6: the addresses and the fragment header's next header (kernels before commit
    /// a5e2151ff9d5 stop at the addresses of a header with a flow label), the same in every
    /// fragment a sender makes; RFC 8200 lets the next header of later fragments differ,
    /// and such a datagram may be split over rings: its fragments are all captured, and the
    /// reassembler gives it up (counted). Unfragmented packets are still hashed with their
    /// ports, per flow, so a flow's fragments may land on another ring than its whole packets.
    pub fn type_flags(self) -> u16 {
        match self {
            FanoutMode::Hash => abi::PACKET_FANOUT_HASH,
            FanoutMode::Lb => abi::PACKET_FANOUT_LB,
            FanoutMode::Cpu => abi::PACKET_FANOUT_CPU,
            FanoutMode::Rollover => abi::PACKET_FANOUT_ROLLOVER,
            FanoutMode::Qm => abi::PACKET_FANOUT_QM,
        }
    }

    /// The mode's name as `--fanout` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            FanoutMode::Hash => "hash",
            FanoutMode::Lb => "lb",
            FanoutMode::Cpu => "cpu",
            FanoutMode::Rollover => "rollover",
            FanoutMode::Qm => "qm",
        }
    }
}

impl FromStr for FanoutMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "hash" => FanoutMode::Hash,
            "lb" => FanoutMode::Lb,
            "cpu" => FanoutMode::Cpu,
            "rollover" => FanoutMode::Rollover,
            "qm" => FanoutMode::Qm,
            other => {
                return Err(format!(
                    "unknown fanout mode {other:?} (expected hash, lb, cpu, rollover or qm)"
                ))
            }
        })
    }
}

/// What ring to open and how.
#[derive(Clone, Debug)]
pub struct RingConfig {
    /// Interface name (`eth0`, or `any`).
    pub iface: String,
    /// Size of one block; a multiple of the page size.
    pub block_bytes: usize,
    /// Blocks in the ring (shrunk, down to [`MIN_BLOCK_COUNT`], if the memory is not there).
    pub block_count: usize,
    /// TPACKET_V3 packs packets of any size into a block; this only has to satisfy the
    /// kernel's checks (a multiple of 16, at least 68, at most `block_bytes`).
    pub frame_bytes: usize,
    /// A block that is not full is handed to us after this many milliseconds.
    pub block_timeout_ms: u32,
    /// Bytes kept of each frame (the kernel cuts them through the filter's return value).
    pub snaplen: u32,
    /// Put the interface in promiscuous mode while the ring is open.
    pub promisc: bool,
    /// Fanout group id and mode, shared by every ring of one capture.
    pub fanout: Option<(u16, FanoutMode)>,
    /// Compiled for Ethernet (link type 1). Not used on [`ANY_INTERFACE`] (the kernel would
    /// run it on each device's own framing): the caller filters the cooked frames.
    pub filter: Option<BpfFilter>,
}

impl RingConfig {
    /// Defaults for `iface`: 64 blocks of 1 MiB (a 64 MiB ring holds about 50 ms of a fully
    /// loaded 10 Gb/s link), 10 ms block timeout, whole frames, promiscuous, no fanout.
    pub fn new(iface: &str) -> RingConfig {
        RingConfig {
            iface: iface.to_owned(),
            block_bytes: 1 << 20,
            block_count: 64,
            frame_bytes: 2048,
            block_timeout_ms: 10,
            snaplen: MAX_SNAPLEN_BYTES,
            promisc: true,
            fanout: None,
            filter: None,
        }
    }
}

/// What kind of failure [`RingError`] is, for exit codes and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingErrorKind {
    /// No permission: the socket needs `CAP_NET_RAW`.
    Permission,
    /// No interface of that name.
    NoSuchInterface,
    /// The interface is down.
    InterfaceDown,
    /// The interface's hardware type is not one we capture from.
    UnsupportedLinkType,
    /// The kernel refused the ring settings.
    Config,
    /// The kernel refused the filter program.
    Filter,
    /// Any other socket error.
    Socket,
}

/// Why a ring could not be opened. `Display` is one line that says what to do.
#[derive(Debug)]
pub struct RingError {
    kind: RingErrorKind,
    iface: String,
    message: String,
    source: Option<io::Error>,
}

impl RingError {
    pub(crate) fn new(kind: RingErrorKind, iface: &str, message: impl Into<String>) -> RingError {
        RingError {
            kind,
            iface: iface.to_owned(),
            message: message.into(),
            source: None,
        }
    }

    /// A failed system call, classified by its errno.
    pub(crate) fn sys(iface: &str, what: &str, e: io::Error) -> RingError {
        let kind = match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => RingErrorKind::Permission,
            Some(libc::ENODEV) | Some(libc::ENXIO) => RingErrorKind::NoSuchInterface,
            Some(libc::ENETDOWN) => RingErrorKind::InterfaceDown,
            _ => RingErrorKind::Socket,
        };
        let message = match kind {
            RingErrorKind::Permission => format!(
                "{what}: {e}; live capture needs CAP_NET_RAW (run as root, or grant it with \
                 `setcap cap_net_raw,cap_net_admin=eip` on the binary)"
            ),
            RingErrorKind::NoSuchInterface => format!("{what}: no such interface"),
            RingErrorKind::InterfaceDown => {
                format!("{what}: interface is down (bring it up: ip link set {iface} up)")
            }
            _ => format!("{what}: {e}"),
        };
        RingError {
            kind,
            iface: iface.to_owned(),
            message,
            source: Some(e),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> RingErrorKind {
        self.kind
    }

    /// The interface the ring was for.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// A distinct process exit code per kind (from [`crate::exit`]).
    pub fn exit_code(&self) -> i32 {
        i32::from(match self.kind {
            RingErrorKind::Permission => exit::PERMISSION,
            RingErrorKind::NoSuchInterface | RingErrorKind::InterfaceDown => exit::NO_INTERFACE,
            RingErrorKind::UnsupportedLinkType => exit::LINK_TYPE,
            RingErrorKind::Filter => exit::FILTER,
            RingErrorKind::Config => exit::USAGE,
            RingErrorKind::Socket => exit::SOCKET,
        })
    }
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `{:?}` quotes the name and escapes anything odd, so this stays one line.
        write!(f, "interface {:?}: {}", self.iface, self.message)
    }
}

impl std::error::Error for RingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// Running totals since the ring was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Frames that passed the kernel filter (`tp_packets`, including the dropped ones).
    pub packets: u64,
    /// Frames the kernel dropped for want of a free block (`tp_drops`).
    pub drops: u64,
    /// Times the kernel froze the queue because every block was with us (`tp_freeze_q_cnt`).
    pub freezes: u64,
    /// Blocks whose walk stopped at an offset or length that did not fit in the block.
    pub bad_blocks: u64,
    /// Frames handed to the callback of [`Ring::next_block`].
    pub frames: u64,
    /// Blocks handed back to the kernel.
    pub blocks: u64,
    /// Frames whose VLAN tag the kernel had moved into `tp_vlan_tci` and we put back.
    pub vlan_tags_restored: u64,
}

/// One TPACKET_V3 receive ring bound to one interface. `Send`, not `Sync`: one worker owns it.
#[derive(Debug)]
pub struct Ring {
    sock: PacketSocket,
    iface: String,
    ifindex: u32,
    snaplen: u32,
    /// On [`ANY_INTERFACE`]: frames become Linux cooked v2 (SLL2), as tcpdump's `any`.
    cooked: bool,
    /// Where a frame is rebuilt with its VLAN header put back (or, cooked, behind its SLL2
    /// header); sized once, never grows.
    scratch: Vec<u8>,
    totals: RingStats,
    warnings: Vec<String>,
}

impl Ring {
    /// Opens, configures and binds a ring as `cfg` says, in the calling thread's network
    /// namespace. Warnings (a ring shrunk for lack of memory) are in [`Ring::warnings`].
    pub fn open(cfg: &RingConfig) -> Result<Ring, RingError> {
        let iface = cfg.iface.as_str();
        let req = validate(cfg)?;
        let program = if iface == ANY_INTERFACE {
            filter_program(&RingConfig {
                filter: None,
                ..cfg.clone()
            })
        } else {
            filter_program(cfg)
        }
        .map_err(|m| RingError::new(RingErrorKind::Filter, iface, m))?;

        let cooked = iface == ANY_INTERFACE;
        let (fd, ifindex) = if cooked {
            // Bound to interface 0 the socket sees every interface of the namespace, each
            // frame with its own device's framing, which `take_block` turns into SLL2.
            let fd = sys::open_packet_socket()
                .map_err(|e| RingError::sys(iface, "opening a packet socket", e))?;
            (fd, 0)
        } else {
            open_checked_socket(iface, "only Ethernet interfaces can be captured")?
        };
        rx::set_tpacket_v3(&fd).map_err(|e| RingError::sys(iface, "selecting TPACKET_V3", e))?;
        sys::attach_filter(&fd, &program)
            .map_err(|e| RingError::sys(iface, "attaching the BPF filter", e))?;

        let mut sock = PacketSocket::new(fd);
        let mut warnings = Vec::new();
        let blocks = shrink_on_enomem(req.tp_block_nr as usize, MIN_BLOCK_COUNT, |blocks| {
            let mut r = req;
            r.tp_block_nr = blocks as u32;
            r.tp_frame_nr = (req.tp_block_size / req.tp_frame_size) * r.tp_block_nr;
            sock.map_ring(&r)
        })
        .map_err(|e| RingError::sys(iface, "setting up the ring (PACKET_RX_RING, mmap)", e))?;
        if blocks < cfg.block_count {
            warnings.push(format!(
                "interface {iface:?}: not enough memory for a ring of {} x {} KiB blocks; \
                 using {blocks} blocks ({} MiB): expect drops under load",
                cfg.block_count,
                cfg.block_bytes / 1024,
                blocks * cfg.block_bytes / (1024 * 1024)
            ));
        }

        // Counters from before the ring existed are not ours to report. Read (which zeroes
        // them) before bind: after it frames arrive, and a frame counted then but zeroed here
        // would be delivered with no count (more captured than received).
        let _ = rx::read_statistics(sock.fd());
        rx::bind_interface(sock.fd(), ifindex)
            .map_err(|e| RingError::sys(iface, "binding to the interface", e))?;
        // The socket had protocol 0 until bind, so this queue should be empty; drain it
        // anyway so a stale frame can neither leak in nor keep poll(2) readable forever.
        rx::drain_receive_queue(sock.fd());
        if cfg.promisc && cooked {
            warnings.push(
                "interface \"any\": promiscuous mode is not used on all interfaces at once \
                 (as in tcpdump); each interface keeps its own setting"
                    .to_owned(),
            );
        } else if cfg.promisc {
            rx::add_promisc_membership(sock.fd(), ifindex)
                .map_err(|e| RingError::sys(iface, "enabling promiscuous mode", e))?;
        }
        if let Some((group, mode)) = cfg.fanout {
            rx::join_fanout(sock.fd(), group, mode.type_flags()).map_err(|e| {
                RingError::sys(
                    iface,
                    &format!("joining fanout group {group} ({})", mode.as_str()),
                    e,
                )
            })?;
        }

        let scratch_bytes =
            (cfg.snaplen as usize).min(cfg.block_bytes) + VLAN_HEADER_BYTES.max(SLL2_HEADER_BYTES);
        Ok(Ring {
            sock,
            iface: cfg.iface.clone(),
            ifindex,
            snaplen: cfg.snaplen,
            cooked,
            scratch: Vec::with_capacity(scratch_bytes),
            totals: RingStats::default(),
            warnings,
        })
    }

    /// Waits up to `timeout` for the next retired block and calls `f` for each frame in it
    /// (bytes borrowed from the ring, or from the scratch buffer when a VLAN tag was put
    /// back), then hands the block back. Returns how many frames; 0 when nothing arrived in
    /// time, or when a signal interrupted the wait. An error is the socket's (e.g. ENETDOWN
    /// when the interface went down or away).
    pub fn next_block(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(&[u8], &FrameMeta),
    ) -> io::Result<usize> {
        if let Some(n) = self.take_block(&mut f) {
            return Ok(n);
        }
        match rx::poll_readable(self.sock.fd(), timeout)? {
            PollOutcome::Error => {
                if let Some(e) = rx::take_socket_error(self.sock.fd())? {
                    return Err(e);
                }
            }
            PollOutcome::TimedOut | PollOutcome::Interrupted => return Ok(0),
            PollOutcome::Readable => {}
        }
        Ok(self.take_block(&mut f).unwrap_or(0))
    }

    /// Walks the next block if the kernel has retired it.
    fn take_block(&mut self, f: &mut impl FnMut(&[u8], &FrameMeta)) -> Option<usize> {
        let scratch = &mut self.scratch;
        let mut restored = 0u64;
        let snaplen = self.snaplen as usize;
        let cooked = self.cooked;
        let mut skipped = 0u32;
        let walk = self.sock.with_next_block(|block| {
            rx::walk_block(block, |raw| {
                let bytes = &raw.bytes[..raw.bytes.len().min(snaplen)];
                let mut meta = FrameMeta {
                    time_ns: i64::from(raw.sec) * 1_000_000_000 + i64::from(raw.nsec),
                    wire_len: raw.wire_len.max(bytes.len() as u32),
                    cap_len: bytes.len() as u32,
                };
                if cooked {
                    let ll = raw.link.unwrap_or_default();
                    // Loopback shows every packet twice (sent, then received): keep the
                    // received copy, as libpcap does.
                    if ll.sll_pkttype == PACKET_OUTGOING && ll.sll_hatype == abi::ARPHRD_LOOPBACK {
                        skipped += 1;
                        return;
                    }
                    let frame = cook_sll2(scratch, bytes, &raw, &ll);
                    meta.cap_len = frame.len() as u32;
                    meta.wire_len = meta
                        .wire_len
                        .saturating_sub(u32::from(raw.net_offset))
                        .saturating_add(SLL2_HEADER_BYTES as u32)
                        .max(meta.cap_len);
                    f(frame, &meta);
                    return;
                }
                match vlan_tag(&raw) {
                    Some((tpid, tci)) if bytes.len() >= 12 => {
                        let frame = reinsert_vlan(scratch, bytes, tpid, tci);
                        meta.cap_len = frame.len() as u32;
                        meta.wire_len = meta.wire_len.saturating_add(VLAN_HEADER_BYTES as u32);
                        restored += 1;
                        f(frame, &meta);
                    }
                    _ => f(bytes, &meta),
                }
            })
        })?;
        self.totals.blocks += 1;
        self.totals.frames += u64::from(walk.frames - skipped.min(walk.frames));
        self.totals.vlan_tags_restored += restored;
        if walk.bad.is_some() {
            self.totals.bad_blocks += 1;
        }
        Some(walk.frames as usize)
    }

    /// Running totals: the kernel's counters (read now, and reset by that read) added to
    /// everything read before, plus our own.
    pub fn stats(&mut self) -> RingStats {
        if let Ok(s) = rx::read_statistics(self.sock.fd()) {
            self.totals.packets += u64::from(s.tp_packets);
            self.totals.drops += u64::from(s.tp_drops);
            self.totals.freezes += u64::from(s.tp_freeze_q_cnt);
        }
        self.totals
    }

    /// Link type of the frames handed out: Ethernet, or Linux cooked v2 on `any`.
    pub fn link_type(&self) -> LinkType {
        if self.cooked {
            LinkType::LinuxSll2
        } else {
            LinkType::Ethernet
        }
    }

    /// The interface name.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// `(block_bytes, block_count)` as actually mapped.
    pub fn geometry(&self) -> (usize, usize) {
        self.sock.geometry().unwrap_or((0, 0))
    }

    /// `(filled, total)` blocks: how many the kernel has filled and we have not handed back
    /// yet, out of how many (the ring's fill, for `--metrics`).
    pub fn fill(&self) -> (usize, usize) {
        (self.sock.blocks_with_user(), self.geometry().1)
    }

    /// Things the user should hear about (e.g. a ring shrunk for lack of memory).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

impl AsFd for Ring {
    /// The packet socket, e.g. for a caller's own poll set.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.fd().as_fd()
    }
}

/// Checks `cfg` and turns it into the kernel's ring request.
/// Opens a packet socket (in the calling thread's network namespace) and checks through it
/// that `iface` exists, is up and is Ethernet or loopback; returns the socket and the
/// interface index. `not_ethernet` ends the error for any other hardware type.
pub(super) fn open_checked_socket(
    iface: &str,
    not_ethernet: &str,
) -> Result<(OwnedFd, u32), RingError> {
    let fd = sys::open_packet_socket()
        .map_err(|e| RingError::sys(iface, "opening a packet socket", e))?;
    let ifindex = iface::interface_index(iface).map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidInput {
            RingError::new(RingErrorKind::Config, iface, "not a valid interface name")
        } else {
            RingError::new(RingErrorKind::NoSuchInterface, iface, "no such interface")
        }
    })?;
    let flags = iface::interface_flags(&fd, iface)
        .map_err(|e| RingError::sys(iface, "reading interface flags", e))?;
    if i32::from(flags) & libc::IFF_UP == 0 {
        return Err(RingError::new(
            RingErrorKind::InterfaceDown,
            iface,
            format!("interface is down (bring it up: ip link set {iface} up)"),
        ));
    }
    let hatype = iface::interface_hardware_type(&fd, iface)
        .map_err(|e| RingError::sys(iface, "reading the hardware type", e))?;
    if hatype != abi::ARPHRD_ETHER && hatype != abi::ARPHRD_LOOPBACK {
        return Err(RingError::new(
            RingErrorKind::UnsupportedLinkType,
            iface,
            format!("hardware type {hatype} is not Ethernet; {not_ethernet}"),
        ));
    }
    Ok((fd, ifindex))
}

/// `raw`'s frame as Linux cooked v2: the SLL2 header made from its `sockaddr_ll`, then the
/// bytes from the network header on (the device's own link header is dropped, as a
/// `SOCK_DGRAM` socket would). VLAN tags the kernel took out are not put back.
fn cook_sll2<'s>(
    scratch: &'s mut Vec<u8>,
    bytes: &[u8],
    raw: &rx::RawFrame<'_>,
    ll: &abi::SockaddrLl,
) -> &'s [u8] {
    let payload = bytes.get(usize::from(raw.net_offset)..).unwrap_or(&[]);
    // Within the capacity set at open (snaplen + 20), so this never allocates.
    let room = scratch.capacity().saturating_sub(SLL2_HEADER_BYTES);
    let payload = &payload[..payload.len().min(room)];
    scratch.clear();
    // sll_protocol is already in network byte order in memory.
    scratch.extend_from_slice(&ll.sll_protocol.to_ne_bytes());
    scratch.extend_from_slice(&[0, 0]); // reserved
    scratch.extend_from_slice(&(ll.sll_ifindex as u32).to_be_bytes());
    scratch.extend_from_slice(&ll.sll_hatype.to_be_bytes());
    scratch.push(ll.sll_pkttype);
    scratch.push(ll.sll_halen.min(8));
    scratch.extend_from_slice(&ll.sll_addr);
    scratch.extend_from_slice(payload);
    scratch
}

fn validate(cfg: &RingConfig) -> Result<TpacketReq3, RingError> {
    let bad = |m: String| Err(RingError::new(RingErrorKind::Config, &cfg.iface, m));
    let name = cfg.iface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(&0) || name.contains(&b'/')
    {
        return bad(format!(
            "not a valid interface name (1 to {} bytes)",
            libc::IFNAMSIZ - 1
        ));
    }
    let page = sys::page_size();
    if cfg.block_bytes == 0
        || cfg.block_bytes % page != 0
        || u32::try_from(cfg.block_bytes).is_err()
    {
        return bad(format!(
            "block size {} bytes is not a multiple of the page size ({page} bytes)",
            cfg.block_bytes
        ));
    }
    if cfg.frame_bytes < abi::TPACKET3_HDRLEN
        || cfg.frame_bytes % abi::TPACKET_ALIGNMENT != 0
        || cfg.frame_bytes > cfg.block_bytes
    {
        return bad(format!(
            "frame size {} bytes must be a multiple of {} between {} and the block size",
            cfg.frame_bytes,
            abi::TPACKET_ALIGNMENT,
            abi::TPACKET3_HDRLEN
        ));
    }
    let frames_per_block = cfg.block_bytes / cfg.frame_bytes;
    let Some(total_frames) = frames_per_block
        .checked_mul(cfg.block_count)
        .and_then(|n| u32::try_from(n).ok())
    else {
        return bad(format!("{} blocks is too many", cfg.block_count));
    };
    if cfg.block_count == 0 || cfg.block_bytes.checked_mul(cfg.block_count).is_none() {
        return bad(format!("{} blocks: need at least one", cfg.block_count));
    }
    if cfg.snaplen == 0 {
        return bad("snapshot length 0 would capture nothing".to_owned());
    }
    Ok(TpacketReq3 {
        tp_block_size: cfg.block_bytes as u32,
        tp_block_nr: cfg.block_count as u32,
        tp_frame_size: cfg.frame_bytes as u32,
        tp_frame_nr: total_frames,
        tp_retire_blk_tov: cfg.block_timeout_ms,
        tp_sizeof_priv: 0,
        tp_feature_req_word: 0,
    })
}

/// The program to attach: the user's filter with every "accept" (`ret #k`, k > 0) lowered or
/// raised to the snapshot length, since a socket filter's return value is how many bytes the
/// kernel keeps (libpcap compiles accept as `ret #65535`, which would cut longer frames); or,
/// without a filter, a single `ret #snaplen`.
fn filter_program(cfg: &RingConfig) -> Result<Vec<BpfInsn>, String> {
    let accept = |k: u32| if k == 0 { 0 } else { cfg.snaplen };
    match &cfg.filter {
        None => Ok(vec![BpfInsn {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: cfg.snaplen,
        }]),
        Some(filter) => {
            if filter.link_type() != LinkType::Ethernet.number() {
                return Err(format!(
                    "filter {:?} was compiled for link type {}, but the ring delivers Ethernet (1)",
                    filter.expression(),
                    filter.link_type()
                ));
            }
            Ok(filter
                .instructions()
                .iter()
                .map(|i| {
                    let mut i = *i;
                    if i.code == BPF_RET_K {
                        i.k = accept(i.k);
                    }
                    i
                })
                .collect())
        }
    }
}

/// Calls `try_blocks(n)` with `start` blocks, halving `n` after each ENOMEM (from
/// `PACKET_RX_RING` or mmap) down to `floor`; returns the count that worked.
fn shrink_on_enomem(
    start: usize,
    floor: usize,
    mut try_blocks: impl FnMut(usize) -> io::Result<()>,
) -> io::Result<usize> {
    let floor = floor.min(start).max(1);
    let mut blocks = start;
    loop {
        match try_blocks(blocks) {
            Ok(()) => return Ok(blocks),
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) && blocks > floor => {
                blocks = (blocks / 2).max(floor);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The tag the kernel took out of the frame, as `(tpid, tci)`, if any.
fn vlan_tag(raw: &rx::RawFrame<'_>) -> Option<(u16, u16)> {
    if raw.status & abi::TP_STATUS_VLAN_VALID == 0 {
        return None;
    }
    let tpid = if raw.status & abi::TP_STATUS_VLAN_TPID_VALID != 0 && raw.vlan_tpid != 0 {
        raw.vlan_tpid
    } else {
        TPID_8021Q
    };
    Some((tpid, raw.vlan_tci as u16))
}

/// Rebuilds `frame` (at least 12 bytes) with a `tpid, tci` tag after the two MAC addresses,
/// in `scratch` (which has room for a snaplen-sized frame plus the tag, so it does not grow).
fn reinsert_vlan<'s>(scratch: &'s mut Vec<u8>, frame: &[u8], tpid: u16, tci: u16) -> &'s [u8] {
    let (macs, rest) = frame.split_at(12.min(frame.len()));
    scratch.clear();
    scratch.extend_from_slice(macs);
    scratch.extend_from_slice(&tpid.to_be_bytes());
    scratch.extend_from_slice(&tci.to_be_bytes());
    scratch.extend_from_slice(rest);
    scratch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, Layer};

    #[test]
    fn vlan_tag_goes_back_after_the_macs() {
        // dst, src, IPv4 EtherType, 4 bytes of "IP".
        let frame = [
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x45, 0, 0, 20,
        ];
        let mut scratch = Vec::with_capacity(64);
        let cap = scratch.capacity();
        let out = reinsert_vlan(&mut scratch, &frame, 0x8100, 0x200a).to_vec();
        assert_eq!(&out[..12], &frame[..12]);
        assert_eq!(&out[12..16], &[0x81, 0x00, 0x20, 0x0a]);
        assert_eq!(&out[16..], &frame[12..]);
        assert_eq!(scratch.capacity(), cap);
        let pkt = decode(LinkType::Ethernet, &out);
        let vlan = pkt.layers().find_map(|l| match l {
            Layer::Vlan { hdr, ad } => Some((hdr.vlan(), hdr.prio(), *ad)),
            _ => None,
        });
        assert_eq!(vlan, Some((10, 1, false)));
    }

    #[test]
    fn vlan_tag_from_status_bits() {
        let raw = |status, tpid| rx::RawFrame {
            bytes: &[],
            sec: 0,
            nsec: 0,
            wire_len: 0,
            status,
            vlan_tci: 0x0005,
            vlan_tpid: tpid,
            net_offset: 0,
            link: None,
        };
        assert_eq!(vlan_tag(&raw(abi::TP_STATUS_USER, 0)), None);
        assert_eq!(
            vlan_tag(&raw(abi::TP_STATUS_VLAN_VALID, 0x88a8)),
            Some((0x8100, 5))
        );
        let both = abi::TP_STATUS_VLAN_VALID | abi::TP_STATUS_VLAN_TPID_VALID;
        assert_eq!(vlan_tag(&raw(both, 0x88a8)), Some((0x88a8, 5)));
    }

    #[test]
    fn filter_accepts_become_the_snaplen() {
        let mut cfg = RingConfig::new("eth0");
        cfg.snaplen = 1500;
        cfg.filter = Some(BpfFilter::compile("icmp", 1).unwrap());
        let prog = filter_program(&cfg).unwrap();
        let rets: Vec<u32> = prog
            .iter()
            .filter(|i| i.code == BPF_RET_K)
            .map(|i| i.k)
            .collect();
        assert!(rets.contains(&1500) && rets.contains(&0), "{rets:?}");
        assert!(rets.iter().all(|&k| k == 0 || k == 1500));
        cfg.filter = None;
        assert_eq!(
            filter_program(&cfg).unwrap(),
            vec![BpfInsn {
                code: 6,
                jt: 0,
                jf: 0,
                k: 1500
            }]
        );
        cfg.filter = Some(BpfFilter::compile("icmp", 101).unwrap());
        assert!(filter_program(&cfg).unwrap_err().contains("link type 101"));
    }

    #[test]
    fn enomem_halves_down_to_the_floor() {
        let mut tried = Vec::new();
        let got = shrink_on_enomem(64, 2, |n| {
            tried.push(n);
            if n > 8 {
                Err(io::Error::from_raw_os_error(libc::ENOMEM))
            } else {
                Ok(())
            }
        });
        assert_eq!(got.unwrap(), 8);
        assert_eq!(tried, vec![64, 32, 16, 8]);

        tried.clear();
        let got = shrink_on_enomem(5, 2, |n| {
            tried.push(n);
            Err(io::Error::from_raw_os_error(libc::ENOMEM))
        });
        assert_eq!(got.unwrap_err().raw_os_error(), Some(libc::ENOMEM));
        assert_eq!(tried, vec![5, 2]);

        let got = shrink_on_enomem(64, 2, |_| Err(io::Error::from_raw_os_error(libc::EINVAL)));
        assert_eq!(got.unwrap_err().raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn config_checks() {
        let page = sys::page_size();
        let ok = RingConfig::new("eth0");
        let req = validate(&ok).unwrap();
        assert_eq!(
            req.tp_frame_nr,
            (req.tp_block_size / req.tp_frame_size) * req.tp_block_nr
        );
        let mut c = ok.clone();
        c.block_bytes = page + 1;
        assert_eq!(validate(&c).unwrap_err().kind(), RingErrorKind::Config);
        let mut c = ok.clone();
        c.frame_bytes = 100;
        assert_eq!(validate(&c).unwrap_err().kind(), RingErrorKind::Config);
        let mut c = ok.clone();
        c.block_count = 0;
        assert_eq!(validate(&c).unwrap_err().kind(), RingErrorKind::Config);
        let mut c = ok.clone();
        c.iface = "a-name-far-too-long".into();
        assert_eq!(validate(&c).unwrap_err().kind(), RingErrorKind::Config);
        let mut c = ok;
        c.snaplen = 0;
        assert_eq!(validate(&c).unwrap_err().kind(), RingErrorKind::Config);
    }

    #[test]
    fn errors_are_one_clear_line() {
        let e = RingError::sys(
            "eth1",
            "opening a packet socket",
            io::Error::from_raw_os_error(libc::EPERM),
        );
        assert_eq!(e.kind(), RingErrorKind::Permission);
        let text = e.to_string();
        assert!(
            text.contains("CAP_NET_RAW") && text.contains("\"eth1\""),
            "{text}"
        );
        assert!(!text.contains('\n'));
        let e = RingError::sys(
            "eth1",
            "binding",
            io::Error::from_raw_os_error(libc::ENETDOWN),
        );
        assert_eq!(e.kind(), RingErrorKind::InterfaceDown);
        assert!(e.to_string().contains("ip link set eth1 up"));
        assert_ne!(
            RingError::new(RingErrorKind::Permission, "x", "").exit_code(),
            RingError::new(RingErrorKind::Socket, "x", "").exit_code()
        );
    }

    #[test]
    fn fanout_modes() {
        for m in ["hash", "lb", "cpu", "rollover", "qm"] {
            assert_eq!(m.parse::<FanoutMode>().unwrap().as_str(), m);
        }
        assert!("rnd".parse::<FanoutMode>().is_err());
        // Hash mode without PACKET_FANOUT_FLAG_DEFRAG: the kernel would swallow incomplete
        // and overlapping IPv4 datagrams (see type_flags).
        assert_eq!(FanoutMode::Hash.type_flags(), 0);
        for m in ["hash", "lb", "cpu", "rollover", "qm"] {
            let flags = m.parse::<FanoutMode>().unwrap().type_flags();
            assert_eq!(flags & abi::PACKET_FANOUT_FLAG_DEFRAG, 0, "{m}");
        }
        assert_eq!(FanoutMode::Qm.type_flags(), 5);
    }

    #[test]
    fn ring_is_send() {
        fn send<T: Send>() {}
        send::<Ring>();
    }
}
