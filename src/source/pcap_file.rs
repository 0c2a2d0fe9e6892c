//! pcap / pcapng reader (being written).
