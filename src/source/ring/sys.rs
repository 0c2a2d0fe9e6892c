//! The system calls behind the packet rings, and the memory the kernel shares with us; also
//! the mapping of capture files (and the prefetch hint its reader gives the CPU) and
//! libpcap's compile functions, opened on first use (their own sections below). This is the
//! only module of the crate where `unsafe` is allowed; everything here is a small
//! primitive with a safe signature, and the safe logic built on it lives in the sibling
//! modules ([`super::rx`], [`super::tx`], [`super::iface`]).
//!
//! References: the kernel's `Documentation/networking/packet_mmap.rst` (TPACKET_V3 blocks,
//! `tpacket_req3`, block ownership through `block_status`; the TX ring's frame status),
//! `include/uapi/linux/if_packet.h` (mirrored in [`super::abi`]) and `packet(7)`.
//!
//! Rules kept here (the project's rules for unsafe code):
//! - each `unsafe {}` block holds one operation and says in a `// SAFETY:` comment why it is
//!   sound;
//! - sockets are [`OwnedFd`]s, a ring's mapping is unmapped when it drops;
//! - a block's or frame's status word is read with an Acquire load and handed back with a
//!   Release store through an `&AtomicU32`; ring memory is borrowed (shared for RX, exclusive
//!   for the part of a TX frame the kernel does not touch) only while the status word says it
//!   is ours, and only until the Release store. Which memory is ours is decided here, from the
//!   status words and the geometry checked here, so no safe caller can break it;
//! - values handed to the kernel are `IntoBytes + Immutable` (no padding, every byte
//!   initialised), values it fills are `FromBytes` (any bytes are a valid value), and
//!   `ioctl(2)` is only reachable with the `SIOCGIF*` requests that fill a `struct ifreq`.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::abi::{
    Ifreq, SockaddrLl, BLOCK_STATUS_OFFSET, TPACKET_ALIGNMENT, TP_LEN_OFFSET, TP_STATUS_AVAILABLE,
    TP_STATUS_KERNEL, TP_STATUS_SENDING, TP_STATUS_SEND_REQUEST, TP_STATUS_USER,
    TP_STATUS_WRONG_FORMAT, TX_DATA_OFFSET,
};
use crate::source::filter::BpfInsn;

// ---- sockets and socket options ----

/// Opens `socket(AF_PACKET, SOCK_RAW, 0)` (close-on-exec).
///
/// Protocol 0 on purpose: a packet socket created with `htons(ETH_P_ALL)` is hooked into
/// every interface of the namespace at once, so frames of all interfaces would queue up
/// before the filter is attached and before `bind` narrows it to one interface (libpcap then
/// drains them). With protocol 0 the socket receives nothing until
/// [`super::rx::bind_interface`] names both the interface and `ETH_P_ALL`, which happens
/// after the filter and the ring are in place (`packet(7)`: "If protocol is set to zero, no
/// packets are received").
pub fn open_packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; any return value is checked below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2), is open, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(fd, level, name, value, size_of::<T>())`. `T: IntoBytes + Immutable`: no
/// padding, so every byte the kernel copies is initialised.
pub fn setsockopt_value<T: IntoBytes + Immutable>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let bytes = value.as_bytes();
    let len = libc::socklen_t::try_from(bytes.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let ptr: *const libc::c_void = bytes.as_ptr().cast();
    // SAFETY: `ptr` points at `len` readable, initialised bytes (a live borrow of `value`)
    // for the whole call; the kernel only copies from it and keeps no pointer to it.
    let rc = unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, ptr, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `getsockopt(fd, level, name)` into a zeroed `T` (any bytes the kernel writes are a valid
/// `T`: `FromBytes`).
pub fn getsockopt_value<T: FromBytes + IntoBytes>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut value = T::new_zeroed();
    let bytes = value.as_mut_bytes();
    let mut len = libc::socklen_t::try_from(bytes.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let ptr: *mut libc::c_void = bytes.as_mut_ptr().cast();
    // SAFETY: `ptr` is a live, exclusive buffer of `len` bytes and `len` a live `socklen_t`;
    // the kernel writes at most `len` bytes there (any bit pattern is a valid `T`) and
    // updates `len`.
    let rc = unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, ptr, &mut len) };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
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
    let ptr: *const libc::c_void = (&prog as *const SockFprog).cast();
    let size = size_of::<SockFprog>() as libc::socklen_t;
    // SAFETY: `ptr` is a live, fully initialised `sock_fprog` (explicit padding) of `size`
    // bytes; the kernel copies it and then reads `len` instructions through `filter`, which
    // point into `insns`, borrowed for the whole call. It keeps no pointer to either.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            ptr,
            size,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `bind(2)` to interface `ifindex` for `protocol_be` (network byte order; 0: receive
/// nothing).
pub fn bind_packet(fd: &OwnedFd, ifindex: u32, protocol_be: u16) -> io::Result<()> {
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

/// `recv(2)` into `buf` with `flags`; the length the kernel returns (with `MSG_TRUNC`, the
/// packet's real length, which may exceed `buf.len()`).
pub fn recv(fd: &OwnedFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    let ptr: *mut libc::c_void = buf.as_mut_ptr().cast();
    // SAFETY: `ptr` is a live, exclusive buffer of `buf.len()` bytes for the call; recv(2)
    // writes at most that many (MSG_TRUNC only changes the return value).
    let n = unsafe { libc::recv(fd.as_raw_fd(), ptr, buf.len(), flags) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `poll(2)` on one descriptor for `events`, waiting up to `timeout_ms` milliseconds: the
/// `revents` the kernel reported (0 when the timeout passed).
pub fn poll_one(
    fd: &OwnedFd,
    events: libc::c_short,
    timeout_ms: libc::c_int,
) -> io::Result<libc::c_short> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: `&mut pfd` is one live, exclusive `pollfd` and nfds is 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if rc == 0 { 0 } else { pfd.revents })
}

/// `send(fd, NULL, 0, flags)`: asks the kernel to transmit every requested frame of the TX
/// ring. Without `MSG_DONTWAIT` it returns once they are all sent (their packets freed).
/// Returns the bytes the kernel accepted.
pub fn kick_tx(fd: &OwnedFd, flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: a NULL buffer of length 0 is never dereferenced; with a TX ring the kernel
    // takes the frames from the ring, which belongs to the kernel as much as to us.
    let n = unsafe { libc::send(fd.as_raw_fd(), std::ptr::null(), 0, flags) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `sysconf(_SC_PAGESIZE)`; 4096 if the system will not say.
pub fn page_size() -> usize {
    // SAFETY: sysconf(3) takes no pointers and has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(v).ok().filter(|&v| v > 0).unwrap_or(4096)
}

// ---- interfaces ----

/// `if_nametoindex(3)` in the calling thread's network namespace.
pub fn if_nametoindex(name: &CStr) -> io::Result<u32> {
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call, which only
    // reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(index)
    }
}

/// The `ioctl(2)` requests [`ioctl_ifreq`] may make: each reads the name of a
/// `struct ifreq` and fills one member of its union, nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfreqRequest {
    /// `SIOCGIFFLAGS`: `ifr_flags` (a `short`).
    Flags,
    /// `SIOCGIFHWADDR`: `ifr_hwaddr` (a `struct sockaddr` whose family is the ARPHRD_* type).
    HardwareAddress,
    /// `SIOCGIFADDR`: `ifr_addr` (a `struct sockaddr_in`).
    Ipv4Address,
    /// `SIOCGIFMTU`: `ifr_mtu` (an `int`).
    Mtu,
}

impl IfreqRequest {
    fn number(self) -> libc::Ioctl {
        match self {
            IfreqRequest::Flags => libc::SIOCGIFFLAGS,
            IfreqRequest::HardwareAddress => libc::SIOCGIFHWADDR,
            IfreqRequest::Ipv4Address => libc::SIOCGIFADDR,
            IfreqRequest::Mtu => libc::SIOCGIFMTU,
        }
    }
}

/// `ioctl(fd, request, req)`, asked through `fd`'s network namespace.
pub fn ioctl_ifreq(fd: &OwnedFd, request: IfreqRequest, req: &mut Ifreq) -> io::Result<()> {
    let ptr: *mut Ifreq = req;
    // SAFETY: `ptr` is a live, exclusive, 40-byte `struct ifreq` (size checked in abi's
    // tests); every `IfreqRequest` reads its name (the kernel terminates it itself) and
    // writes at most the 24-byte union inside it, and none reads a pointer from it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request.number(), ptr) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

// ---- the mapped rings ----

/// A packet ring (`PACKET_RX_RING` or `PACKET_TX_RING`) mapped into our address space:
/// `block_count` blocks of `block_bytes`, shared with the kernel. Unmapped on drop. Its bytes
/// are reachable only through [`RxBlocks`] or [`TxFrames`], which know who owns what.
#[derive(Debug)]
struct Mapping {
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
        if !Mapping::geometry_ok(block_bytes, block_count) {
            release();
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
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

    /// The 4-byte word at byte `at` of the mapping as an atomic, or `None` when it is not a
    /// whole, aligned word inside the mapping. Private: only the status words of blocks and
    /// frames are read this way, and they are never borrowed any other way while a store
    /// through the atomic can happen.
    fn word(&self, at: usize) -> Option<&AtomicU32> {
        if at % 4 != 0 || at.checked_add(4).filter(|&end| end <= self.len()).is_none() {
            return None;
        }
        let word: *mut u32 = self.ptr.as_ptr().wrapping_add(at).cast();
        // SAFETY: `at + 4 <= len`, so the word lies inside the live mapping, which outlives
        // the returned borrow of `self`. It is 4-byte aligned: mmap returns page-aligned
        // memory and `at` is a multiple of 4. The kernel writes these words concurrently
        // (with barriers around them); this process only ever touches them through atomics
        // (callers in this module guarantee that no `&mut` covers the word).
        Some(unsafe { AtomicU32::from_ptr(word) })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; no reference into the mapping
        // outlives `self` (every borrow handed out is tied to a borrow of the ring that owns
        // this mapping), so nothing can touch it after this.
        let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len()) };
        debug_assert_eq!(rc, 0, "munmap of the ring failed");
    }
}

/// A mapped TPACKET_V3 receive ring: blocks the kernel fills and hands to user space one at
/// a time through each block's status word.
#[derive(Debug)]
pub struct RxBlocks {
    map: Mapping,
}

impl RxBlocks {
    /// Whether `block_count` blocks of `block_bytes` can be mapped as a ring: a non-zero
    /// number of non-zero, page-sized blocks whose total fits a `usize`.
    pub fn geometry_ok(block_bytes: usize, block_count: usize) -> bool {
        Mapping::geometry_ok(block_bytes, block_count)
    }

    /// Maps the receive ring the kernel has just set up on `fd` (`PACKET_RX_RING`). On
    /// failure `release` is called to hand the kernel's blocks back.
    pub fn map(
        fd: &OwnedFd,
        block_bytes: usize,
        block_count: usize,
        release: impl FnOnce(),
    ) -> io::Result<RxBlocks> {
        Mapping::new(fd, block_bytes, block_count, release).map(|map| RxBlocks { map })
    }

    /// Bytes per block.
    pub fn block_bytes(&self) -> usize {
        self.map.block_bytes
    }

    /// Blocks in the ring.
    pub fn block_count(&self) -> usize {
        self.map.block_count
    }

    /// The status word of block `index`; `None` out of range.
    fn status_word(&self, index: usize) -> Option<&AtomicU32> {
        if index >= self.map.block_count {
            return None;
        }
        // Blocks are at least a page, so the word at offset 8 lies inside block `index`.
        self.map
            .word(index * self.map.block_bytes + BLOCK_STATUS_OFFSET)
    }

    /// Whether the kernel has handed block `index` to user space (Acquire load).
    pub fn is_user(&self, index: usize) -> bool {
        self.status_word(index)
            .is_some_and(|w| w.load(Ordering::Acquire) & TP_STATUS_USER != 0)
    }

    /// If block `index` has been handed to user space, lends its bytes to `f`, then hands
    /// the block back to the kernel (even if `f` panics). `None` when the block is still the
    /// kernel's (or `index` is out of range).
    pub fn with_user_block<R>(&mut self, index: usize, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let status = self.status_word(index)?;
        // Acquire pairs with the kernel's barrier before it sets TP_STATUS_USER: everything
        // it wrote into the block is visible after this load.
        if status.load(Ordering::Acquire) & TP_STATUS_USER == 0 {
            return None;
        }
        let block_bytes = self.map.block_bytes;
        let start: *const u8 = self.map.ptr.as_ptr().wrapping_add(index * block_bytes);

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
        // `&[u8]` of an anonymous lifetime). Nobody writes the block meanwhile: `&mut self`
        // keeps every other access to the ring out, we never make a `&mut` into an RX
        // mapping, and the status word is only loaded during the borrow.
        let block = unsafe { std::slice::from_raw_parts(start, block_bytes) };
        let r = f(block);
        drop(give_back);
        Some(r)
    }
}

/// A mapped TPACKET_V2 transmit ring: `frame_count` fixed-size frame slots, each owned by
/// user space or by the kernel as its status word says.
#[derive(Debug)]
pub struct TxFrames {
    map: Mapping,
    frame_bytes: usize,
    frames_per_block: usize,
    frame_count: usize,
}

impl TxFrames {
    /// Whether a TX ring of `block_count` blocks of `block_bytes`, cut into `frame_count`
    /// frames of `frame_bytes`, is one the kernel accepts and this module can index: page-
    /// sized blocks, frames larger than their header, multiples of 16 that divide a block,
    /// and exactly the frames the blocks hold.
    pub fn geometry_ok(
        block_bytes: usize,
        block_count: usize,
        frame_bytes: usize,
        frame_count: usize,
    ) -> bool {
        Mapping::geometry_ok(block_bytes, block_count)
            && frame_bytes > TX_DATA_OFFSET
            && frame_bytes % TPACKET_ALIGNMENT == 0
            && block_bytes % frame_bytes == 0
            && (block_bytes / frame_bytes).checked_mul(block_count) == Some(frame_count)
    }

    /// Maps the transmit ring the kernel has just set up on `fd` (`PACKET_TX_RING`), with a
    /// geometry [`TxFrames::geometry_ok`] accepts. On failure `release` is called to hand
    /// the kernel's blocks back.
    pub fn map(
        fd: &OwnedFd,
        block_bytes: usize,
        block_count: usize,
        frame_bytes: usize,
        frame_count: usize,
        release: impl FnOnce(),
    ) -> io::Result<TxFrames> {
        if !TxFrames::geometry_ok(block_bytes, block_count, frame_bytes, frame_count) {
            release();
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let map = Mapping::new(fd, block_bytes, block_count, release)?;
        Ok(TxFrames {
            map,
            frame_bytes,
            frames_per_block: block_bytes / frame_bytes,
            frame_count,
        })
    }

    /// Frames in the ring.
    pub fn frame_count(&self) -> usize {
        self.frame_count
    }

    /// The largest frame a slot holds.
    pub fn capacity_bytes(&self) -> usize {
        self.frame_bytes.saturating_sub(TX_DATA_OFFSET)
    }

    /// Byte offset of frame slot `index` inside the mapping, or `None` out of range. Frames
    /// never straddle blocks: block `i / per_block`, slot `i % per_block` in it, so the
    /// whole slot lies inside the mapping (geometry checked in [`TxFrames::map`]).
    fn frame_start(&self, index: usize) -> Option<usize> {
        if index >= self.frame_count || self.frames_per_block == 0 {
            return None;
        }
        Some(
            (index / self.frames_per_block) * self.map.block_bytes
                + (index % self.frames_per_block) * self.frame_bytes,
        )
    }

    /// The status word of frame `index` (its first word; 16-aligned).
    fn status_word(&self, index: usize) -> Option<&AtomicU32> {
        self.map.word(self.frame_start(index)?)
    }

    /// The status of frame `index` (Acquire: when it reads AVAILABLE, the kernel is done
    /// with the frame, timestamp words included).
    pub fn status(&self, index: usize) -> Option<u32> {
        self.status_word(index).map(|w| w.load(Ordering::Acquire))
    }

    /// Copies `bytes` into frame `index` and requests its transmission. Returns false, and
    /// changes nothing, when the frame is not ours (the kernel still has it), `bytes` do not
    /// fit the slot, or `index` is out of range.
    pub fn fill(&mut self, index: usize, bytes: &[u8]) -> bool {
        let Ok(len) = u32::try_from(bytes.len()) else {
            return false;
        };
        if bytes.len() > self.capacity_bytes() {
            return false;
        }
        let (Some(at), Some(status)) = (self.frame_start(index), self.status_word(index)) else {
            return false;
        };
        let owned = status.load(Ordering::Acquire);
        if owned != TP_STATUS_AVAILABLE && owned != TP_STATUS_WRONG_FORMAT {
            return false;
        }
        // Everything after the status word, up to the end of the slot.
        let body: *mut u8 = self.map.ptr.as_ptr().wrapping_add(at + TP_LEN_OFFSET);
        // SAFETY: `body .. body + frame_bytes - 4` lies inside frame `index`, inside the live
        // mapping (see `frame_start`), and does not include the status word, which stays
        // reachable only through its atomic. The frame is ours (status AVAILABLE or
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
    pub fn data(&self, index: usize, len: usize) -> Option<&[u8]> {
        let status = self.status(index)?;
        if status & TP_STATUS_SENDING != 0 || len > self.capacity_bytes() {
            return None;
        }
        let at = self.frame_start(index)?;
        let start: *const u8 = self.map.ptr.as_ptr().wrapping_add(at + TX_DATA_OFFSET);
        // SAFETY: `start .. start + len` lies inside frame `index`'s data area (len is within
        // the slot's capacity), inside the live mapping, which outlives the borrow of `self`.
        // The kernel never writes a frame's data area (it only reads it to build the packet);
        // we write it only in `fill`, which needs `&mut self`, so not while this borrow
        // lives.
        Some(unsafe { std::slice::from_raw_parts(start, len) })
    }

    /// Takes back a frame whose transmission was requested but that the kernel never took
    /// (or refused): SEND_REQUEST or WRONG_FORMAT becomes AVAILABLE. Only sound to call
    /// between sends: the kernel looks at requested frames only inside `send(2)`, which the
    /// owner of this ring calls with `&mut` access to it. Returns false for any other status.
    pub fn reclaim(&mut self, index: usize) -> bool {
        let Some(status) = self.status_word(index) else {
            return false;
        };
        let s = status.load(Ordering::Acquire);
        if s != TP_STATUS_SEND_REQUEST && s != TP_STATUS_WRONG_FORMAT {
            return false;
        }
        status.store(TP_STATUS_AVAILABLE, Ordering::Release);
        true
    }
}

// ==== File mapping ===============================================================================
//
// `read` maps regular capture files and decodes their records in place
// (src/source/pcap_file, `CaptureReader::open`). This section is separate from the ring primitives above:
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

/// Mapping capture files for the reader (kept apart from the ring primitives above; see the comment
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

    /// Bytes between two prefetched addresses: the cache line of x86-64 cores.
    pub const PREFETCH_STRIDE: usize = 64;

    /// Asks the CPU to bring `bytes[from..to]` into its caches (one prefetch instruction per
    /// [`PREFETCH_STRIDE`] bytes), so that later loads of it do not each wait for memory. The
    /// reader of a mapped capture file finds each record by the length in the record before
    /// it: without this, every record header is a load that waits for memory before the next
    /// can be found. Only a hint: nothing is read or faulted in, and it does nothing on other
    /// architectures than x86-64. The range is clipped to `bytes`.
    #[inline]
    pub fn prefetch(bytes: &[u8], from: usize, to: usize) {
        let Some(range) = bytes.get(from..to.min(bytes.len())) else {
            return;
        };
        #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
        for at in (0..range.len()).step_by(PREFETCH_STRIDE) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let line = range[at..].as_ptr().cast::<i8>();
            // SAFETY: `_mm_prefetch` is unsafe because it is a `#[target_feature(enable =
            // "sse")]` function taking a raw pointer. SSE is enabled in this build (the `cfg`
            // above checks it; it is part of the x86-64 baseline). PREFETCHT0 has no
            // architectural effect: it reads nothing into a register, writes nothing, and never
            // faults, even for an address that is not mapped, so no pointer could make it
            // unsound; `line` points into `range` all the same.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line) };
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
        let _ = range;
    }
}

// ---- libpcap, opened when a filter expression is compiled ----------------------------------
//
// Filter expressions are compiled by libpcap (`pcap_compile` on a handle from
// `pcap_open_dead`; the program is then checked and run by our own code, see
// `source::filter`). Linked at build time, libpcap made every start of the program load it
// and the ten libraries it needs (D-Bus, systemd, gcrypt, lzma, zstd, lz4, ...), whether or
// not a filter was given: 1.4-1.8 ms of CPU per start on this project's 2-core VM (a C
// program that only links libpcap against one that links nothing, PERFORMANCE.md), about 3 %
// of the wall time of `read` on a 44 MB file with two workers. So it is opened with `dlopen` by its soname
// (the system's library search path only, never a path from the command line) the first
// time an expression is compiled, and stays loaded for the life of the process.
//
// What the calls rely on, from `pcap(3PCAP)`: `pcap_open_dead` returns a handle or NULL;
// `pcap_compile` fills a `struct bpf_program` (`bf_len` instructions at `bf_insns`, libpcap's
// memory until `pcap_freecode`) and returns 0, or returns -1 (`PCAP_ERROR`) with a message in
// the handle's error buffer (`pcap_geterr`, NUL-terminated, valid until the next call on the
// handle); `pcap_close` frees the handle. Calls are made one at a time (a lock): old libpcap
// releases kept the compiler's state in globals, and compiling is rare.

/// Compiling filter expressions through libpcap, loaded on first use (see the comment above).
#[cfg(feature = "bpf")]
pub mod libpcap {
    use super::BpfInsn;
    use std::ffi::{c_char, c_int, c_uint, CStr, CString};
    use std::sync::{Mutex, OnceLock};

    /// libpcap's sonames, the current one first (Debian and Ubuntu ship `libpcap.so.0.8`,
    /// other distributions `libpcap.so.1`; `libpcap.so` is the development link).
    pub const SONAMES: [&str; 3] = ["libpcap.so.1", "libpcap.so.0.8", "libpcap.so"];

    /// The snapshot length of the dead handle, which the compiled program's accepting
    /// `ret` returns (what the `pcap` crate used before, so programs are unchanged).
    const SNAPLEN: c_int = 65_535;

    /// `struct bpf_program` of `pcap/bpf.h`; its instructions are `struct bpf_insn`, which
    /// [`BpfInsn`] mirrors (the same layout as the kernel's `sock_filter`, pinned by a test
    /// below).
    #[repr(C)]
    struct Program {
        bf_len: c_uint,
        bf_insns: *mut BpfInsn,
    }

    /// `pcap_t`, only ever behind a pointer.
    #[repr(C)]
    struct Handle {
        _opaque: [u8; 0],
    }

    type OpenDead = unsafe extern "C" fn(c_int, c_int) -> *mut Handle;
    type Compile =
        unsafe extern "C" fn(*mut Handle, *mut Program, *const c_char, c_int, c_uint) -> c_int;
    type GetErr = unsafe extern "C" fn(*mut Handle) -> *mut c_char;
    type FreeCode = unsafe extern "C" fn(*mut Program);
    type Close = unsafe extern "C" fn(*mut Handle);

    /// The library and the five functions taken from it; the function pointers stay valid
    /// because the library is never closed (it lives in a static).
    struct Api {
        _library: libloading::Library,
        /// Held for each compile (see the comment above the module).
        one_at_a_time: Mutex<()>,
        open_dead: OpenDead,
        compile: Compile,
        geterr: GetErr,
        freecode: FreeCode,
        close: Close,
    }

    /// The loaded library, or why it could not be loaded (one line), decided once.
    fn api() -> Result<&'static Api, String> {
        static API: OnceLock<Result<Api, String>> = OnceLock::new();
        API.get_or_init(load).as_ref().map_err(Clone::clone)
    }

    fn load() -> Result<Api, String> {
        let mut tried = Vec::new();
        for name in SONAMES {
            // SAFETY: `dlopen` runs the library's initialisers; libpcap's only set up its own
            // state (no requirement on the caller's threads or signals), and `name` is one of
            // the constant sonames above, resolved through the system's library path.
            match unsafe { libloading::Library::new(name) } {
                Ok(library) => match symbols(library) {
                    Ok(api) => return Ok(api),
                    Err(e) => tried.push(format!("{name}: {e}")),
                },
                Err(e) => tried.push(e.to_string()),
            }
        }
        Err(format!(
            "filter expressions need libpcap, which could not be loaded ({})",
            tried.join("; ")
        ))
    }

    /// The five functions of `library`. The pointers are copied out of libloading's
    /// `Symbol`s, which would tie them to the borrow of `library`: they stay valid because
    /// `library` moves into the same [`Api`], which lives in a static and is never dropped.
    fn symbols(library: libloading::Library) -> Result<Api, libloading::Error> {
        // SAFETY: `OpenDead` is the C prototype of `pcap_open_dead` in `pcap/pcap.h`
        // (libpcap 1.x), so calling through the pointer matches the function's ABI.
        let open_dead = *unsafe { library.get::<OpenDead>(b"pcap_open_dead\0") }?;
        // SAFETY: `Compile` is the prototype of `pcap_compile` (`bpf_u_int32` is `c_uint`).
        let compile = *unsafe { library.get::<Compile>(b"pcap_compile\0") }?;
        // SAFETY: `GetErr` is the prototype of `pcap_geterr`.
        let geterr = *unsafe { library.get::<GetErr>(b"pcap_geterr\0") }?;
        // SAFETY: `FreeCode` is the prototype of `pcap_freecode`.
        let freecode = *unsafe { library.get::<FreeCode>(b"pcap_freecode\0") }?;
        // SAFETY: `Close` is the prototype of `pcap_close`.
        let close = *unsafe { library.get::<Close>(b"pcap_close\0") }?;
        Ok(Api {
            _library: library,
            one_at_a_time: Mutex::new(()),
            open_dead,
            compile,
            geterr,
            freecode,
            close,
        })
    }

    /// Compiles `expr` (`pcap-filter(7)`) for link type `dlt` (a `DLT_*` value), optimised,
    /// with netmask 0, and returns its instructions; `Err` holds libpcap's message, or why
    /// libpcap could not be used, in one line.
    pub fn compile(dlt: i32, expr: &str) -> Result<Vec<BpfInsn>, String> {
        let api = api()?;
        let text = CString::new(expr).map_err(|_| "the expression holds a NUL byte".to_owned())?;
        // A panic elsewhere while holding it leaves nothing half done here: take it anyway.
        let _one = api
            .one_at_a_time
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // SAFETY: `pcap_open_dead` has no preconditions; a NULL result is checked below.
        let handle = unsafe { (api.open_dead)(dlt, SNAPLEN) };
        if handle.is_null() {
            return Err("libpcap could not make a handle (out of memory)".to_owned());
        }
        let mut program = Program {
            bf_len: 0,
            bf_insns: std::ptr::null_mut(),
        };
        // SAFETY: `handle` is live (non-NULL from `pcap_open_dead`, closed only below),
        // `program` is a valid `struct bpf_program` to fill, and `text` is NUL-terminated and
        // outlives the call.
        let rc = unsafe { (api.compile)(handle, &mut program, text.as_ptr(), 1, 0) };
        let result = if rc != 0 {
            // SAFETY: `handle` is live; after a failed call its error buffer holds a
            // NUL-terminated message.
            let message = unsafe { (api.geterr)(handle) };
            Err(if message.is_null() {
                "libpcap refused the expression".to_owned()
            } else {
                // SAFETY: a non-NULL pointer to the handle's NUL-terminated error buffer,
                // copied out before the handle is closed.
                let message = unsafe { CStr::from_ptr(message) };
                message
                    .to_string_lossy()
                    .lines()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        } else {
            let insns = if program.bf_insns.is_null() || program.bf_len == 0 {
                Vec::new()
            } else {
                // SAFETY: after a successful `pcap_compile`, `bf_insns` points to `bf_len`
                // initialised instructions owned by `program` until `pcap_freecode` below.
                let insns = unsafe {
                    std::slice::from_raw_parts(program.bf_insns, program.bf_len as usize)
                };
                insns.to_vec()
            };
            // SAFETY: `program` was filled by a successful `pcap_compile` and is freed once;
            // the instructions were copied out above.
            unsafe { (api.freecode)(&mut program) };
            Ok(insns)
        };
        // SAFETY: `handle` came from `pcap_open_dead`, is closed once, after its last use.
        unsafe { (api.close)(handle) };
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn sock_fprog_layout() {
        assert_eq!(size_of::<SockFprog>(), size_of::<libc::sock_fprog>());
        assert_eq!(offset_of!(SockFprog, filter), size_of::<usize>());
        assert_eq!(size_of::<BpfInsn>(), size_of::<libc::sock_filter>());
        assert_eq!(offset_of!(BpfInsn, k), 4);
    }

    /// Any range is clipped to the slice: out of it, reversed, empty or at the ends of `usize`,
    /// nothing is touched and nothing panics.
    #[test]
    fn prefetch_clips_every_range_to_the_slice() {
        use file_mapping::prefetch;
        let bytes = vec![7u8; 3 * 64 + 5];
        for (from, to) in [
            (0, bytes.len()),
            (0, usize::MAX),
            (10, 5),
            (bytes.len(), bytes.len() + 64),
            (bytes.len() + 1, 0),
            (usize::MAX, usize::MAX),
            (63, 65),
        ] {
            prefetch(&bytes, from, to);
        }
        prefetch(&[], 0, 64);
        assert!(bytes.iter().all(|&b| b == 7));
    }

    #[test]
    fn ring_geometry_is_checked() {
        let page = page_size();
        assert!(RxBlocks::geometry_ok(page, 4));
        assert!(!RxBlocks::geometry_ok(0, 4));
        assert!(!RxBlocks::geometry_ok(page, 0));
        assert!(!RxBlocks::geometry_ok(page + 16, 1));
        assert!(!RxBlocks::geometry_ok(page, usize::MAX));
        assert!(TxFrames::geometry_ok(page, 2, 2048, 2 * page / 2048));
        assert!(!TxFrames::geometry_ok(page, 1, 1000, 4));
        assert!(!TxFrames::geometry_ok(page, 2, 2048, 5));
        assert!(!TxFrames::geometry_ok(
            page,
            1,
            TX_DATA_OFFSET,
            page / TX_DATA_OFFSET
        ));
    }
}
