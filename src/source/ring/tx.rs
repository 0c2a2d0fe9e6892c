//! The TPACKET_V2 transmit ring's socket (used by `replay`): its set-up calls in the order
//! the kernel needs, and the [`TxSocket`] that owns the mapped ring. No unsafe code: the
//! system calls and the frame slots shared with the kernel are in [`super::sys`].
//!
//! Kernel reference: packet_mmap.rst, "TX_RING", and `tpacket_snd` in
//! net/packet/af_packet.c (the frame protocol is summed up in [`super::abi`]).

use std::io;
use std::os::fd::OwnedFd;

use super::abi::{
    TpacketReq, PACKET_QDISC_BYPASS, PACKET_TX_RING, PACKET_VERSION, SOL_PACKET, TPACKET_V2,
};
use super::sys::{self, TxFrames};

/// `PACKET_VERSION = TPACKET_V2`.
pub fn set_tpacket_v2(fd: &OwnedFd) -> io::Result<()> {
    sys::setsockopt_value(fd, SOL_PACKET, PACKET_VERSION, &TPACKET_V2)
}

/// `PACKET_QDISC_BYPASS = 1`: frames go straight to the driver, skipping the qdisc layer
/// (and its queueing and drops), as netsniff-ng's trafgen does.
pub fn set_qdisc_bypass(fd: &OwnedFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    sys::setsockopt_value(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one)
}

fn set_tx_ring(fd: &OwnedFd, req: &TpacketReq) -> io::Result<()> {
    sys::setsockopt_value(fd, SOL_PACKET, PACKET_TX_RING, req)
}

/// A TPACKET_V2 packet socket with a mapped TX ring. The mapping goes before the socket is
/// closed (field order).
#[derive(Debug)]
pub struct TxSocket {
    map: Option<TxFrames>,
    fd: OwnedFd,
}

impl TxSocket {
    /// A transmit socket with no ring mapped yet.
    pub fn new(fd: OwnedFd) -> TxSocket {
        TxSocket { map: None, fd }
    }

    /// The socket.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Frames in the ring (0 before [`TxSocket::map_ring`]).
    pub fn frame_count(&self) -> usize {
        self.map.as_ref().map_or(0, TxFrames::frame_count)
    }

    /// The largest frame a slot holds (0 before [`TxSocket::map_ring`]).
    pub fn frame_capacity_bytes(&self) -> usize {
        self.map.as_ref().map_or(0, TxFrames::capacity_bytes)
    }

    /// Asks the kernel for a TX ring of `req` and maps it. `tp_block_size` must be a multiple
    /// of the page size, `tp_frame_size` a multiple of 16 that divides it, and
    /// `tp_frame_nr` exactly the frames the blocks hold. On failure no ring is left.
    pub fn map_ring(&mut self, req: &TpacketReq) -> io::Result<()> {
        let block_bytes = req.tp_block_size as usize;
        let block_count = req.tp_block_nr as usize;
        let frame_bytes = req.tp_frame_size as usize;
        let frame_count = req.tp_frame_nr as usize;
        if self.map.is_some()
            || !TxFrames::geometry_ok(block_bytes, block_count, frame_bytes, frame_count)
        {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        set_tx_ring(&self.fd, req)?;
        self.map = Some(TxFrames::map(
            &self.fd,
            block_bytes,
            block_count,
            frame_bytes,
            frame_count,
            || {
                let _ = set_tx_ring(&self.fd, &TpacketReq::default());
            },
        )?);
        Ok(())
    }

    /// The status of frame `index` (Acquire: when it reads AVAILABLE, the kernel is done
    /// with the frame, timestamp words included). `None` without a ring or out of range.
    pub fn frame_status(&self, index: usize) -> Option<u32> {
        self.map.as_ref()?.status(index)
    }

    /// Copies `bytes` into frame `index` and requests its transmission. Returns false, and
    /// changes nothing, when the frame is not ours (the kernel still has it), `bytes` do not
    /// fit the slot, or `index` is out of range.
    pub fn fill_frame(&mut self, index: usize, bytes: &[u8]) -> bool {
        self.map.as_mut().is_some_and(|m| m.fill(index, bytes))
    }

    /// The bytes last put in frame `index` (`len` of them), while the frame is not in the
    /// kernel's hands for sending (status SEND_REQUEST not yet taken, WRONG_FORMAT or
    /// AVAILABLE). `None` otherwise.
    pub fn frame_bytes(&self, index: usize, len: usize) -> Option<&[u8]> {
        self.map.as_ref()?.data(index, len)
    }

    /// Takes back a frame whose transmission was requested but that the kernel never took
    /// (or refused): SEND_REQUEST or WRONG_FORMAT becomes AVAILABLE. Only meaningful
    /// between sends: the kernel looks at requested frames only inside `send(2)`, which only
    /// [`TxSocket::send_all`] calls, with `&mut self`. Returns false for any other status.
    pub fn reclaim_frame(&mut self, index: usize) -> bool {
        self.map.as_mut().is_some_and(|m| m.reclaim(index))
    }

    /// Transmits every requested frame and waits until they are all sent (blocking
    /// `send(2)`); the bytes the kernel accepted. An error leaves the refused frame (if any)
    /// marked WRONG_FORMAT.
    pub fn send_all(&mut self) -> io::Result<usize> {
        sys::kick_tx(&self.fd, 0)
    }

    /// Binds for transmit only: protocol 0, so the socket receives nothing (not even the
    /// frames it sends itself), and the kernel sends on `ifindex`.
    pub fn bind(&self, ifindex: u32) -> io::Result<()> {
        sys::bind_packet(&self.fd, ifindex, 0)
    }
}

/// Sets up a TX socket as `replay` wants it, in the order the kernel needs: TPACKET_V2,
/// qdisc bypass, the ring, then `bind`.
pub fn open_tx_socket(req: &TpacketReq, ifindex: u32) -> io::Result<TxSocket> {
    let fd = sys::open_packet_socket()?;
    set_tpacket_v2(&fd)?;
    set_qdisc_bypass(&fd)?;
    let mut sock = TxSocket::new(fd);
    sock.map_ring(req)?;
    sock.bind(ifindex)?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_ring_geometry_is_checked_before_the_kernel_sees_it() {
        let fd = OwnedFd::from(std::fs::File::open("/dev/null").expect("/dev/null"));
        let mut sock = TxSocket::new(fd);
        let page = sys::page_size() as u32;
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
        assert_eq!(sock.frame_capacity_bytes(), 0);
    }
}
