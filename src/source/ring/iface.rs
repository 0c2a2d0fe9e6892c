//! Interface look-ups through a packet socket: index, flags, hardware type and address,
//! IPv4 address and MTU (`if_nametoindex(3)` and the `SIOCGIF*` ioctls of `netdevice(7)`),
//! asked in the network namespace of the calling thread or of the socket. No unsafe code:
//! the calls themselves are in [`super::sys`].

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;

use super::abi::{Ifreq, IFREQ_DATA_BYTES};
use super::sys::{self, IfreqRequest};

/// `if_nametoindex(3)` in the calling thread's network namespace.
pub fn interface_index(name: &str) -> io::Result<u32> {
    let c_name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    sys::if_nametoindex(&c_name)
}

/// A `struct ifreq` naming `name`, its union zeroed.
fn ifreq(name: &str) -> io::Result<Ifreq> {
    let bytes = name.as_bytes();
    // The name must leave room for its NUL terminator and hold no NUL itself.
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let mut req = Ifreq {
        name: [0u8; libc::IFNAMSIZ],
        data: [0u8; IFREQ_DATA_BYTES],
    };
    req.name[..bytes.len()].copy_from_slice(bytes);
    Ok(req)
}

/// `SIOCGIFFLAGS`: the interface flags (`IFF_UP`, ...), asked through `fd`'s namespace.
pub fn interface_flags(fd: &OwnedFd, name: &str) -> io::Result<i16> {
    let mut req = ifreq(name)?;
    sys::ioctl_ifreq(fd, IfreqRequest::Flags, &mut req)?;
    // `ifr_flags`: a `short` at the start of the union.
    Ok(i16::from_ne_bytes([req.data[0], req.data[1]]))
}

/// `SIOCGIFHWADDR`: the interface's ARPHRD_* hardware type.
pub fn interface_hardware_type(fd: &OwnedFd, name: &str) -> io::Result<u16> {
    interface_mac_address(fd, name).map(|(hardware_type, _)| hardware_type)
}

/// `SIOCGIFHWADDR`: the interface's hardware type and its first six address bytes (the MAC
/// address of an Ethernet interface; all zero for loopback).
pub fn interface_mac_address(fd: &OwnedFd, name: &str) -> io::Result<(u16, [u8; 6])> {
    let mut req = ifreq(name)?;
    sys::ioctl_ifreq(fd, IfreqRequest::HardwareAddress, &mut req)?;
    // `ifr_hwaddr`: a `struct sockaddr`, `sa_family` (the ARPHRD_* type) then `sa_data`.
    let family = u16::from_ne_bytes([req.data[0], req.data[1]]);
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&req.data[2..8]);
    Ok((family, mac))
}

/// `SIOCGIFADDR`: the interface's (primary) IPv4 address. `EADDRNOTAVAIL` when it has none.
pub fn interface_ipv4_address(fd: &OwnedFd, name: &str) -> io::Result<Ipv4Addr> {
    // The union holds a `sockaddr_in`: family, port (2 bytes), address (4 bytes, network
    // order), zero padding.
    let mut req = ifreq(name)?;
    req.data[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    sys::ioctl_ifreq(fd, IfreqRequest::Ipv4Address, &mut req)?;
    let a = &req.data;
    Ok(Ipv4Addr::new(a[4], a[5], a[6], a[7]))
}

/// `SIOCGIFMTU`: the interface's MTU in bytes (payload after the link-layer header).
pub fn interface_mtu(fd: &OwnedFd, name: &str) -> io::Result<u32> {
    let mut req = ifreq(name)?;
    sys::ioctl_ifreq(fd, IfreqRequest::Mtu, &mut req)?;
    // `ifr_mtu`: an `int` at the start of the union.
    let mtu = i32::from_ne_bytes([req.data[0], req.data[1], req.data[2], req.data[3]]);
    u32::try_from(mtu).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_the_kernel_sees_them() {
        for bad in ["", "a\0b", "sixteen-chars-xx"] {
            assert_eq!(
                ifreq(bad).unwrap_err().kind(),
                io::ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
        let req = ifreq("lo").expect("lo");
        assert_eq!(&req.name[..3], b"lo\0");
        assert_eq!(
            interface_index("a\0b").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
