//! System calls behind the live TPACKET_V3 receive ring, and the bounds-checked walk over a
//! retired block. This is the only module of the crate where `unsafe` is allowed.
//!
//! References: the kernel's `Documentation/networking/packet_mmap.rst` (TPACKET_V3 blocks,
//! `tpacket_req3`, block ownership through `block_status`), `include/uapi/linux/if_packet.h`
//! (the structures mirrored below) and `packet(7)`.
//!
//! Rules kept here (the project's rules for unsafe code):
//! - each `unsafe {}` block holds one operation and says in a `// SAFETY:` comment why it is
//!   sound;
//! - the socket is an [`OwnedFd`], the mapping is unmapped when [`Mapping`] drops;
//! - a block's status word is read with an Acquire load and handed back with a Release store
//!   through an `&AtomicU32`; the block's bytes are borrowed (shared, never `&mut`) only while
//!   the kernel has handed the block to user space, and only until the Release store;
//! - every offset and length the kernel writes into a block is untrusted: [`walk_block`]
//!   checks each one against the block and ends the walk, reporting why, at the first bad one.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use zerocopy::{FromBytes, Immutable, KnownLayout};

use crate::source::filter::BpfInsn;

// ---- constants from include/uapi/linux/if_packet.h and if_ether.h ----

/// `ETH_P_ALL`: every protocol, including outgoing frames.
pub const ETH_P_ALL: u16 = 0x0003;
/// `SOL_PACKET` socket option level.
pub const SOL_PACKET: libc::c_int = 263;
/// `PACKET_ADD_MEMBERSHIP`: join a membership (promiscuous mode) for the socket.
pub const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
/// `PACKET_RX_RING`: set up the receive ring.
pub const PACKET_RX_RING: libc::c_int = 5;
/// `PACKET_STATISTICS`: packet and drop counts since the last read.
pub const PACKET_STATISTICS: libc::c_int = 6;
/// `PACKET_VERSION`: choose the TPACKET header version.
pub const PACKET_VERSION: libc::c_int = 10;
/// `PACKET_FANOUT`: join a fanout group.
pub const PACKET_FANOUT: libc::c_int = 18;
/// `enum tpacket_versions { TPACKET_V1, TPACKET_V2, TPACKET_V3 }`.
pub const TPACKET_V3: libc::c_int = 2;
/// `PACKET_MR_PROMISC`: the membership type for promiscuous mode.
pub const PACKET_MR_PROMISC: u16 = 1;

/// Fanout mode: by flow hash.
pub const PACKET_FANOUT_HASH: u16 = 0;
/// Fanout mode: round robin.
pub const PACKET_FANOUT_LB: u16 = 1;
/// Fanout mode: by the CPU the packet arrived on.
pub const PACKET_FANOUT_CPU: u16 = 2;
/// Fanout mode: fill one socket, then the next.
pub const PACKET_FANOUT_ROLLOVER: u16 = 3;
/// Fanout mode: by the NIC's receive queue.
pub const PACKET_FANOUT_QM: u16 = 5;
/// Fanout flag: the kernel reassembles IPv4 fragments before the fanout. Not set by
/// netpipe-fast: the kernel keeps the fragments of incomplete or overlapping datagrams to
/// itself, uncounted (see `FanoutMode::type_flags` in ring.rs). Kept to check that nothing sets
/// it.
pub const PACKET_FANOUT_FLAG_DEFRAG: u16 = 0x8000;

/// RX block status (`block_status`): the block belongs to the kernel / to user space.
pub const TP_STATUS_KERNEL: u32 = 0;
/// RX block status: the block belongs to user space.
pub const TP_STATUS_USER: u32 = 1 << 0;
/// `tp_vlan_tci` holds the tag the kernel took out of the frame.
pub const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
/// `tp_vlan_tpid` holds that tag's TPID (0x8100, 0x88a8, ...).
pub const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// `TPACKET_ALIGNMENT`: headers in the ring are aligned to this.
pub const TPACKET_ALIGNMENT: usize = 16;
/// `TPACKET3_HDRLEN`: `TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) + sizeof(struct sockaddr_ll)`,
/// the least room a frame slot needs before any packet byte.
pub const TPACKET3_HDRLEN: usize = size_of::<Tpacket3Hdr>().div_ceil(TPACKET_ALIGNMENT)
    * TPACKET_ALIGNMENT
    + size_of::<SockaddrLl>();

/// `ARPHRD_ETHER` and `ARPHRD_LOOPBACK` (`include/uapi/linux/if_arp.h`): both deliver
/// Ethernet headers to a `SOCK_RAW` packet socket.
pub const ARPHRD_ETHER: u16 = 1;
/// `ARPHRD_LOOPBACK`.
pub const ARPHRD_LOOPBACK: u16 = 772;

// ---- #[repr(C)] mirrors of the kernel structures (sizes checked by the tests below) ----

/// `struct tpacket_req3`: the geometry of a TPACKET_V3 ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TpacketReq3 {
    /// Bytes per block.
    pub tp_block_size: u32,
    /// Number of blocks.
    pub tp_block_nr: u32,
    /// Frame slot size (TPACKET_V3 only checks it).
    pub tp_frame_size: u32,
    /// Number of frame slots (`block_nr * block_size / frame_size`).
    pub tp_frame_nr: u32,
    /// Milliseconds after which a block that is not full is retired anyway.
    pub tp_retire_blk_tov: u32,
    /// Bytes of private area per block (0).
    pub tp_sizeof_priv: u32,
    /// Feature request word (e.g. receive hash).
    pub tp_feature_req_word: u32,
}

/// `struct tpacket_bd_ts`.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, KnownLayout, Immutable)]
pub struct TpacketBdTs {
    /// Seconds.
    pub ts_sec: u32,
    /// Nanoseconds with TPACKET_V3 (`ts_usec` and `ts_nsec` share this word).
    pub ts_nsec: u32,
}

/// `struct tpacket_hdr_v1`, the header of a TPACKET_V3 block.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, KnownLayout, Immutable)]
pub struct TpacketHdrV1 {
    /// Who owns the block ([`TP_STATUS_KERNEL`] or [`TP_STATUS_USER`]).
    pub block_status: u32,
    /// Packets in the block.
    pub num_pkts: u32,
    /// Offset of the first packet from the start of the block.
    pub offset_to_first_pkt: u32,
    /// Bytes of the block in use.
    pub blk_len: u32,
    /// `__aligned_u64`.
    pub seq_num: u64,
    /// Time of the first packet.
    pub ts_first_pkt: TpacketBdTs,
    /// Time of the last packet.
    pub ts_last_pkt: TpacketBdTs,
}

/// `struct tpacket_block_desc` (the union `tpacket_bd_header_u` has one member, `bh1`).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, KnownLayout, Immutable)]
pub struct TpacketBlockDesc {
    /// Block descriptor version.
    pub version: u32,
    /// Offset of the private area.
    pub offset_to_priv: u32,
    /// The block header.
    pub bh1: TpacketHdrV1,
}

/// Byte offset of `hdr.bh1.block_status` inside a block.
pub const BLOCK_STATUS_OFFSET: usize = 8;

/// `struct tpacket_hdr_variant1`.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, KnownLayout, Immutable)]
pub struct TpacketHdrVariant1 {
    /// Receive hash.
    pub tp_rxhash: u32,
    /// The VLAN tag the kernel stripped (when `TP_STATUS_VLAN_VALID`).
    pub tp_vlan_tci: u32,
    /// Its TPID (when `TP_STATUS_VLAN_TPID_VALID`).
    pub tp_vlan_tpid: u16,
    /// Padding.
    pub tp_padding: u16,
}

/// `struct tpacket3_hdr`, the header in front of each packet of a block (the anonymous union
/// has one member, `hv1`).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, KnownLayout, Immutable)]
pub struct Tpacket3Hdr {
    /// Offset of the next packet header from this one (0: last).
    pub tp_next_offset: u32,
    /// Capture time, seconds.
    pub tp_sec: u32,
    /// Capture time, nanoseconds.
    pub tp_nsec: u32,
    /// Bytes captured.
    pub tp_snaplen: u32,
    /// Length on the wire.
    pub tp_len: u32,
    /// Per-packet status bits (`TP_STATUS_*`).
    pub tp_status: u32,
    /// Offset of the link-layer header from this packet header.
    pub tp_mac: u16,
    /// Offset of the network header from this packet header.
    pub tp_net: u16,
    /// Receive hash and VLAN fields.
    pub hv1: TpacketHdrVariant1,
    /// Padding.
    pub tp_padding: [u8; 8],
}

/// `struct sockaddr_ll` (`linux/if_packet.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, KnownLayout, Immutable)]
pub struct SockaddrLl {
    /// Address family (`AF_PACKET`).
    pub sll_family: u16,
    /// Network byte order.
    pub sll_protocol: u16,
    /// Interface index.
    pub sll_ifindex: i32,
    /// ARPHRD_* hardware type.
    pub sll_hatype: u16,
    /// Packet type (`PACKET_HOST`, `PACKET_OUTGOING`, ...).
    pub sll_pkttype: u8,
    /// Length of the hardware address.
    pub sll_halen: u8,
    /// Hardware address, zero-padded.
    pub sll_addr: [u8; 8],
}

/// `struct tpacket_stats_v3`. The kernel zeroes its counters on every read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, KnownLayout, Immutable)]
pub struct TpacketStatsV3 {
    /// Packets that passed the filter, including the dropped ones.
    pub tp_packets: u32,
    /// Packets that passed the filter but found no room in the ring.
    pub tp_drops: u32,
    /// Times the queue was frozen because user space held every block.
    pub tp_freeze_q_cnt: u32,
}

/// `struct packet_mreq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PacketMreq {
    /// Interface index.
    pub mr_ifindex: i32,
    /// Membership type ([`PACKET_MR_PROMISC`]).
    pub mr_type: u16,
    /// Address length (0 for promiscuous mode).
    pub mr_alen: u16,
    /// Address (unused for promiscuous mode).
    pub mr_address: [u8; 8],
}

/// `struct sock_fprog` (`linux/filter.h`): the program handed to `SO_ATTACH_FILTER`.
#[repr(C)]
#[derive(Debug)]
struct SockFprog {
    len: u16,
    /// Explicit padding, so every byte handed to the kernel is initialised.
    pad: [u8; size_of::<usize>() - 2],
    filter: *const BpfInsn,
}

/// `struct ifreq` as `SIOCGIFFLAGS` fills it: the name, then `ifr_flags` (a `short`) at the
/// start of the 24-byte union. Our own mirror, so no union is ever read.
#[repr(C)]
#[derive(Clone, Copy)]
struct IfreqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: i16,
    pad: [u8; 22],
}

/// `struct ifreq` as `SIOCGIFHWADDR` fills it: the name, then a `struct sockaddr` whose
/// `sa_family` is the ARPHRD_* hardware type.
#[repr(C)]
#[derive(Clone, Copy)]
struct IfreqHwaddr {
    name: [u8; libc::IFNAMSIZ],
    sa_family: u16,
    sa_data: [u8; 14],
    pad: [u8; 8],
}

// ---- socket set-up ----

/// `setsockopt(fd, level, name, value, size_of::<T>())` for the plain, padding-free `#[repr(C)]`
/// values of this module (every `T` used here has no padding, so every byte the kernel copies
/// is initialised).
fn setsockopt_value<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let ptr: *const libc::c_void = (value as *const T).cast();
    // SAFETY: `ptr` points at `len` readable, initialised bytes (a live `&T` of a padding-free
    // type) for the whole call; the kernel only copies from it and keeps no pointer to it.
    // `fd` is a descriptor the caller owns; a wrong one is reported as EBADF, not UB.
    let rc = unsafe { libc::setsockopt(fd, level, name, ptr, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Opens `socket(AF_PACKET, SOCK_RAW, 0)` (close-on-exec).
///
/// Protocol 0 on purpose: a packet socket created with `htons(ETH_P_ALL)` is hooked into
/// every interface of the namespace at once, so frames of all interfaces would queue up
/// before the filter is attached and before `bind` narrows it to one interface (libpcap then
/// drains them). With protocol 0 the socket receives nothing until [`bind_interface`] names
/// both the interface and `ETH_P_ALL`, which happens after the filter and the ring are in
/// place (`packet(7)`: "If protocol is set to zero, no packets are received").
pub fn open_packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; any return value is checked below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2), is open, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `if_nametoindex(3)` in the calling thread's network namespace.
pub fn interface_index(name: &str) -> io::Result<u32> {
    let c_name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c_name` is a valid NUL-terminated string that outlives the call, which only
    // reads it.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(index)
    }
}

fn ifreq_name(name: &str) -> io::Result<[u8; libc::IFNAMSIZ]> {
    let bytes = name.as_bytes();
    // The name must leave room for its NUL terminator and hold no NUL itself.
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let mut out = [0u8; libc::IFNAMSIZ];
    out[..bytes.len()].copy_from_slice(bytes);
    Ok(out)
}

/// `SIOCGIFFLAGS`: the interface flags (`IFF_UP`, ...), asked through `fd`'s namespace.
pub fn interface_flags(fd: &OwnedFd, name: &str) -> io::Result<i16> {
    let mut req = IfreqFlags {
        name: ifreq_name(name)?,
        flags: 0,
        pad: [0; 22],
    };
    let ptr: *mut IfreqFlags = &mut req;
    // SAFETY: `ptr` is a live, exclusive, 40-byte `struct ifreq` (size checked in the tests)
    // with a NUL-terminated name; SIOCGIFFLAGS writes only `ifr_flags` inside it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, ptr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(req.flags)
}

/// `SIOCGIFHWADDR`: the interface's ARPHRD_* hardware type.
pub fn interface_hardware_type(fd: &OwnedFd, name: &str) -> io::Result<u16> {
    interface_mac_address(fd, name).map(|(hardware_type, _)| hardware_type)
}

/// `PACKET_VERSION = TPACKET_V3`.
pub fn set_tpacket_v3(fd: &OwnedFd) -> io::Result<()> {
    setsockopt_value(fd.as_raw_fd(), SOL_PACKET, PACKET_VERSION, &TPACKET_V3)
}

/// `SO_ATTACH_FILTER` with a classic BPF program (`struct sock_filter` layout). The kernel
/// copies and checks the program during the call.
pub fn attach_filter(fd: &OwnedFd, insns: &[BpfInsn]) -> io::Result<()> {
    let len =
        u16::try_from(insns.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let prog = SockFprog {
        len,
        pad: [0; size_of::<usize>() - 2],
        filter: insns.as_ptr(),
    };
    // The kernel reads `len` instructions through `filter` during the call; `insns` is
    // borrowed for the whole call, so they are there.
    setsockopt_value(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &prog,
    )
}

/// `PACKET_RX_RING` with `req` (a zeroed `req` releases the ring).
pub fn set_rx_ring(fd: &OwnedFd, req: &TpacketReq3) -> io::Result<()> {
    setsockopt_value(fd.as_raw_fd(), SOL_PACKET, PACKET_RX_RING, req)
}

/// `bind(2)` to one interface for `ETH_P_ALL`; from here on frames arrive.
pub fn bind_interface(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
    bind_with_protocol(fd, ifindex, ETH_P_ALL.to_be())
}

/// `PACKET_ADD_MEMBERSHIP` with `PACKET_MR_PROMISC`: promiscuous mode for as long as the
/// socket is open (the kernel drops the membership on close).
pub fn add_promisc_membership(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
    let mreq = PacketMreq {
        mr_ifindex: i32::try_from(ifindex)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        mr_type: PACKET_MR_PROMISC,
        ..PacketMreq::default()
    };
    setsockopt_value(fd.as_raw_fd(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq)
}

/// `PACKET_FANOUT`: joins group `group_id` with `type_flags` (mode | flags). Needs a bound
/// socket.
pub fn join_fanout(fd: &OwnedFd, group_id: u16, type_flags: u16) -> io::Result<()> {
    let arg: u32 = u32::from(group_id) | (u32::from(type_flags) << 16);
    setsockopt_value(fd.as_raw_fd(), SOL_PACKET, PACKET_FANOUT, &arg)
}

/// Reads (and thereby resets) the kernel's counters: `PACKET_STATISTICS`.
pub fn read_statistics(fd: &OwnedFd) -> io::Result<TpacketStatsV3> {
    let mut stats = TpacketStatsV3::default();
    let mut len = size_of::<TpacketStatsV3>() as libc::socklen_t;
    let ptr: *mut libc::c_void = (&mut stats as *mut TpacketStatsV3).cast();
    // SAFETY: `ptr` is a live, exclusive `tpacket_stats_v3` of `len` bytes and `len` a live
    // `socklen_t`; the kernel writes at most `len` bytes there (any bit pattern is a valid
    // `TpacketStatsV3`) and updates `len`.
    let rc =
        unsafe { libc::getsockopt(fd.as_raw_fd(), SOL_PACKET, PACKET_STATISTICS, ptr, &mut len) };
    if rc == 0 {
        Ok(stats)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes the socket's pending error (`SO_ERROR`), e.g. ENETDOWN when the interface went
/// down or away.
pub fn take_socket_error(fd: &OwnedFd) -> io::Result<Option<io::Error>> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    let ptr: *mut libc::c_void = (&mut value as *mut libc::c_int).cast();
    // SAFETY: `ptr` is a live, exclusive `int` of `len` bytes, `len` a live `socklen_t`;
    // the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            ptr,
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((value != 0).then(|| io::Error::from_raw_os_error(value)))
}

/// Reads and discards whatever sits in the socket's ordinary receive queue (frames queued
/// before the ring existed), without blocking. Returns how many were discarded. Bounded, so a
/// busy interface cannot keep it going.
pub fn drain_receive_queue(fd: &OwnedFd) -> usize {
    let mut buf = [0u8; 64];
    let mut drained = 0;
    while drained < 1_000_000 {
        let ptr: *mut libc::c_void = buf.as_mut_ptr().cast();
        // SAFETY: `ptr` is a live, exclusive buffer of `buf.len()` bytes for the call;
        // recv(2) writes at most that many (MSG_TRUNC only changes the return value).
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                ptr,
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        drained += 1;
    }
    drained
}

/// What [`poll_readable`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollOutcome {
    /// Data is ready.
    Readable,
    /// `POLLERR`: the socket has a pending error (see [`take_socket_error`]).
    Error,
    /// The timeout passed.
    TimedOut,
    /// A signal interrupted the wait.
    Interrupted,
}

/// `poll(2)` for `POLLIN` with a timeout (rounded up to whole milliseconds, at most
/// `i32::MAX`).
pub fn poll_readable(fd: &OwnedFd, timeout: Duration) -> io::Result<PollOutcome> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN | libc::POLLERR,
        revents: 0,
    };
    let ms = timeout.as_micros().div_ceil(1000);
    let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
    // SAFETY: `&mut pfd` is one live, exclusive `pollfd` and nfds is 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(PollOutcome::Interrupted)
        } else {
            Err(e)
        };
    }
    if rc == 0 {
        return Ok(PollOutcome::TimedOut);
    }
    if pfd.revents & libc::POLLERR != 0 {
        return Ok(PollOutcome::Error);
    }
    Ok(PollOutcome::Readable)
}

/// `sysconf(_SC_PAGESIZE)`; 4096 if the system will not say.
pub fn page_size() -> usize {
    // SAFETY: sysconf(3) takes no pointers and has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(v).ok().filter(|&v| v > 0).unwrap_or(4096)
}

// ---- the mapped ring ----

/// A packet ring (`PACKET_RX_RING` or `PACKET_TX_RING`) mapped into our address space: `block_count` blocks of `block_bytes`,
/// shared with the kernel. Unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    block_bytes: usize,
    block_count: usize,
}

// SAFETY: the mapping is plain memory owned by this value (no thread-local state); moving it
// to another thread moves the only handle through which this process touches it. `Mapping`
// is not `Sync`, so two threads never use it at the same time.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Whether `block_count` blocks of `block_bytes` can be a ring: a non-zero number of
    /// non-zero, page-sized blocks whose total fits a `usize`.
    fn geometry_ok(block_bytes: usize, block_count: usize) -> bool {
        block_bytes != 0
            && block_bytes % page_size() == 0
            && block_count != 0
            && block_bytes.checked_mul(block_count).is_some()
    }

    /// Maps the ring of `block_count` blocks of `block_bytes` (checked by
    /// [`Mapping::geometry_ok`]) that the kernel has just set up on `fd`, RX or TX alike.
    /// On failure `release` is called to hand the kernel's blocks back, so no ring is left
    /// behind and a smaller retry can succeed.
    fn new(
        fd: &OwnedFd,
        block_bytes: usize,
        block_count: usize,
        release: impl FnOnce(),
    ) -> io::Result<Mapping> {
        let len = block_bytes * block_count;
        // SAFETY: a fresh shared mapping of the ring the kernel just allocated for this socket
        // (at an address the kernel picks, so nothing existing is replaced); the result is
        // checked against MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            // Read before `release`, whose system call would overwrite errno.
            let e = io::Error::last_os_error();
            release();
            return Err(e);
        }
        let Some(ptr) = NonNull::new(ptr.cast::<u8>()) else {
            // mmap never returns NULL for a non-fixed mapping; treat it as a failure anyway.
            release();
            return Err(io::Error::from(io::ErrorKind::Other));
        };
        Ok(Mapping {
            ptr,
            block_bytes,
            block_count,
        })
    }

    fn len(&self) -> usize {
        self.block_bytes * self.block_count
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; no reference into the mapping
        // outlives `self` (every borrow handed out is tied to `&self`/`&mut self` of the
        // ring), so nothing can touch it after this.
        let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len()) };
        debug_assert_eq!(rc, 0, "munmap of the ring failed");
    }
}

/// A TPACKET_V3 packet socket with its ring: the socket, the mapping, and which block is
/// next. Fields drop in order: the mapping goes before the socket is closed.
#[derive(Debug)]
pub struct PacketSocket {
    map: Option<Mapping>,
    fd: OwnedFd,
    next_block: usize,
}

impl PacketSocket {
    /// A packet socket with no ring mapped yet.
    pub fn new(fd: OwnedFd) -> PacketSocket {
        PacketSocket {
            map: None,
            fd,
            next_block: 0,
        }
    }

    /// The socket.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Asks the kernel for a ring of `req` and maps it. On failure no ring is left behind
    /// (a failed mmap releases the kernel's blocks again), so the caller may retry smaller.
    /// `req.tp_block_size` must be a non-zero multiple of the page size.
    pub fn map_ring(&mut self, req: &TpacketReq3) -> io::Result<()> {
        let block_bytes = req.tp_block_size as usize;
        let block_count = req.tp_block_nr as usize;
        if self.map.is_some() || !Mapping::geometry_ok(block_bytes, block_count) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        set_rx_ring(&self.fd, req)?;
        self.map = Some(Mapping::new(&self.fd, block_bytes, block_count, || {
            let _ = set_rx_ring(&self.fd, &TpacketReq3::default());
        })?);
        self.next_block = 0;
        Ok(())
    }

    /// The status word of block `index` as an atomic. `None` without a ring or out of range.
    fn status_word(map: &Mapping, index: usize) -> Option<&AtomicU32> {
        if index >= map.block_count {
            return None;
        }
        let at = index * map.block_bytes + BLOCK_STATUS_OFFSET;
        let word: *mut u32 = map.ptr.as_ptr().wrapping_add(at).cast();
        // SAFETY: `at + 4 <= index * block_bytes + 12 <= len` (blocks are at least a page),
        // so the word lies inside the live mapping, which outlives the returned borrow of
        // `map`. It is 4-byte aligned: mmap returns page-aligned memory, `block_bytes` is a
        // multiple of the page size and the offset is 8. The kernel writes this word only
        // while it owns the block, publishing it with a write barrier after filling the block
        // (packet_mmap.rst), and we only touch it through this atomic, never through a
        // non-atomic `&`/`&mut` at the same time as a store.
        Some(unsafe { AtomicU32::from_ptr(word) })
    }

    /// If the next block has been handed to user space, lends its bytes to `f`, then hands
    /// the block back to the kernel (even if `f` panics) and moves on to the following block.
    /// `None` when the next block is still the kernel's (or there is no ring).
    pub fn with_next_block<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let index = self.next_block;
        let map = self.map.as_ref()?;
        let status = Self::status_word(map, index)?;
        // Acquire pairs with the kernel's barrier before it sets TP_STATUS_USER: everything
        // it wrote into the block is visible after this load.
        if status.load(Ordering::Acquire) & TP_STATUS_USER == 0 {
            return None;
        }
        let block_bytes = map.block_bytes;
        let start: *const u8 = map.ptr.as_ptr().wrapping_add(index * block_bytes);
        let next = (index + 1) % map.block_count;

        /// Hands the block back when dropped (also on unwind).
        struct GiveBack<'a>(&'a AtomicU32);
        impl Drop for GiveBack<'_> {
            fn drop(&mut self) {
                // Release: our reads of the block happen before the kernel may reuse it.
                self.0.store(TP_STATUS_KERNEL, Ordering::Release);
            }
        }
        let give_back = GiveBack(status);
        // SAFETY: `start..start + block_bytes` is block `index`, inside the live mapping
        // (index < block_count), and the mapping outlives this call. The status word says
        // the block belongs to user space: the kernel does not write any of its bytes until
        // we store TP_STATUS_KERNEL, which `give_back` does only after `f` has returned (or
        // unwound), when this borrow is dead; the borrow cannot escape `f` (`f` gets a
        // `&[u8]` of an anonymous lifetime). Nobody writes the block meanwhile: we never make
        // a `&mut` into the mapping, and the status word is only loaded during the borrow.
        let block = unsafe { std::slice::from_raw_parts(start, block_bytes) };
        self.next_block = next;
        let r = f(block);
        drop(give_back);
        Some(r)
    }

    /// Ring geometry `(block_bytes, block_count)`, when mapped.
    pub fn geometry(&self) -> Option<(usize, usize)> {
        self.map.as_ref().map(|m| (m.block_bytes, m.block_count))
    }

    /// Blocks the kernel has filled and handed to user space that we have not given back
    /// yet: how full the ring is (`--metrics`). One Acquire load per block; called now and
    /// then by the ring's own worker, never per packet.
    pub fn blocks_with_user(&self) -> usize {
        let Some(map) = self.map.as_ref() else {
            return 0;
        };
        (0..map.block_count)
            .filter_map(|i| Self::status_word(map, i))
            .filter(|w| w.load(Ordering::Acquire) & TP_STATUS_USER != 0)
            .count()
    }
}

// ---- the TPACKET_V2 transmit ring (used by `replay`) ----
//
// Kernel reference: packet_mmap.rst, "TX_RING", and `tpacket_snd` in net/packet/af_packet.c.
// The ring is an array of fixed-size frames, each a `tpacket2_hdr` followed (for transmit,
// without PACKET_TX_HAS_OFF) by the frame bytes at `TPACKET2_HDRLEN - sizeof(sockaddr_ll)`.
// A frame belongs to user space while its status is TP_STATUS_AVAILABLE (or
// TP_STATUS_WRONG_FORMAT after a rejection); user space fills it and stores
// TP_STATUS_SEND_REQUEST; `send(2)` makes the kernel transmit every requested frame from its
// head onwards, marking each TP_STATUS_SENDING until the packet is freed, then AVAILABLE.
// The kernel only reads a frame's bytes; it writes its status word and, at completion, may
// write the timestamp words of a frame that is SENDING.

/// `PACKET_TX_RING`: set up the transmit ring.
pub const PACKET_TX_RING: libc::c_int = 13;
/// `PACKET_QDISC_BYPASS`: send without the queueing discipline.
pub const PACKET_QDISC_BYPASS: libc::c_int = 20;
/// `enum tpacket_versions`: the second member.
pub const TPACKET_V2: libc::c_int = 1;

/// TX slot status: free for user space to fill.
pub const TP_STATUS_AVAILABLE: u32 = 0;
/// TX slot status: filled, for the kernel to send.
pub const TP_STATUS_SEND_REQUEST: u32 = 1 << 0;
/// TX slot status: the kernel is sending it.
pub const TP_STATUS_SENDING: u32 = 1 << 1;
/// The kernel refused the frame (bad length or header); its head stays on that frame.
pub const TP_STATUS_WRONG_FORMAT: u32 = 1 << 2;

/// `struct tpacket2_hdr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, KnownLayout, Immutable)]
pub struct Tpacket2Hdr {
    /// Slot status (`TP_STATUS_*`).
    pub tp_status: u32,
    /// Length of the frame.
    pub tp_len: u32,
    /// Bytes captured (RX) or to send (TX).
    pub tp_snaplen: u32,
    /// Offset of the link-layer header from this header.
    pub tp_mac: u16,
    /// Offset of the network header from this header.
    pub tp_net: u16,
    /// Time, seconds.
    pub tp_sec: u32,
    /// Time, nanoseconds.
    pub tp_nsec: u32,
    /// VLAN tag.
    pub tp_vlan_tci: u16,
    /// VLAN TPID.
    pub tp_vlan_tpid: u16,
    /// Padding.
    pub tp_padding: [u8; 4],
}

/// Where a transmitted frame's bytes start inside its slot:
/// `TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)` = `TPACKET_ALIGN(sizeof(tpacket2_hdr))`.
pub const TX_DATA_OFFSET: usize =
    size_of::<Tpacket2Hdr>().div_ceil(TPACKET_ALIGNMENT) * TPACKET_ALIGNMENT;
/// Byte offset of `tp_len` in a frame slot.
const TP_LEN_OFFSET: usize = 4;

/// `struct tpacket_req`: the geometry of a TPACKET_V1/V2 ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TpacketReq {
    /// Bytes per block.
    pub tp_block_size: u32,
    /// Number of blocks.
    pub tp_block_nr: u32,
    /// Bytes per frame slot.
    pub tp_frame_size: u32,
    /// Number of frame slots.
    pub tp_frame_nr: u32,
}

/// `struct ifreq` as `SIOCGIFMTU` fills it: the name, then `ifr_mtu` (an `int`).
#[repr(C)]
#[derive(Clone, Copy)]
struct IfreqMtu {
    name: [u8; libc::IFNAMSIZ],
    mtu: i32,
    pad: [u8; 20],
}

/// `SIOCGIFMTU`: the interface's MTU in bytes (payload after the link-layer header).
pub fn interface_mtu(fd: &OwnedFd, name: &str) -> io::Result<u32> {
    let mut req = IfreqMtu {
        name: ifreq_name(name)?,
        mtu: 0,
        pad: [0; 20],
    };
    let ptr: *mut IfreqMtu = &mut req;
    // SAFETY: `ptr` is a live, exclusive, 40-byte `struct ifreq` (size checked in the tests)
    // with a NUL-terminated name; SIOCGIFMTU writes only `ifr_mtu` inside it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, ptr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    u32::try_from(req.mtu).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// `PACKET_VERSION = TPACKET_V2`.
pub fn set_tpacket_v2(fd: &OwnedFd) -> io::Result<()> {
    setsockopt_value(fd.as_raw_fd(), SOL_PACKET, PACKET_VERSION, &TPACKET_V2)
}

/// `PACKET_QDISC_BYPASS = 1`: frames go straight to the driver, skipping the qdisc layer
/// (and its queueing and drops), as netsniff-ng's trafgen does.
pub fn set_qdisc_bypass(fd: &OwnedFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    setsockopt_value(fd.as_raw_fd(), SOL_PACKET, PACKET_QDISC_BYPASS, &one)
}

fn set_tx_ring(fd: &OwnedFd, req: &TpacketReq) -> io::Result<()> {
    setsockopt_value(fd.as_raw_fd(), SOL_PACKET, PACKET_TX_RING, req)
}

/// `send(fd, NULL, 0, flags)`: asks the kernel to transmit every requested frame of the TX
/// ring. Without `MSG_DONTWAIT` it returns once they are all sent (their packets freed).
/// Returns the bytes the kernel accepted.
fn kick_tx(fd: &OwnedFd, flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: a NULL buffer of length 0 is never dereferenced; with a TX ring the kernel
    // takes the frames from the ring, which stays mapped for the whole call.
    let n = unsafe { libc::send(fd.as_raw_fd(), std::ptr::null(), 0, flags) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// A TPACKET_V2 packet socket with a mapped TX ring. The mapping goes before the socket is
/// closed (field order).
#[derive(Debug)]
pub struct TxSocket {
    map: Option<Mapping>,
    fd: OwnedFd,
    frame_bytes: usize,
    frames_per_block: usize,
    frame_count: usize,
}

impl TxSocket {
    /// A transmit socket with no ring mapped yet.
    pub fn new(fd: OwnedFd) -> TxSocket {
        TxSocket {
            map: None,
            fd,
            frame_bytes: 0,
            frames_per_block: 0,
            frame_count: 0,
        }
    }

    /// The socket.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Frames in the ring (0 before [`TxSocket::map_ring`]).
    pub fn frame_count(&self) -> usize {
        self.frame_count
    }

    /// The largest frame a slot holds.
    pub fn frame_capacity_bytes(&self) -> usize {
        self.frame_bytes.saturating_sub(TX_DATA_OFFSET)
    }

    /// Asks the kernel for a TX ring of `req` and maps it. `tp_block_size` must be a multiple
    /// of the page size, `tp_frame_size` a multiple of 16 that divides it, and
    /// `tp_frame_nr` exactly the frames the blocks hold. On failure no ring is left.
    pub fn map_ring(&mut self, req: &TpacketReq) -> io::Result<()> {
        let block_bytes = req.tp_block_size as usize;
        let block_count = req.tp_block_nr as usize;
        let frame_bytes = req.tp_frame_size as usize;
        if self.map.is_some()
            || !Mapping::geometry_ok(block_bytes, block_count)
            || frame_bytes <= TX_DATA_OFFSET
            || frame_bytes % TPACKET_ALIGNMENT != 0
            || block_bytes % frame_bytes != 0
            || (block_bytes / frame_bytes).checked_mul(block_count)
                != Some(req.tp_frame_nr as usize)
        {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        set_tx_ring(&self.fd, req)?;
        self.map = Some(Mapping::new(&self.fd, block_bytes, block_count, || {
            let _ = set_tx_ring(&self.fd, &TpacketReq::default());
        })?);
        self.frame_bytes = frame_bytes;
        self.frames_per_block = block_bytes / frame_bytes;
        self.frame_count = req.tp_frame_nr as usize;
        Ok(())
    }

    /// Start of frame slot `index` inside the mapping, or `None` (no ring, out of range).
    /// Frames never straddle blocks: block `i / per_block`, slot `i % per_block` in it.
    fn frame_start(&self, index: usize) -> Option<(&Mapping, usize)> {
        let map = self.map.as_ref()?;
        if index >= self.frame_count || self.frames_per_block == 0 {
            return None;
        }
        let at = (index / self.frames_per_block) * map.block_bytes
            + (index % self.frames_per_block) * self.frame_bytes;
        Some((map, at))
    }

    /// The status word of frame `index` as an atomic.
    fn frame_status_word(&self, index: usize) -> Option<&AtomicU32> {
        let (map, at) = self.frame_start(index)?;
        let word: *mut u32 = map.ptr.as_ptr().wrapping_add(at).cast();
        // SAFETY: `at + frame_bytes <= len` (index < frame_count, frames lie inside their
        // block), so the word is inside the live mapping, which outlives the borrow of
        // `self`. It is 4-byte aligned: the mapping is page aligned, blocks are whole pages
        // and frame sizes multiples of 16. The kernel reads and writes this word concurrently
        // (with barriers around it); we only ever touch it through this atomic.
        Some(unsafe { AtomicU32::from_ptr(word) })
    }

    /// The status of frame `index` (Acquire: when it reads AVAILABLE, the kernel is done
    /// with the frame, timestamp words included).
    pub fn frame_status(&self, index: usize) -> Option<u32> {
        self.frame_status_word(index)
            .map(|w| w.load(Ordering::Acquire))
    }

    /// Copies `bytes` into frame `index` and requests its transmission. Returns false, and
    /// changes nothing, when the frame is not ours (the kernel still has it), `bytes` do not
    /// fit the slot, or `index` is out of range.
    pub fn fill_frame(&mut self, index: usize, bytes: &[u8]) -> bool {
        let capacity = self.frame_capacity_bytes();
        let Ok(len) = u32::try_from(bytes.len()) else {
            return false;
        };
        if bytes.len() > capacity {
            return false;
        }
        let Some(status) = self.frame_status_word(index) else {
            return false;
        };
        let owned = status.load(Ordering::Acquire);
        if owned != TP_STATUS_AVAILABLE && owned != TP_STATUS_WRONG_FORMAT {
            return false;
        }
        let Some((map, at)) = self.frame_start(index) else {
            return false;
        };
        // Everything after the status word, up to the end of the slot.
        let body: *mut u8 = map.ptr.as_ptr().wrapping_add(at + TP_LEN_OFFSET);
        // SAFETY: `body .. body + frame_bytes - 4` lies inside frame `index`, inside the live
        // mapping (see `frame_status_word`), and does not include the status word, which
        // stays reachable only through its atomic. The frame is ours (status AVAILABLE or
        // WRONG_FORMAT, read with Acquire): the kernel neither reads nor writes any of these
        // bytes until we store SEND_REQUEST below, after this borrow ends; and `&mut self`
        // means no other borrow of the ring exists in this process.
        let slot = unsafe { std::slice::from_raw_parts_mut(body, self.frame_bytes - 4) };
        // tp_len, then tp_snaplen (ignored by the kernel for transmit; kept consistent).
        slot[0..4].copy_from_slice(&len.to_ne_bytes());
        slot[4..8].copy_from_slice(&len.to_ne_bytes());
        let data = TX_DATA_OFFSET - TP_LEN_OFFSET;
        slot[data..data + bytes.len()].copy_from_slice(bytes);
        // Release: the bytes above are visible to the kernel before it sees the request.
        status.store(TP_STATUS_SEND_REQUEST, Ordering::Release);
        true
    }

    /// The bytes last put in frame `index` (`len` of them), while the frame is not in the
    /// kernel's hands for sending (status SEND_REQUEST not yet taken, WRONG_FORMAT or
    /// AVAILABLE). `None` otherwise.
    pub fn frame_bytes(&self, index: usize, len: usize) -> Option<&[u8]> {
        let status = self.frame_status(index)?;
        if status & TP_STATUS_SENDING != 0 || len > self.frame_capacity_bytes() {
            return None;
        }
        let (map, at) = self.frame_start(index)?;
        let start: *const u8 = map.ptr.as_ptr().wrapping_add(at + TX_DATA_OFFSET);
        // SAFETY: `start .. start + len` lies inside frame `index`'s data area (len is within
        // the slot's capacity), inside the live mapping, which outlives the borrow of `self`.
        // The kernel never writes a frame's data area (it only reads it to build the packet);
        // we write it only in `fill_frame`, which needs `&mut self`, so not while this
        // borrow lives.
        Some(unsafe { std::slice::from_raw_parts(start, len) })
    }

    /// Takes back a frame whose transmission was requested but that the kernel never took
    /// (or refused): SEND_REQUEST or WRONG_FORMAT becomes AVAILABLE. Only sound to call
    /// between sends: the kernel looks at requested frames only inside `send(2)`, which only
    /// [`TxSocket::send_all`] calls, with `&mut self`. Returns false for any other status.
    pub fn reclaim_frame(&mut self, index: usize) -> bool {
        let Some(status) = self.frame_status_word(index) else {
            return false;
        };
        let s = status.load(Ordering::Acquire);
        if s != TP_STATUS_SEND_REQUEST && s != TP_STATUS_WRONG_FORMAT {
            return false;
        }
        status.store(TP_STATUS_AVAILABLE, Ordering::Release);
        true
    }

    /// Transmits every requested frame and waits until they are all sent (blocking
    /// `send(2)`); the bytes the kernel accepted. An error leaves the refused frame (if any)
    /// marked WRONG_FORMAT.
    pub fn send_all(&mut self) -> io::Result<usize> {
        kick_tx(&self.fd, 0)
    }

    /// Binds for transmit only: protocol 0, so the socket receives nothing (not even the
    /// frames it sends itself), and the kernel sends on `ifindex`.
    pub fn bind(&self, ifindex: u32) -> io::Result<()> {
        bind_with_protocol(&self.fd, ifindex, 0)
    }
}

fn bind_with_protocol(fd: &OwnedFd, ifindex: u32, protocol_be: u16) -> io::Result<()> {
    let addr = SockaddrLl {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol_be,
        sll_ifindex: i32::try_from(ifindex)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        ..SockaddrLl::default()
    };
    let ptr: *const libc::sockaddr = (&addr as *const SockaddrLl).cast();
    let len = size_of::<SockaddrLl>() as libc::socklen_t;
    // SAFETY: `ptr` points at a live, padding-free 20-byte `sockaddr_ll`, `len` is its size;
    // bind(2) only reads it during the call.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), ptr, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets up a TX socket as `replay` wants it, in the order the kernel needs: TPACKET_V2,
/// qdisc bypass, the ring, then `bind`.
pub fn open_tx_socket(req: &TpacketReq, ifindex: u32) -> io::Result<TxSocket> {
    let fd = open_packet_socket()?;
    set_tpacket_v2(&fd)?;
    set_qdisc_bypass(&fd)?;
    let mut sock = TxSocket::new(fd);
    sock.map_ring(req)?;
    sock.bind(ifindex)?;
    Ok(sock)
}

// ---- the bounds-checked walk over one block ----

/// One packet found in a block, exactly as the kernel described it.
#[derive(Clone, Copy, Debug)]
pub struct RawFrame<'a> {
    /// `tp_snaplen` bytes from `tp_mac`.
    pub bytes: &'a [u8],
    /// `tp_sec`: capture time, seconds.
    pub sec: u32,
    /// `tp_nsec`: capture time, nanoseconds.
    pub nsec: u32,
    /// `tp_len`, the length on the wire (without a stripped VLAN tag).
    pub wire_len: u32,
    /// `tp_status`: per-packet status bits.
    pub status: u32,
    /// `hv1.tp_vlan_tci`: the tag the kernel stripped, if `status` says so.
    pub vlan_tci: u32,
    /// `hv1.tp_vlan_tpid`: its TPID, if `status` says so.
    pub vlan_tpid: u16,
    /// `tp_net - tp_mac`: the link-layer header's length within `bytes` (0 when the kernel
    /// says the network header comes first, or says nothing sensible).
    pub net_offset: u16,
    /// The `sockaddr_ll` the kernel puts after the packet header (interface, hardware type,
    /// packet type, source address), when it fits before `tp_mac`.
    pub link: Option<SockaddrLl>,
}

/// Where TPACKET_V3 puts the `sockaddr_ll` of a packet: right after its header, aligned to
/// `TPACKET_ALIGNMENT` (16) (`Documentation/networking/packet_mmap.rst`).
const SOCKADDR_LL_OFFSET: usize = (size_of::<Tpacket3Hdr>() + 15) & !15;

/// Why the walk over a block stopped early. `index` is the packet it stopped at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadBlock {
    /// The block is smaller than its own header.
    ShortBlock,
    /// `offset_to_first_pkt` points before the end of the block header or past the block.
    FirstOffset(u32),
    /// A packet header does not fit in the block.
    PacketHeader {
        /// The packet's index in the block.
        index: u32,
    },
    /// `tp_mac` points into the packet header or past the block.
    MacOffset {
        /// The packet's index in the block.
        index: u32,
    },
    /// `tp_mac + tp_snaplen` runs past the block.
    Snaplen {
        /// The packet's index in the block.
        index: u32,
    },
    /// `tp_next_offset` is 0 (or overflows) although more packets were announced.
    NextOffset {
        /// The packet's index in the block.
        index: u32,
    },
}

/// What [`walk_block`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockWalk {
    /// `num_pkts` as the block header says.
    pub announced: u32,
    /// Frames handed to the callback.
    pub frames: u32,
    /// Why the walk stopped early, if it did.
    pub bad: Option<BadBlock>,
}

/// Walks one retired block, calling `f` for each packet in order. Every kernel-written
/// offset and length is checked against `block` before it is used; the first that does not
/// fit ends the walk and is reported in [`BlockWalk::bad`]. Never panics.
pub fn walk_block<'a>(block: &'a [u8], mut f: impl FnMut(RawFrame<'a>)) -> BlockWalk {
    let mut walk = BlockWalk {
        announced: 0,
        frames: 0,
        bad: None,
    };
    let Ok((desc, _)) = TpacketBlockDesc::read_from_prefix(block) else {
        walk.bad = Some(BadBlock::ShortBlock);
        return walk;
    };
    walk.announced = desc.bh1.num_pkts;
    if walk.announced == 0 {
        return walk;
    }
    let first = desc.bh1.offset_to_first_pkt;
    let mut offset = first as usize;
    if offset < size_of::<TpacketBlockDesc>() || offset >= block.len() {
        walk.bad = Some(BadBlock::FirstOffset(first));
        return walk;
    }
    for index in 0..walk.announced {
        let Some(Ok((hdr, _))) = block.get(offset..).map(Tpacket3Hdr::read_from_prefix) else {
            walk.bad = Some(BadBlock::PacketHeader { index });
            return walk;
        };
        let mac = usize::from(hdr.tp_mac);
        if mac < size_of::<Tpacket3Hdr>() {
            walk.bad = Some(BadBlock::MacOffset { index });
            return walk;
        }
        let Some(start) = offset.checked_add(mac).filter(|&s| s <= block.len()) else {
            walk.bad = Some(BadBlock::MacOffset { index });
            return walk;
        };
        let Some(bytes) = start
            .checked_add(hdr.tp_snaplen as usize)
            .and_then(|end| block.get(start..end))
        else {
            walk.bad = Some(BadBlock::Snaplen { index });
            return walk;
        };
        // Kernel-written like the rest: used only when it lies between the header and the
        // frame bytes.
        let link = (SOCKADDR_LL_OFFSET + size_of::<SockaddrLl>() <= mac)
            .then(|| block.get(offset + SOCKADDR_LL_OFFSET..start))
            .flatten()
            .and_then(|b| SockaddrLl::read_from_prefix(b).ok())
            .map(|(ll, _)| ll);
        let net_offset = hdr
            .tp_net
            .checked_sub(hdr.tp_mac)
            .filter(|&n| usize::from(n) <= bytes.len())
            .unwrap_or(0);
        f(RawFrame {
            bytes,
            sec: hdr.tp_sec,
            nsec: hdr.tp_nsec,
            wire_len: hdr.tp_len,
            status: hdr.tp_status,
            vlan_tci: hdr.hv1.tp_vlan_tci,
            vlan_tpid: hdr.hv1.tp_vlan_tpid,
            net_offset,
            link,
        });
        walk.frames += 1;
        if index + 1 < walk.announced {
            let next = hdr.tp_next_offset as usize;
            match offset.checked_add(next) {
                Some(n) if next != 0 => offset = n,
                _ => {
                    walk.bad = Some(BadBlock::NextOffset { index });
                    return walk;
                }
            }
        }
    }
    walk
}

// ---- interface addresses (the traffic tools' `send arp`) ----

/// `SIOCGIFHWADDR`: the interface's hardware type and its first six address bytes (the MAC
/// address of an Ethernet interface; all zero for loopback).
pub fn interface_mac_address(fd: &OwnedFd, name: &str) -> io::Result<(u16, [u8; 6])> {
    let mut req = IfreqHwaddr {
        name: ifreq_name(name)?,
        sa_family: 0,
        sa_data: [0; 14],
        pad: [0; 8],
    };
    let ptr: *mut IfreqHwaddr = &mut req;
    // SAFETY: `ptr` is a live, exclusive, 40-byte `struct ifreq` with a NUL-terminated name;
    // SIOCGIFHWADDR writes only the `struct sockaddr` (16 bytes) inside it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, ptr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&req.sa_data[..6]);
    Ok((req.sa_family, mac))
}

/// `SIOCGIFADDR`: the interface's (primary) IPv4 address. `EADDRNOTAVAIL` when it has none.
pub fn interface_ipv4_address(fd: &OwnedFd, name: &str) -> io::Result<std::net::Ipv4Addr> {
    // Same 40-byte `struct ifreq`; the union holds a `sockaddr_in`: family, port (2 bytes),
    // address (4 bytes, network order), zero padding.
    let mut req = IfreqHwaddr {
        name: ifreq_name(name)?,
        sa_family: libc::AF_INET as u16,
        sa_data: [0; 14],
        pad: [0; 8],
    };
    let ptr: *mut IfreqHwaddr = &mut req;
    // SAFETY: `ptr` is a live, exclusive, 40-byte `struct ifreq` with a NUL-terminated name;
    // SIOCGIFADDR writes only the `struct sockaddr` (16 bytes) inside it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFADDR, ptr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let a = &req.sa_data;
    Ok(std::net::Ipv4Addr::new(a[2], a[3], a[4], a[5]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of};

    // Expected values worked out by hand from /usr/include/linux/if_packet.h (x86_64 and
    // every other Linux ABI: only `unsigned int`, `__u16`, `__u32`, `__aligned_u64`), and
    // cross-checked against the `libc` crate's own definitions where it has them.

    #[test]
    fn tpacket_req3_layout() {
        assert_eq!(size_of::<TpacketReq3>(), 28);
        assert_eq!(offset_of!(TpacketReq3, tp_retire_blk_tov), 16);
        assert_eq!(offset_of!(TpacketReq3, tp_sizeof_priv), 20);
        assert_eq!(offset_of!(TpacketReq3, tp_feature_req_word), 24);
        assert_eq!(size_of::<TpacketReq3>(), size_of::<libc::tpacket_req3>());
    }

    #[test]
    fn block_desc_layout() {
        assert_eq!(size_of::<TpacketBdTs>(), 8);
        assert_eq!(size_of::<TpacketHdrV1>(), 40);
        assert_eq!(align_of::<TpacketHdrV1>(), 8);
        assert_eq!(offset_of!(TpacketHdrV1, num_pkts), 4);
        assert_eq!(offset_of!(TpacketHdrV1, offset_to_first_pkt), 8);
        assert_eq!(offset_of!(TpacketHdrV1, blk_len), 12);
        assert_eq!(offset_of!(TpacketHdrV1, seq_num), 16);
        assert_eq!(offset_of!(TpacketHdrV1, ts_first_pkt), 24);
        assert_eq!(offset_of!(TpacketHdrV1, ts_last_pkt), 32);
        assert_eq!(size_of::<TpacketBlockDesc>(), 48);
        assert_eq!(offset_of!(TpacketBlockDesc, bh1), 8);
        assert_eq!(
            offset_of!(TpacketBlockDesc, bh1) + offset_of!(TpacketHdrV1, block_status),
            BLOCK_STATUS_OFFSET
        );
        assert_eq!(
            size_of::<TpacketBlockDesc>(),
            size_of::<libc::tpacket_block_desc>()
        );
        assert_eq!(size_of::<TpacketHdrV1>(), size_of::<libc::tpacket_hdr_v1>());
    }

    #[test]
    fn tpacket3_hdr_layout() {
        assert_eq!(size_of::<TpacketHdrVariant1>(), 12);
        assert_eq!(offset_of!(TpacketHdrVariant1, tp_vlan_tci), 4);
        assert_eq!(offset_of!(TpacketHdrVariant1, tp_vlan_tpid), 8);
        assert_eq!(size_of::<Tpacket3Hdr>(), 48);
        assert_eq!(offset_of!(Tpacket3Hdr, tp_snaplen), 12);
        assert_eq!(offset_of!(Tpacket3Hdr, tp_len), 16);
        assert_eq!(offset_of!(Tpacket3Hdr, tp_status), 20);
        assert_eq!(offset_of!(Tpacket3Hdr, tp_mac), 24);
        assert_eq!(offset_of!(Tpacket3Hdr, tp_net), 26);
        assert_eq!(offset_of!(Tpacket3Hdr, hv1), 28);
        assert_eq!(offset_of!(Tpacket3Hdr, tp_padding), 40);
        assert_eq!(size_of::<Tpacket3Hdr>(), size_of::<libc::tpacket3_hdr>());
        assert_eq!(
            offset_of!(Tpacket3Hdr, tp_mac),
            offset_of!(libc::tpacket3_hdr, tp_mac)
        );
        // TPACKET3_HDRLEN = TPACKET_ALIGN(48) + 20.
        assert_eq!(TPACKET3_HDRLEN, 68);
    }

    #[test]
    fn small_struct_layouts() {
        assert_eq!(size_of::<SockaddrLl>(), 20);
        assert_eq!(offset_of!(SockaddrLl, sll_ifindex), 4);
        assert_eq!(offset_of!(SockaddrLl, sll_hatype), 8);
        assert_eq!(offset_of!(SockaddrLl, sll_addr), 12);
        assert_eq!(size_of::<SockaddrLl>(), size_of::<libc::sockaddr_ll>());
        assert_eq!(size_of::<TpacketStatsV3>(), 12);
        assert_eq!(offset_of!(TpacketStatsV3, tp_freeze_q_cnt), 8);
        assert_eq!(
            size_of::<TpacketStatsV3>(),
            size_of::<libc::tpacket_stats_v3>()
        );
        assert_eq!(size_of::<PacketMreq>(), 16);
        assert_eq!(size_of::<PacketMreq>(), size_of::<libc::packet_mreq>());
        assert_eq!(size_of::<IfreqFlags>(), size_of::<libc::ifreq>());
        assert_eq!(size_of::<IfreqHwaddr>(), size_of::<libc::ifreq>());
        assert_eq!(offset_of!(IfreqFlags, flags), libc::IFNAMSIZ);
        assert_eq!(size_of::<SockFprog>(), size_of::<libc::sock_fprog>());
        assert_eq!(offset_of!(SockFprog, filter), size_of::<usize>());
        assert_eq!(size_of::<BpfInsn>(), size_of::<libc::sock_filter>());
        assert_eq!(offset_of!(BpfInsn, k), 4);
    }

    #[test]
    fn tx_ring_layout() {
        assert_eq!(size_of::<Tpacket2Hdr>(), 32);
        assert_eq!(offset_of!(Tpacket2Hdr, tp_len), TP_LEN_OFFSET);
        assert_eq!(offset_of!(Tpacket2Hdr, tp_sec), 16);
        assert_eq!(offset_of!(Tpacket2Hdr, tp_vlan_tci), 24);
        assert_eq!(size_of::<Tpacket2Hdr>(), size_of::<libc::tpacket2_hdr>());
        assert_eq!(size_of::<TpacketReq>(), size_of::<libc::tpacket_req>());
        assert_eq!(size_of::<IfreqMtu>(), size_of::<libc::ifreq>());
        assert_eq!(offset_of!(IfreqMtu, mtu), libc::IFNAMSIZ);
        // TPACKET2_HDRLEN - sizeof(struct sockaddr_ll).
        assert_eq!(TX_DATA_OFFSET, 32);
        assert_eq!(
            TX_DATA_OFFSET,
            libc::TPACKET2_HDRLEN - size_of::<SockaddrLl>()
        );
        assert_eq!(PACKET_TX_RING, libc::PACKET_TX_RING);
        assert_eq!(PACKET_QDISC_BYPASS, libc::PACKET_QDISC_BYPASS);
        assert_eq!(TP_STATUS_SEND_REQUEST, libc::TP_STATUS_SEND_REQUEST);
        assert_eq!(TP_STATUS_SENDING, libc::TP_STATUS_SENDING);
        assert_eq!(TP_STATUS_WRONG_FORMAT, libc::TP_STATUS_WRONG_FORMAT);
        assert_eq!(TP_STATUS_AVAILABLE, libc::TP_STATUS_AVAILABLE);
    }

    #[test]
    fn tx_ring_geometry_is_checked_before_the_kernel_sees_it() {
        let fd = OwnedFd::from(std::fs::File::open("/dev/null").expect("/dev/null"));
        let mut sock = TxSocket::new(fd);
        let page = page_size() as u32;
        for req in [
            TpacketReq::default(),
            // frame size not a multiple of 16
            TpacketReq {
                tp_block_size: page,
                tp_block_nr: 1,
                tp_frame_size: 1000,
                tp_frame_nr: 4,
            },
            // frame count does not match
            TpacketReq {
                tp_block_size: page,
                tp_block_nr: 2,
                tp_frame_size: 2048,
                tp_frame_nr: 5,
            },
            // block not a page multiple
            TpacketReq {
                tp_block_size: page + 16,
                tp_block_nr: 1,
                tp_frame_size: 16 * 64,
                tp_frame_nr: 4,
            },
        ] {
            let e = sock.map_ring(&req).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{req:?}");
        }
        // Without a ring nothing is filled or read.
        assert!(!sock.fill_frame(0, &[0u8; 60]));
        assert_eq!(sock.frame_status(0), None);
        assert!(sock.frame_bytes(0, 1).is_none());
        assert!(!sock.reclaim_frame(0));
    }

    #[test]
    fn constants_match_libc() {
        assert_eq!(SOL_PACKET, libc::SOL_PACKET);
        assert_eq!(PACKET_RX_RING, libc::PACKET_RX_RING);
        assert_eq!(PACKET_STATISTICS, libc::PACKET_STATISTICS);
        assert_eq!(PACKET_VERSION, libc::PACKET_VERSION);
        assert_eq!(PACKET_FANOUT, libc::PACKET_FANOUT);
        assert_eq!(PACKET_ADD_MEMBERSHIP, libc::PACKET_ADD_MEMBERSHIP);
        assert_eq!(TPACKET_V3, 2); // third member of enum tpacket_versions
        assert_eq!(i32::from(ETH_P_ALL), libc::ETH_P_ALL);
        assert_eq!(
            u32::from(PACKET_FANOUT_FLAG_DEFRAG),
            libc::PACKET_FANOUT_FLAG_DEFRAG
        );
        assert_eq!(TP_STATUS_VLAN_VALID, libc::TP_STATUS_VLAN_VALID);
        assert_eq!(TP_STATUS_VLAN_TPID_VALID, libc::TP_STATUS_VLAN_TPID_VALID);
    }

    // ---- fabricated blocks ----

    const BLOCK: usize = 4096;
    const FIRST: usize = 48;

    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }
    fn put16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_ne_bytes());
    }

    /// A block as the kernel lays it out: header, then packets at 16-aligned offsets, each
    /// a `tpacket3_hdr`, room for a `sockaddr_ll`, then the frame at `tp_mac`.
    fn block_with(frames: &[&[u8]]) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK];
        put32(&mut b, 8, TP_STATUS_USER);
        put32(&mut b, 12, frames.len() as u32);
        put32(&mut b, 16, FIRST as u32);
        let mut off = FIRST;
        for (i, frame) in frames.iter().enumerate() {
            let mac = 80usize;
            let total = (mac + frame.len()).div_ceil(16) * 16;
            let next = if i + 1 < frames.len() {
                total as u32
            } else {
                0
            };
            put32(&mut b, off, next);
            put32(&mut b, off + 4, 1_700_000_000 + i as u32);
            put32(&mut b, off + 8, 123_456_789);
            put32(&mut b, off + 12, frame.len() as u32);
            put32(&mut b, off + 16, frame.len() as u32 + 100);
            put32(&mut b, off + 20, TP_STATUS_USER);
            put16(&mut b, off + 24, mac as u16);
            put16(&mut b, off + 26, mac as u16 + 14);
            b[off + mac..off + mac + frame.len()].copy_from_slice(frame);
            off += total;
        }
        put32(&mut b, 20, off as u32);
        b
    }

    fn collect(block: &[u8]) -> (Vec<Vec<u8>>, BlockWalk) {
        let mut out = Vec::new();
        let walk = walk_block(block, |f| out.push(f.bytes.to_vec()));
        (out, walk)
    }

    #[test]
    fn walks_a_good_block() {
        let a = [1u8; 60];
        let b = [2u8; 100];
        let c = [3u8; 1];
        let block = block_with(&[&a, &b, &c]);
        let mut times = Vec::new();
        let walk = walk_block(&block, |f| times.push((f.sec, f.nsec, f.wire_len)));
        assert_eq!(
            walk,
            BlockWalk {
                announced: 3,
                frames: 3,
                bad: None
            }
        );
        assert_eq!(times[1], (1_700_000_001, 123_456_789, 200));
        let (frames, _) = collect(&block);
        assert_eq!(frames, vec![a.to_vec(), b.to_vec(), c.to_vec()]);
    }

    #[test]
    fn empty_block_is_fine() {
        let block = block_with(&[]);
        assert_eq!(
            collect(&block).1,
            BlockWalk {
                announced: 0,
                frames: 0,
                bad: None
            }
        );
    }

    #[test]
    fn short_block_is_bad() {
        assert_eq!(collect(&[0u8; 10]).1.bad, Some(BadBlock::ShortBlock));
    }

    #[test]
    fn hostile_first_offset() {
        for first in [0u32, 47, BLOCK as u32, u32::MAX, BLOCK as u32 - 1] {
            let mut block = block_with(&[&[9u8; 20]]);
            put32(&mut block, 16, first);
            let (frames, walk) = collect(&block);
            assert!(walk.bad.is_some(), "first offset {first}");
            assert!(frames.is_empty());
        }
    }

    #[test]
    fn hostile_num_pkts_stops_at_missing_next_offset() {
        let mut block = block_with(&[&[9u8; 20], &[8u8; 20]]);
        put32(&mut block, 12, u32::MAX);
        let (frames, walk) = collect(&block);
        assert_eq!(frames.len(), 2);
        assert_eq!(walk.bad, Some(BadBlock::NextOffset { index: 1 }));
    }

    #[test]
    fn hostile_next_offset_past_the_block() {
        let mut block = block_with(&[&[9u8; 20], &[8u8; 20]]);
        put32(&mut block, FIRST, BLOCK as u32 - 10);
        let (frames, walk) = collect(&block);
        assert_eq!(frames.len(), 1);
        assert_eq!(walk.bad, Some(BadBlock::PacketHeader { index: 1 }));
        put32(&mut block, FIRST, u32::MAX);
        assert_eq!(
            collect(&block).1.bad,
            Some(BadBlock::PacketHeader { index: 1 })
        );
    }

    #[test]
    fn hostile_mac_and_snaplen() {
        let mut block = block_with(&[&[9u8; 20]]);
        put16(&mut block, FIRST + 24, 3);
        assert_eq!(
            collect(&block).1.bad,
            Some(BadBlock::MacOffset { index: 0 })
        );
        put16(&mut block, FIRST + 24, u16::MAX);
        assert_eq!(
            collect(&block).1.bad,
            Some(BadBlock::MacOffset { index: 0 })
        );
        // A frame that starts in the block but ends past it.
        put16(&mut block, FIRST + 24, (BLOCK - FIRST - 10) as u16);
        assert_eq!(collect(&block).1.bad, Some(BadBlock::Snaplen { index: 0 }));
        put16(&mut block, FIRST + 24, 80);
        put32(&mut block, FIRST + 12, BLOCK as u32);
        assert_eq!(collect(&block).1.bad, Some(BadBlock::Snaplen { index: 0 }));
        put32(&mut block, FIRST + 12, u32::MAX);
        assert_eq!(collect(&block).1.bad, Some(BadBlock::Snaplen { index: 0 }));
        // The last byte of the block is still in bounds.
        let room = (BLOCK - FIRST - 80) as u32;
        put32(&mut block, FIRST + 12, room);
        let (frames, walk) = collect(&block);
        assert_eq!((frames[0].len(), walk.bad), (room as usize, None));
    }

    #[test]
    fn header_at_the_very_end_is_bad_not_a_panic() {
        let mut block = block_with(&[&[9u8; 20]]);
        put32(&mut block, 16, (BLOCK - 10) as u32);
        assert_eq!(
            collect(&block).1.bad,
            Some(BadBlock::PacketHeader { index: 0 })
        );
    }

    /// Any bytes at all: the walk ends, never panics, and every frame lies inside the block.
    #[test]
    fn arbitrary_blocks_never_panic() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..2000 {
            let len = (next() % 600) as usize;
            let mut block: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 && len >= 48 {
                // Plausible header fields so the walk gets past the first checks.
                put32(&mut block, 12, (next() % 8) as u32);
                put32(&mut block, 16, 48 + (next() % 64) as u32);
            }
            let range = block.as_ptr_range();
            let walk = walk_block(&block, |f| {
                let r = f.bytes.as_ptr_range();
                assert!(r.start >= range.start && r.end <= range.end);
            });
            assert!(walk.frames <= walk.announced);
        }
    }
}

// ==== File mapping ===============================================================================
//
// `read` maps regular capture files and decodes their records in place
// (src/source/pcap_file, `CaptureReader::open`). This section is separate from the ring above:
// it shares nothing with it but the rule that unsafe code lives in this module.
//
// The hazard of any file mapping is another process changing the file while it is mapped: a
// truncation makes accesses past the new end raise SIGBUS (the process dies), and a write
// changes bytes under a `&[u8]` that Rust assumes immutable. Neither can be ruled out by a
// check made once (the file's owner, or root, can always truncate it later), so the policy is
// to map only files where that takes a deliberate act of their owner, and to stream the rest:
// - only a regular file, which we hold open for as long as the mapping lives (the `Mmap` is
//   made from it and returned to a caller that keeps both), and whose length at the time of
//   the map is the mapping's length (memmap2 reads it with fstat);
// - only a file that neither its group nor others may write (mode `0o022` clear), so no other
//   unprivileged user can truncate it;
// - only a file owned by us (the effective user) or by root, or with no owner write bit: a file
//   another user may write stays streamed.
// What remains is the user (or root) truncating their own capture file while `read` runs on
// it, as `tcpdump -w` over the same path would: the process then ends with SIGBUS, as ripgrep
// and other mapping readers do. A file that grows while mapped is read up to the length it had
// when it was mapped (the streaming reader would read the appended records too).

/// Mapping capture files for the reader (kept apart from the ring above; see the comment
/// just before this module).
pub mod file_mapping {
    use std::io;

    /// Maps `file` read-only for the capture reader, or says why not (`ErrorKind::Unsupported`:
    /// not a regular file, empty, writable by others; the caller then streams the file).
    /// Advises the kernel that the mapping is read sequentially (read-ahead, early reclaim).
    pub fn map_capture_file(file: &std::fs::File) -> io::Result<memmap2::Mmap> {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata()?;
        let refuse = |why: &str| Err(io::Error::new(io::ErrorKind::Unsupported, why.to_owned()));
        if !meta.file_type().is_file() {
            return refuse("not a regular file");
        }
        // An empty file cannot be mapped (and streaming reports it as such).
        if meta.len() == 0 || usize::try_from(meta.len()).is_err() {
            return refuse("empty, or too large to map");
        }
        if meta.mode() & 0o022 != 0 {
            return refuse("writable by group or others");
        }
        let euid = nix::unistd::geteuid().as_raw();
        if meta.uid() != euid && meta.uid() != 0 && meta.mode() & 0o200 != 0 {
            return refuse("writable by another user");
        }
        // SAFETY: `Mmap::map` is unsafe because the mapped file may be changed or truncated by
        // someone else while the mapping lives (see the section comment above). The checks above
        // leave only the file's owner or root able to do that: the file is regular (so its length
        // is fixed unless someone truncates or writes it), not writable by group or others, and
        // owned by us or root or not writable by its owner. The mapping is read-only
        // (PROT_READ, MAP_PRIVATE) and its length is the file's length now, so every byte of the
        // returned slice is backed by the file when it is mapped. The caller keeps `file` open
        // beside the mapping (`memmap2` also keeps the mapping valid after a close).
        let map = unsafe { memmap2::Mmap::map(file) }?;
        // Only advice: a failure costs read-ahead, never correctness.
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(map)
    }

    /// Drops this process's page-table entries for `map[offset..offset + len]` (`MADV_DONTNEED`)
    /// once the reader is past them, so a mapped file's resident size stays bounded instead of
    /// growing to the file size. The bytes stay readable: a later access reads them again from
    /// the page cache or the file. A range outside the mapping is refused (`InvalidInput`);
    /// memmap2 widens the start down to its page boundary.
    pub fn drop_mapped_pages(map: &memmap2::Mmap, offset: usize, len: usize) -> io::Result<()> {
        if !matches!(offset.checked_add(len), Some(end) if end <= map.len()) {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        // SAFETY: MADV_DONTNEED is unsafe in memmap2 because on private *writable* or anonymous
        // mappings it discards the contents (later reads see zeros or the file's bytes, not what
        // was written). `map` is a read-only (PROT_READ) private mapping of a file made by
        // `map_capture_file`: it was never written, so its pages always equal the file's bytes,
        // and dropping them only makes the next access fault them in again from the same file.
        // No reference into the range sees different bytes afterwards. The range was checked to
        // lie within the mapping just above.
        unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) }
    }
}
