//! The TPACKET_V3 receive ring's socket: its set-up calls, the [`PacketSocket`] that owns the
//! mapped ring and walks it block by block, and the bounds-checked walk over one retired
//! block ([`walk_block`]). No unsafe code: the system calls and the shared memory are in
//! [`super::sys`].
//!
//! Every offset and length the kernel writes into a block is untrusted: [`walk_block`]
//! checks each one against the block and ends the walk, reporting why, at the first bad one.

use std::io;
use std::mem::size_of;
use std::os::fd::OwnedFd;
use std::time::Duration;

use zerocopy::FromBytes;

use super::abi::{
    PacketMreq, SockaddrLl, Tpacket3Hdr, TpacketBlockDesc, TpacketReq3, TpacketStatsV3, ETH_P_ALL,
    PACKET_ADD_MEMBERSHIP, PACKET_FANOUT, PACKET_MR_PROMISC, PACKET_RX_RING, PACKET_STATISTICS,
    PACKET_VERSION, SOL_PACKET, TPACKET_V3,
};
use super::sys::{self, RxBlocks};

// ---- socket set-up ----

/// `PACKET_VERSION = TPACKET_V3`.
pub fn set_tpacket_v3(fd: &OwnedFd) -> io::Result<()> {
    sys::setsockopt_value(fd, SOL_PACKET, PACKET_VERSION, &TPACKET_V3)
}

/// `PACKET_RX_RING` with `req` (a zeroed `req` releases the ring).
pub fn set_rx_ring(fd: &OwnedFd, req: &TpacketReq3) -> io::Result<()> {
    sys::setsockopt_value(fd, SOL_PACKET, PACKET_RX_RING, req)
}

/// `bind(2)` to one interface for `ETH_P_ALL`; from here on frames arrive.
pub fn bind_interface(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
    sys::bind_packet(fd, ifindex, ETH_P_ALL.to_be())
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
    sys::setsockopt_value(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq)
}

/// `PACKET_FANOUT`: joins group `group_id` with `type_flags` (mode | flags). Needs a bound
/// socket.
pub fn join_fanout(fd: &OwnedFd, group_id: u16, type_flags: u16) -> io::Result<()> {
    let arg: u32 = u32::from(group_id) | (u32::from(type_flags) << 16);
    sys::setsockopt_value(fd, SOL_PACKET, PACKET_FANOUT, &arg)
}

/// Reads (and thereby resets) the kernel's counters: `PACKET_STATISTICS`.
pub fn read_statistics(fd: &OwnedFd) -> io::Result<TpacketStatsV3> {
    sys::getsockopt_value(fd, SOL_PACKET, PACKET_STATISTICS)
}

/// Takes the socket's pending error (`SO_ERROR`), e.g. ENETDOWN when the interface went
/// down or away.
pub fn take_socket_error(fd: &OwnedFd) -> io::Result<Option<io::Error>> {
    let value: libc::c_int = sys::getsockopt_value(fd, libc::SOL_SOCKET, libc::SO_ERROR)?;
    Ok((value != 0).then(|| io::Error::from_raw_os_error(value)))
}

/// Reads and discards whatever sits in the socket's ordinary receive queue (frames queued
/// before the ring existed), without blocking. Returns how many were discarded. Bounded, so a
/// busy interface cannot keep it going.
pub fn drain_receive_queue(fd: &OwnedFd) -> usize {
    let mut buf = [0u8; 64];
    let mut drained = 0;
    while drained < 1_000_000 {
        match sys::recv(fd, &mut buf, libc::MSG_DONTWAIT | libc::MSG_TRUNC) {
            Ok(_) => drained += 1,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
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
    let ms = timeout.as_micros().div_ceil(1000);
    let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
    let revents = match sys::poll_one(fd, libc::POLLIN | libc::POLLERR, ms) {
        Ok(revents) => revents,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(PollOutcome::Interrupted),
        Err(e) => return Err(e),
    };
    if revents == 0 {
        return Ok(PollOutcome::TimedOut);
    }
    if revents & libc::POLLERR != 0 {
        return Ok(PollOutcome::Error);
    }
    Ok(PollOutcome::Readable)
}

// ---- the socket with its ring ----

/// A TPACKET_V3 packet socket with its ring: the socket, the mapping, and which block is
/// next. Fields drop in order: the mapping goes before the socket is closed.
#[derive(Debug)]
pub struct PacketSocket {
    map: Option<RxBlocks>,
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
        if self.map.is_some() || !RxBlocks::geometry_ok(block_bytes, block_count) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        set_rx_ring(&self.fd, req)?;
        self.map = Some(RxBlocks::map(&self.fd, block_bytes, block_count, || {
            let _ = set_rx_ring(&self.fd, &TpacketReq3::default());
        })?);
        self.next_block = 0;
        Ok(())
    }

    /// If the next block has been handed to user space, lends its bytes to `f`, then hands
    /// the block back to the kernel (even if `f` panics) and moves on to the following block.
    /// `None` when the next block is still the kernel's (or there is no ring).
    pub fn with_next_block<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let index = self.next_block;
        let map = self.map.as_mut()?;
        let next = (index + 1) % map.block_count();
        let next_block = &mut self.next_block;
        map.with_user_block(index, |block| {
            *next_block = next;
            f(block)
        })
    }

    /// Ring geometry `(block_bytes, block_count)`, when mapped.
    pub fn geometry(&self) -> Option<(usize, usize)> {
        self.map
            .as_ref()
            .map(|m| (m.block_bytes(), m.block_count()))
    }

    /// Blocks the kernel has filled and handed to user space that we have not given back
    /// yet: how full the ring is (`--metrics`). One Acquire load per block; called now and
    /// then by the ring's own worker, never per packet.
    pub fn blocks_with_user(&self) -> usize {
        let Some(map) = self.map.as_ref() else {
            return 0;
        };
        (0..map.block_count()).filter(|&i| map.is_user(i)).count()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ring::abi::TP_STATUS_USER;

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
