//! tcpdump-syntax capture filters: compiled by libpcap, run by our own classic-BPF interpreter.
//!
//! Without libpcap (the crate built without its `bpf` feature), a program compiled elsewhere
//! runs through the same checker and interpreter: [`BpfFilter::from_program`] takes the
//! instructions, [`BpfFilter::from_ddd`] the text `tcpdump -ddd` prints.
//!
//! `BpfFilter::compile` hands the expression to libpcap (`pcap_compile` on a dead handle of
//! the requested link type; libpcap is opened at run time, the first time an expression is
//! compiled, see `source::ring::sys::libpcap`, so a program given no filter never loads it),
//! reads the resulting classic BPF program back, checks it the way
//! the Linux kernel's `bpf_check_classic` does before accepting it for `SO_ATTACH_FILTER`,
//! and keeps both the raw instructions (for the live ring to attach) and a pre-decoded form
//! that [`BpfFilter::matches`] interprets without allocating. The interpreter follows libpcap's
//! `bpf_filter()` (see `pcap-filter(7)` and the BPF paper, McCanne & Jacobson 1993):
//!
//! - a load past the captured bytes ends the program with 0 (reject), as in libpcap and the
//!   kernel; so does division or modulo by a zero X register;
//! - `len` (`BPF_LEN` loads) is the original wire length, not the captured length;
//! - the packet is accepted when the program returns a non-zero value.
//!
//! Things worth knowing about what libpcap hands us (libpcap 1.10, checked by the tests):
//!
//! - The dead handle is opened with a snapshot length of 65535, so "accept"
//!   compiles to `ret #65535`. Offline that is only a non-zero verdict, but the kernel reads a
//!   socket filter's return value as "keep this many bytes": attached unchanged, the program
//!   would cut frames longer than 65535 bytes (GRO/BIG TCP super-packets, loopback with its
//!   64 KiB MTU). libpcap itself raises non-zero `ret` constants before attaching to a mapped ring;
//!   the live source should do the same with [`BpfFilter::instructions`].
//! - The netmask passed to `pcap_compile` is 0, so `ip broadcast`
//!   only recognises 0.0.0.0 and 255.255.255.255.
//! - `vlan` on a dead handle compiles to plain loads of the EtherType at offset 12 (0x8100,
//!   0x88a8, 0x9100) and of the tag at offset 14. libpcap emits the kernel's ancillary
//!   `SKF_AD_VLAN_TAG*` loads only for live Linux sockets. That is what we want for frames
//!   whose tags were put back (pcap files; ring frames after re-inserting `tp_vlan_tci`), but
//!   attached to a kernel socket these plain loads miss tags the NIC stripped into metadata.
//! - `inbound` / `outbound` on Ethernet compile, even on a dead handle, to an ancillary load
//!   of `SKF_AD_PKTTYPE` (`ld [0xfffff004]`). Captured bytes carry no packet type, so off-line
//!   such a load fails and the filter rejects every packet, exactly as libpcap's own
//!   interpreter does; [`BpfFilter::needs_kernel_metadata`] tells callers in advance.
//! - Link types are `LINKTYPE_*` values (pcap file headers); the few whose `DLT_*` value
//!   differs on Linux (e.g. 101 raw IP is `DLT_RAW` 12) are translated before compiling.
//! - Host names in an expression are resolved by libpcap while compiling (blocking DNS).
//! - A program compiled for `LINKTYPE_LINUX_SLL` (113) addresses the 16-byte cooked header;
//!   a `SOCK_DGRAM` packet socket shows its filter no such header, so such a program must be
//!   rewritten (as libpcap does) before it is attached there.

use std::fmt;

mod check;
mod interp;
mod libpcap;
#[cfg(test)]
mod test_support;

use check::check;
use interp::{run, Op};

/// One classic BPF instruction, laid out like the kernel's `struct sock_filter`
/// (`linux/filter.h`) and libpcap's `struct bpf_insn`, so a slice of these can be handed to
/// `SO_ATTACH_FILTER` as it is.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfInsn {
    /// Opcode: class, size, mode or operation, and source bits (`pcap/bpf.h`).
    pub code: u16,
    /// Jump offset when a conditional jump's test is true (relative to the next instruction).
    pub jt: u8,
    /// Jump offset when a conditional jump's test is false.
    pub jf: u8,
    /// The constant operand: an offset, an immediate value or a scratch-memory index.
    pub k: u32,
}

/// A compiled filter expression, ready to test frames and to be attached to a socket.
#[derive(Clone, Debug)]
pub struct BpfFilter {
    expr: String,
    link_type: u32,
    insns: Vec<BpfInsn>,
    ops: Box<[Op]>,
    needs_kernel_metadata: bool,
    kernel_refusal: Option<String>,
}

/// Why an expression could not become a filter: libpcap's message, or why the program it
/// produced would not be accepted by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    expr: String,
    link_type: u32,
    message: String,
}

impl FilterError {
    fn new(expr: &str, link_type: u32, message: impl Into<String>) -> Self {
        FilterError {
            expr: expr.to_owned(),
            link_type,
            message: message.into(),
        }
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expr
    }

    /// The `LINKTYPE_*` value the expression was compiled for.
    pub fn link_type(&self) -> u32 {
        self.link_type
    }

    /// libpcap's message, unchanged (or ours, when the program failed the checker).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // libpcap prefixes every parser error with this; the rest of our line says it already.
        let reason = self
            .message
            .strip_prefix("can't parse filter expression: ")
            .unwrap_or(&self.message);
        // `{:?}` quotes the expression and escapes any newline, so this stays one line.
        write!(
            f,
            "bad filter expression {:?}: {}",
            self.expr,
            reason.trim_end()
        )
    }
}

impl std::error::Error for FilterError {}

impl BpfFilter {
    /// A filter from a classic BPF program compiled elsewhere (for example by
    /// `tcpdump -dd`, or by `BpfFilter::compile` on another machine), for frames of
    /// `link_type`. The program goes through the same checker as a compiled one (the kernel's
    /// admission rules); `expr` only names the filter in errors and in
    /// [`BpfFilter::expression`]. Needs no libpcap.
    pub fn from_program(
        expr: &str,
        link_type: u32,
        insns: Vec<BpfInsn>,
    ) -> Result<BpfFilter, FilterError> {
        Self::from_insns(expr, link_type, insns)
    }

    /// Checks and decodes a program; the only way a `BpfFilter` comes to exist.
    fn from_insns(
        expr: &str,
        link_type: u32,
        insns: Vec<BpfInsn>,
    ) -> Result<BpfFilter, FilterError> {
        let checked = check(&insns).map_err(|why| {
            FilterError::new(
                expr,
                link_type,
                format!("program rejected by the checker: {why}"),
            )
        })?;
        Ok(BpfFilter {
            expr: expr.to_owned(),
            link_type,
            insns,
            ops: checked.ops.into_boxed_slice(),
            needs_kernel_metadata: checked.needs_kernel_metadata,
            kernel_refusal: checked.kernel_refusal,
        })
    }

    /// Runs the program over one frame. `frame` is the captured bytes, `wire_len` the
    /// original length on the wire (what `len`, `greater` and `less` test). Never panics,
    /// never allocates.
    pub fn matches(&self, frame: &[u8], wire_len: u32) -> bool {
        run(&self.ops, frame, wire_len) != 0
    }

    /// The program exactly as libpcap compiled it, in `struct sock_filter` layout.
    pub fn instructions(&self) -> &[BpfInsn] {
        &self.insns
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expr
    }

    /// The `LINKTYPE_*` value this filter was compiled for.
    pub fn link_type(&self) -> u32 {
        self.link_type
    }

    /// True when the program reads Linux packet metadata (an `SKF_AD_*` ancillary load, e.g.
    /// `inbound` on Ethernet). Only the kernel can answer those; [`BpfFilter::matches`]
    /// rejects every frame that reaches such a load, as libpcap's own interpreter does.
    pub fn needs_kernel_metadata(&self) -> bool {
        self.needs_kernel_metadata
    }

    /// Why the kernel's checker (`check_load_and_stores`) would refuse the program, if it
    /// would: a scratch cell read on a path where it was never written. Such a program runs
    /// here (cells start at 0, as in libpcap's interpreter); live capture then filters in user
    /// space instead of attaching it, as libpcap does.
    pub fn kernel_refusal(&self) -> Option<&str> {
        self.kernel_refusal.as_deref()
    }
}

// Classic BPF encoding (`linux/bpf_common.h`, `linux/filter.h`, libpcap `pcap/bpf.h`).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;

const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;

const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const MSH: u16 = 0xa0;

const ADD: u16 = 0x00;
const SUB: u16 = 0x10;
const MUL: u16 = 0x20;
const DIV: u16 = 0x30;
const OR: u16 = 0x40;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const NEG: u16 = 0x80;
const MOD: u16 = 0x90;
const XOR: u16 = 0xa0;

const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGT: u16 = 0x20;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;

const SRC_K: u16 = 0x00;
const SRC_X: u16 = 0x08;
const RVAL_A: u16 = 0x10;

const TAX: u16 = 0x00;
const TXA: u16 = 0x80;

/// `BPF_MAXINSNS`: the kernel refuses longer classic programs.
const MAX_INSNS: usize = 4096;
/// `BPF_MEMWORDS`: scratch memory cells M[0..16].
const MEM_WORDS: usize = 16;
/// `SKF_LL_OFF`, the lowest of the kernel's special negative load offsets (`linux/filter.h`):
/// from here up, an absolute load reads headers or metadata instead of packet offset k.
const SKF_LL_OFF: u32 = 0xffe0_0000;
/// `SKF_AD_OFF`: ancillary (metadata) loads start here.
const SKF_AD_OFF: u32 = 0xffff_f000;
/// `SKF_AD_MAX`: one past the last ancillary offset the kernel knows (`SKF_AD_VLAN_TPID` 60).
const SKF_AD_MAX: u32 = 64;

#[cfg(test)]
mod tests {
    use super::*;

    // ---- layout -------------------------------------------------------------------------

    #[test]
    fn insn_layout_matches_sock_filter() {
        assert_eq!(std::mem::size_of::<BpfInsn>(), 8);
        assert_eq!(std::mem::align_of::<BpfInsn>(), 4);
        assert_eq!(std::mem::offset_of!(BpfInsn, code), 0);
        assert_eq!(std::mem::offset_of!(BpfInsn, jt), 2);
        assert_eq!(std::mem::offset_of!(BpfInsn, jf), 3);
        assert_eq!(std::mem::offset_of!(BpfInsn, k), 4);
    }

    #[test]
    fn filter_is_send_and_sync() {
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<BpfFilter>();
    }
}
