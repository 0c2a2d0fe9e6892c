//! The kernel's packet-ring ABI: constants and `#[repr(C)]` mirrors of the structures in
//! `include/uapi/linux/if_packet.h` (TPACKET_V3 for the receive ring, TPACKET_V2 for the
//! transmit ring), `if_ether.h`, `if_arp.h` and `net/if.h`. Sizes and offsets are checked
//! against hand-worked values and the `libc` crate by the tests below.
//!
//! Plain data only: nothing here touches the kernel (see [`super::sys`]).

use std::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

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
/// itself, uncounted (see `FanoutMode::type_flags` in ring/mod.rs). Kept to check that
/// nothing sets it.
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, IntoBytes, Immutable)]
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
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
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
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
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
#[derive(Clone, Copy, Debug, Default, IntoBytes, Immutable)]
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

/// `struct ifreq` (`net/if.h`, 40 bytes) as plain bytes: the NUL-terminated interface name,
/// then the 24-byte union, which the `SIOCGIF*` requests of [`super::iface`] read as the
/// member they fill (`ifr_flags`, `ifr_mtu`, `ifr_hwaddr`, `ifr_addr`). Our own mirror, so no
/// union is ever read.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Ifreq {
    /// Interface name, NUL-terminated.
    pub name: [u8; libc::IFNAMSIZ],
    /// The union's bytes, in native byte order where the member is a number.
    pub data: [u8; IFREQ_DATA_BYTES],
}

/// Bytes of the union in a `struct ifreq`.
pub const IFREQ_DATA_BYTES: usize = 24;

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
pub const TP_LEN_OFFSET: usize = 4;

/// `struct tpacket_req`: the geometry of a TPACKET_V1/V2 ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, IntoBytes, Immutable)]
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
        assert_eq!(size_of::<Ifreq>(), size_of::<libc::ifreq>());
        assert_eq!(offset_of!(Ifreq, data), libc::IFNAMSIZ);
    }

    #[test]
    fn tx_ring_layout() {
        assert_eq!(size_of::<Tpacket2Hdr>(), 32);
        assert_eq!(offset_of!(Tpacket2Hdr, tp_len), TP_LEN_OFFSET);
        assert_eq!(offset_of!(Tpacket2Hdr, tp_sec), 16);
        assert_eq!(offset_of!(Tpacket2Hdr, tp_vlan_tci), 24);
        assert_eq!(size_of::<Tpacket2Hdr>(), size_of::<libc::tpacket2_hdr>());
        assert_eq!(size_of::<TpacketReq>(), size_of::<libc::tpacket_req>());
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
}
