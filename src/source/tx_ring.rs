//! A TPACKET_V2 transmit ring with qdisc bypass, without unsafe code (the system calls are in
//! [`super::ring::sys`]): the sending half of `netpipe-fast replay`.
//!
//! [`TxRing::queue`] copies a frame into the next free slot and marks it for sending;
//! [`TxRing::flush`] makes the kernel send everything marked, in order, and waits until it
//! has. Frames are checked against the interface first, as the kernel would check them
//! (`tpacket_snd`): shorter than an Ethernet header, or longer than the MTU allows (4 bytes
//! more for an 802.1Q-tagged frame), they are counted and not sent, so the kernel log is not
//! flooded with "packet size is too long". Should the kernel still refuse one (it marks it
//! TP_STATUS_WRONG_FORMAT and stops there, leaving its ring head on that frame), the refusal
//! is counted, and the frames queued after it are moved back by one slot so the ring goes on
//! in order.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use super::ring::abi::{TpacketReq, TP_STATUS_WRONG_FORMAT};
use super::ring::tx::TxSocket;
use super::ring::{self, open_checked_socket, RingError};

/// `ETH_HLEN`: the kernel refuses anything shorter (`dev_validate_header`).
const ETH_HEADER_BYTES: usize = 14;
const VLAN_HEADER_BYTES: usize = 4;
const TPID_8021Q: u16 = 0x8100;
/// Ring memory; at 2 KiB per slot (MTU 1500) that is 2048 frames.
const RING_BYTES: usize = 4 << 20;
/// Fewest frames a ring gets whatever the slot size.
const MIN_FRAMES: usize = 64;
/// How long a congested interface (ENOBUFS) is retried before giving up.
const CONGESTION_MAX: Duration = Duration::from_secs(5);
/// How long to wait for a slot the kernel is still sending from.
const SLOT_WAIT_MAX: Duration = Duration::from_secs(5);

/// Why a frame was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotSent {
    /// Shorter than an Ethernet header.
    TooShort,
    /// Longer than the interface's MTU allows.
    TooLong,
}

/// Running totals of a ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Frames the kernel sent.
    pub sent_frames: u64,
    /// Their bytes (the frames as queued, Ethernet header included, no FCS).
    pub sent_bytes: u64,
    /// Frames the kernel refused (TP_STATUS_WRONG_FORMAT).
    pub rejected_by_kernel: u64,
    /// Frames shorter than an Ethernet header, not sent.
    pub too_short: u64,
    /// Frames longer than the interface MTU allows, not sent.
    pub too_long: u64,
    /// Times `send(2)` found the interface congested (ENOBUFS) and was tried again.
    pub congestion_retries: u64,
    /// `send(2)` calls.
    pub kicks: u64,
}

/// A transmit ring bound to one interface.
#[derive(Debug)]
pub struct TxRing {
    sock: TxSocket,
    iface: String,
    mtu: u32,
    /// Next slot to fill.
    cursor: usize,
    /// Slots marked for sending since the last successful flush, oldest first, with their
    /// frame lengths.
    pending: VecDeque<(usize, usize)>,
    stats: TxStats,
}

impl TxRing {
    /// Opens a TX ring on `iface` (in the calling thread's network namespace), with slots
    /// large enough for the interface's MTU.
    pub fn open(iface: &str) -> Result<TxRing, RingError> {
        let (probe, ifindex) = open_checked_socket(iface, "only Ethernet frames can be sent")?;
        let mtu = ring::iface::interface_mtu(&probe, iface)
            .map_err(|e| RingError::sys(iface, "reading the MTU", e))?;
        drop(probe);
        let req = tx_geometry(mtu, ring::sys::page_size());
        let sock = ring::tx::open_tx_socket(&req, ifindex).map_err(|e| {
            RingError::sys(
                iface,
                "setting up the TX ring (TPACKET_V2, PACKET_QDISC_BYPASS, PACKET_TX_RING, mmap, bind)",
                e,
            )
        })?;
        Ok(TxRing {
            sock,
            iface: iface.to_owned(),
            mtu,
            cursor: 0,
            pending: VecDeque::new(),
            stats: TxStats::default(),
        })
    }

    /// The interface name.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The interface MTU.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Slots in the ring.
    pub fn frame_count(&self) -> usize {
        self.sock.frame_count()
    }

    /// Frames queued and not yet flushed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// What the ring has done so far.
    pub fn stats(&self) -> TxStats {
        self.stats
    }

    /// Queues one frame for sending (flushing first when the ring is full). `Ok(Err(_))`:
    /// the frame breaks the interface's limits; it is counted and not sent. `Err`: the
    /// socket failed.
    pub fn queue(&mut self, frame: &[u8]) -> io::Result<Result<(), NotSent>> {
        if let Err(why) = check_frame(frame, self.mtu) {
            match why {
                NotSent::TooShort => self.stats.too_short += 1,
                NotSent::TooLong => self.stats.too_long += 1,
            }
            return Ok(Err(why));
        }
        if self.pending.len() >= self.sock.frame_count() {
            self.flush()?;
        }
        self.fill(frame)?;
        Ok(Ok(()))
    }

    /// Puts `frame` (already checked) in the slot at the cursor, waiting for the kernel to
    /// finish with that slot if it has not yet.
    fn fill(&mut self, frame: &[u8]) -> io::Result<()> {
        let mut waited_since = None;
        while !self.sock.fill_frame(self.cursor, frame) {
            // The slot is still being sent (after an error return the kernel may not have
            // freed every packet yet), or the frame does not fit (checked before: cannot).
            if frame.len() > self.sock.frame_capacity_bytes() {
                return Err(io::Error::from(io::ErrorKind::InvalidInput));
            }
            let since = *waited_since.get_or_insert_with(Instant::now);
            if since.elapsed() > SLOT_WAIT_MAX {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the kernel did not give a TX ring slot back",
                ));
            }
            std::thread::yield_now();
        }
        self.pending.push_back((self.cursor, frame.len()));
        self.cursor = (self.cursor + 1) % self.sock.frame_count();
        Ok(())
    }

    /// Sends everything queued and waits until it is sent. Kernel refusals are counted and
    /// skipped; congestion (ENOBUFS) is retried for a while; any other error is returned
    /// (ENETDOWN, ENXIO: the interface went down or away).
    pub fn flush(&mut self) -> io::Result<()> {
        let mut congested_since: Option<Instant> = None;
        while !self.pending.is_empty() {
            self.stats.kicks += 1;
            let err = match self.sock.send_all() {
                Ok(_) => {
                    // A blocking send returns once every requested frame was sent.
                    for (_, len) in self.pending.drain(..) {
                        self.stats.sent_frames += 1;
                        self.stats.sent_bytes += len as u64;
                    }
                    return Ok(());
                }
                Err(e) => e,
            };
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) => {
                    let since = *congested_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > CONGESTION_MAX {
                        return Err(err);
                    }
                    self.stats.congestion_retries += 1;
                    std::thread::sleep(Duration::from_micros(100));
                    continue;
                }
                _ => {}
            }
            let refused = self.pending.iter().position(|&(slot, _)| {
                self.sock.frame_status(slot) == Some(TP_STATUS_WRONG_FORMAT)
            });
            let Some(at) = refused else {
                return Err(err);
            };
            self.skip_refused(at)?;
        }
        Ok(())
    }

    /// The kernel refused `pending[at]` and stopped there: the frames before it were sent,
    /// the ones after it were not taken. Count the refusal and queue those again, starting
    /// in the refused frame's slot, where the kernel's head now is.
    fn skip_refused(&mut self, at: usize) -> io::Result<()> {
        for (_, len) in self.pending.drain(..at) {
            self.stats.sent_frames += 1;
            self.stats.sent_bytes += len as u64;
        }
        self.stats.rejected_by_kernel += 1;
        let Some((refused_slot, _)) = self.pending.pop_front() else {
            return Ok(());
        };
        let again: Vec<Vec<u8>> = self
            .pending
            .iter()
            .map(|&(slot, len)| {
                self.sock
                    .frame_bytes(slot, len)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| io::Error::other("a queued TX frame was taken by the kernel"))
            })
            .collect::<io::Result<_>>()?;
        self.sock.reclaim_frame(refused_slot);
        for (slot, _) in self.pending.drain(..) {
            self.sock.reclaim_frame(slot);
        }
        self.cursor = refused_slot;
        for frame in &again {
            self.fill(frame)?;
        }
        Ok(())
    }
}

/// Whether the kernel would take `frame` on an interface with this MTU (`tpacket_snd`: at
/// least the hard header; at most MTU + header, or 4 bytes more when 802.1Q-tagged).
pub fn check_frame(frame: &[u8], mtu: u32) -> Result<(), NotSent> {
    if frame.len() < ETH_HEADER_BYTES {
        return Err(NotSent::TooShort);
    }
    let plain_max = mtu as usize + ETH_HEADER_BYTES;
    let tagged = frame.get(12..14) == Some(&TPID_8021Q.to_be_bytes()[..]);
    let max = if tagged {
        plain_max + VLAN_HEADER_BYTES
    } else {
        plain_max
    };
    if frame.len() > max {
        return Err(NotSent::TooLong);
    }
    Ok(())
}

/// Ring geometry for an interface MTU: a slot holds the header area and the longest frame
/// the kernel would send (MTU + Ethernet header + one VLAN tag), rounded up to a power of
/// two (at least 2 KiB); blocks are whole pages holding whole slots; about `RING_BYTES`
/// in all, at least `MIN_FRAMES` slots.
pub fn tx_geometry(mtu: u32, page_bytes: usize) -> TpacketReq {
    let need = ring::abi::TX_DATA_OFFSET + mtu as usize + ETH_HEADER_BYTES + VLAN_HEADER_BYTES;
    let frame_bytes = need.next_power_of_two().max(2048);
    let block_bytes = frame_bytes.max(page_bytes).next_multiple_of(page_bytes);
    let frames_per_block = block_bytes / frame_bytes;
    let blocks = (RING_BYTES / block_bytes)
        .max(MIN_FRAMES.div_ceil(frames_per_block))
        .max(1);
    TpacketReq {
        tp_block_size: block_bytes as u32,
        tp_block_nr: blocks as u32,
        tp_frame_size: frame_bytes as u32,
        tp_frame_nr: (blocks * frames_per_block) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_checked_like_the_kernel_does() {
        let mut f = vec![0u8; 1514];
        assert_eq!(check_frame(&f, 1500), Ok(()));
        f.push(0);
        assert_eq!(check_frame(&f, 1500), Err(NotSent::TooLong));
        // An 802.1Q frame may be 4 bytes longer.
        f[12..14].copy_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&[0; 3]);
        assert_eq!(check_frame(&f, 1500), Ok(()));
        f.push(0);
        assert_eq!(check_frame(&f, 1500), Err(NotSent::TooLong));
        assert_eq!(check_frame(&[0u8; 13], 1500), Err(NotSent::TooShort));
        assert_eq!(check_frame(&[0u8; 14], 1500), Ok(()));
        assert_eq!(check_frame(&[], 1500), Err(NotSent::TooShort));
    }

    #[test]
    fn geometry_fits_the_mtu() {
        let g = tx_geometry(1500, 4096);
        assert_eq!((g.tp_frame_size, g.tp_block_size), (2048, 4096));
        assert_eq!(g.tp_frame_nr, g.tp_block_nr * 2);
        assert_eq!(g.tp_block_nr as usize * 4096, RING_BYTES);
        // Jumbo and loopback MTUs get bigger slots, still whole slots per block.
        for mtu in [9000u32, 65_536, 1 << 20] {
            let g = tx_geometry(mtu, 4096);
            assert!(g.tp_frame_size as usize >= 32 + mtu as usize + 18, "{g:?}");
            assert_eq!(g.tp_block_size % 4096, 0);
            assert_eq!(g.tp_block_size % g.tp_frame_size, 0);
            assert!(g.tp_frame_nr as usize >= MIN_FRAMES, "{g:?}");
            assert_eq!(
                g.tp_frame_nr,
                g.tp_block_nr * (g.tp_block_size / g.tp_frame_size)
            );
        }
    }
}
