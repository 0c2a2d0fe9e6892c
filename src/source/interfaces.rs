//! `-D` / `--list-interfaces`: the interfaces of this network namespace, as `tcpdump -D`
//! lists them, plus what a capture needs to know (index, link type, addresses).
//!
//! Names, flags and addresses come from getifaddrs(3) (through nix, no unsafe here); the index
//! and the ARPHRD hardware type from sysfs (`/sys/class/net/NAME/{ifindex,type}`), which
//! reflects the namespace the process runs in.

use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use std::collections::BTreeMap;
use std::io;

/// One interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Interface index (`if_nametoindex`).
    pub index: u32,
    /// Interface name (`eth0`).
    pub name: String,
    /// ARPHRD_* (`include/uapi/linux/if_arp.h`), when sysfs says.
    pub hardware_type: Option<u16>,
    /// `IFF_UP`: administratively up.
    pub up: bool,
    /// `IFF_RUNNING`: the link is up.
    pub running: bool,
    /// `IFF_LOOPBACK`.
    pub loopback: bool,
    /// "ADDRESS/PREFIX", IPv4 first, in the order getifaddrs gives them.
    pub addresses: Vec<String>,
}

impl InterfaceInfo {
    /// The pcap link type a capture on it gets (name, description), and whether `capture`
    /// can take it (only Ethernet framing is captured).
    pub fn link_type(&self) -> (&'static str, &'static str, bool) {
        match self.hardware_type {
            // Linux loopback delivers Ethernet headers (zero addresses) to packet sockets.
            Some(1) | Some(772) => ("EN10MB", "Ethernet", true),
            Some(65534) | Some(768) | Some(776) | Some(778) => ("RAW", "Raw IP", false),
            Some(512) => ("LINUX_SLL", "Linux cooked v1", false),
            Some(801) | Some(803) => ("IEEE802_11_RADIO", "802.11 plus radiotap", false),
            _ => ("UNKNOWN", "not Ethernet", false),
        }
    }

    /// The `-D` line: `INDEX.NAME [Up, Running, Loopback] link-type EN10MB (Ethernet) ...`.
    pub fn line(&self) -> String {
        let mut flags = vec![if self.up { "Up" } else { "Down" }];
        if self.running {
            flags.push("Running");
        }
        if self.loopback {
            flags.push("Loopback");
        }
        let (name, description, capturable) = self.link_type();
        let mut line = format!(
            "{}.{} [{}] link-type {name} ({description})",
            self.index,
            self.name,
            flags.join(", ")
        );
        if !capturable {
            line.push_str(", not capturable (capture takes Ethernet only)");
        }
        for a in &self.addresses {
            line.push(' ');
            line.push_str(a);
        }
        line
    }
}

/// The last `-D` line: the pseudo-interface that captures on all of them (bound to index 0).
pub const ANY_LINE: &str = "0.any [Up, Running] link-type LINUX_SLL2 (Linux cooked v2), \
                            every interface of this network namespace";

/// The interfaces of this network namespace, by index.
pub fn list() -> io::Result<Vec<InterfaceInfo>> {
    let mut by_name: BTreeMap<String, InterfaceInfo> = BTreeMap::new();
    for ifa in getifaddrs().map_err(io::Error::from)? {
        let entry = by_name
            .entry(ifa.interface_name.clone())
            .or_insert_with(|| InterfaceInfo {
                name: ifa.interface_name.clone(),
                ..InterfaceInfo::default()
            });
        entry.up |= ifa.flags.contains(InterfaceFlags::IFF_UP);
        entry.running |= ifa.flags.contains(InterfaceFlags::IFF_RUNNING);
        entry.loopback |= ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        let prefix = |mask: Option<&nix::sys::socket::SockaddrStorage>| -> Option<u32> {
            let m = mask?;
            if let Some(v4) = m.as_sockaddr_in() {
                return Some(v4.ip().to_bits().count_ones());
            }
            m.as_sockaddr_in6().map(|v6| v6.ip().to_bits().count_ones())
        };
        if let Some(addr) = &ifa.address {
            let ip = if let Some(v4) = addr.as_sockaddr_in() {
                Some(std::net::IpAddr::V4(v4.ip()))
            } else {
                addr.as_sockaddr_in6()
                    .map(|v6| std::net::IpAddr::V6(v6.ip()))
            };
            if let Some(ip) = ip {
                let text = match prefix(ifa.netmask.as_ref()) {
                    Some(p) => format!("{ip}/{p}"),
                    None => ip.to_string(),
                };
                if ip.is_ipv4() {
                    let v4_count = entry.addresses.iter().filter(|a| !a.contains(':')).count();
                    entry.addresses.insert(v4_count, text);
                } else {
                    entry.addresses.push(text);
                }
            }
        }
    }
    let sys = |name: &str, what: &str| -> Option<String> {
        std::fs::read_to_string(format!("/sys/class/net/{name}/{what}"))
            .ok()
            .map(|s| s.trim().to_owned())
    };
    let mut all: Vec<InterfaceInfo> = by_name
        .into_values()
        .map(|mut i| {
            i.index = sys(&i.name, "ifindex")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            i.hardware_type = sys(&i.name, "type").and_then(|s| s.parse().ok());
            i
        })
        .collect();
    all.sort_by(|a, b| (a.index, &a.name).cmp(&(b.index, &b.name)));
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed_as_ethernet() {
        let all = list().unwrap();
        let lo = all.iter().find(|i| i.name == "lo").expect("lo listed");
        assert!(lo.index >= 1);
        assert!(lo.loopback);
        let line = lo.line();
        assert!(line.starts_with(&format!("{}.lo [", lo.index)), "{line}");
        assert!(line.contains("link-type EN10MB (Ethernet)"), "{line}");
        if lo.up {
            assert!(line.contains("127.0.0.1/8"), "{line}");
        }
    }

    #[test]
    fn non_ethernet_says_so() {
        let tun = InterfaceInfo {
            index: 7,
            name: "tun0".into(),
            hardware_type: Some(65534),
            up: false,
            addresses: vec!["10.8.0.1/24".into()],
            ..InterfaceInfo::default()
        };
        assert_eq!(
            tun.line(),
            "7.tun0 [Down] link-type RAW (Raw IP), not capturable (capture takes Ethernet \
             only) 10.8.0.1/24"
        );
    }
}
