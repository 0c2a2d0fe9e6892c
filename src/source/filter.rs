//! BPF filters (being written).
