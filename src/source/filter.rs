//! tcpdump-syntax capture filters: compiled by libpcap, run by our own classic-BPF interpreter.
//!
//! Without libpcap (the crate built without its `bpf` feature), a program compiled elsewhere
//! runs through the same checker and interpreter: [`BpfFilter::from_program`] takes the
//! instructions, [`BpfFilter::from_ddd`] the text `tcpdump -ddd` prints.
//!
//! `BpfFilter::compile` hands the expression to libpcap (`pcap_compile` on a dead handle of
//! the requested link type), reads the resulting classic BPF program back, checks it the way
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
//! - The `pcap` crate opens the dead handle with a snapshot length of 65535, so "accept"
//!   compiles to `ret #65535`. Offline that is only a non-zero verdict, but the kernel reads a
//!   socket filter's return value as "keep this many bytes": attached unchanged, the program
//!   would cut frames longer than 65535 bytes (GRO/BIG TCP super-packets, loopback with its
//!   64 KiB MTU). libpcap itself raises non-zero `ret` constants before attaching to a mapped ring;
//!   the live source should do the same with [`BpfFilter::instructions`].
//! - The netmask passed to `pcap_compile` is 0 (the crate offers no other), so `ip broadcast`
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
#[cfg(feature = "bpf")]
use std::fmt::Write as _;

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
    /// Compiles a tcpdump-syntax expression (`pcap-filter(7)`) for frames of `link_type`
    /// (a `LINKTYPE_*` value: 1 Ethernet, 113 Linux cooked, 101 raw IP, ...). The empty
    /// expression accepts everything. Needs the `bpf` feature (libpcap); without it, use
    /// [`BpfFilter::from_program`] or [`BpfFilter::from_ddd`] with a program compiled elsewhere.
    #[cfg(feature = "bpf")]
    pub fn compile(expr: &str, link_type: u32) -> Result<BpfFilter, FilterError> {
        let dlt = i32::try_from(linktype_to_dlt(link_type))
            .map_err(|_| FilterError::new(expr, link_type, "link type out of range"))?;
        let dead = pcap::Capture::dead(pcap::Linktype(dlt))
            .map_err(|e| FilterError::new(expr, link_type, pcap_message(e)))?;
        let program = dead
            .compile(expr, true)
            .map_err(|e| FilterError::new(expr, link_type, pcap_message(e)))?;

        // The crate shows instructions only through `Display` ("code jt jf k"); reading that
        // back keeps this module free of unsafe code.
        let mut text = String::new();
        let mut insns = Vec::with_capacity(program.get_instructions().len());
        for insn in program.get_instructions() {
            text.clear();
            // Writing into a String cannot fail.
            let _ = write!(text, "{insn}");
            let parsed = parse_insn(&text).ok_or_else(|| {
                FilterError::new(
                    expr,
                    link_type,
                    format!("unreadable instruction {text:?} from libpcap"),
                )
            })?;
            insns.push(parsed);
        }
        Self::from_insns(expr, link_type, insns)
    }

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

    /// A filter from the text `tcpdump -ddd` prints (the instruction count on the first line,
    /// then one `code jt jf k` line in decimal per instruction), for frames of `link_type`.
    /// Blank lines are ignored; anything else unreadable, or a count that does not match, is
    /// a [`FilterError`]. `expr` names the filter as in [`BpfFilter::from_program`].
    pub fn from_ddd(expr: &str, link_type: u32, ddd: &str) -> Result<BpfFilter, FilterError> {
        let mut lines = ddd.lines().map(str::trim).filter(|l| !l.is_empty());
        let count: usize = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| FilterError::new(expr, link_type, "no instruction count on line 1"))?;
        let mut insns = Vec::with_capacity(count.min(MAX_INSNS));
        for line in lines {
            let insn = parse_insn(line).ok_or_else(|| {
                FilterError::new(expr, link_type, format!("unreadable instruction {line:?}"))
            })?;
            insns.push(insn);
        }
        if insns.len() != count {
            return Err(FilterError::new(
                expr,
                link_type,
                format!("{} instructions, the first line says {count}", insns.len()),
            ));
        }
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

/// The pcap crate wraps libpcap's error buffer in `PcapError`; anything else is the crate's.
#[cfg(feature = "bpf")]
fn pcap_message(e: pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(msg) => msg,
        other => other.to_string(),
    }
}

/// `pcap_open_dead` takes a `DLT_*` value. For most link types it equals the `LINKTYPE_*`
/// value stored in capture files; these are the exceptions on Linux (values from libpcap's
/// `pcap/dlt.h` and the tcpdump.org link-layer header type registry).
#[cfg(feature = "bpf")]
fn linktype_to_dlt(link_type: u32) -> u32 {
    match link_type {
        100 => 11, // ATM_RFC1483
        101 => 12, // RAW
        102 => 15, // SLIP_BSDOS
        103 => 16, // PPP_BSDOS
        106 => 19, // ATM_CLIP
        other => other,
    }
}

/// Parses the pcap crate's `"code jt jf k"` rendering of one instruction.
fn parse_insn(text: &str) -> Option<BpfInsn> {
    let mut fields = text.split_ascii_whitespace();
    let insn = BpfInsn {
        code: fields.next()?.parse().ok()?,
        jt: fields.next()?.parse().ok()?,
        jf: fields.next()?.parse().ok()?,
        k: fields.next()?.parse().ok()?,
    };
    fields.next().is_none().then_some(insn)
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

/// A checked instruction, one variant per opcode so that the interpreter dispatches once per
/// instruction. Jump targets are absolute and in range, scratch indices < 16, constant
/// divisors non-zero, constant shifts < 32; the interpreter still never indexes unchecked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    LdAbsW(u32),
    LdAbsH(u32),
    LdAbsB(u32),
    LdIndW(u32),
    LdIndH(u32),
    LdIndB(u32),
    /// An `SKF_AD_*` load: only the kernel has the data, so the program ends with 0.
    LdAncillary,
    LdImm(u32),
    LdLen,
    LdMem(u8),
    LdxImm(u32),
    LdxLen,
    LdxMem(u8),
    LdxMsh(u32),
    St(u8),
    Stx(u8),
    AddK(u32),
    SubK(u32),
    MulK(u32),
    DivK(u32),
    ModK(u32),
    AndK(u32),
    OrK(u32),
    XorK(u32),
    LshK(u32),
    RshK(u32),
    AddX,
    SubX,
    MulX,
    DivX,
    ModX,
    AndX,
    OrX,
    XorX,
    LshX,
    RshX,
    Neg,
    Ja(u16),
    JeqK {
        k: u32,
        jt: u16,
        jf: u16,
    },
    JgtK {
        k: u32,
        jt: u16,
        jf: u16,
    },
    JgeK {
        k: u32,
        jt: u16,
        jf: u16,
    },
    JsetK {
        k: u32,
        jt: u16,
        jf: u16,
    },
    JeqX {
        jt: u16,
        jf: u16,
    },
    JgtX {
        jt: u16,
        jf: u16,
    },
    JgeX {
        jt: u16,
        jf: u16,
    },
    JsetX {
        jt: u16,
        jf: u16,
    },
    RetK(u32),
    RetA,
    Tax,
    Txa,
}

struct Checked {
    ops: Vec<Op>,
    needs_kernel_metadata: bool,
    /// Why the kernel would refuse the program although it is safe to run here.
    kernel_refusal: Option<String>,
}

/// Decodes a program and applies the kernel's admission rules (`bpf_check_classic` and
/// `check_load_and_stores` in `net/core/filter.c`): known opcodes only, at most 4096
/// instructions, every jump lands inside the program, the last instruction returns, scratch
/// indices < 16, no constant division by zero or shift by 32 or more, and no scratch cell
/// read on a path where it was never written.
fn check(insns: &[BpfInsn]) -> Result<Checked, String> {
    if insns.is_empty() {
        return Err("empty program".into());
    }
    if insns.len() > MAX_INSNS {
        return Err(format!(
            "{} instructions, the kernel accepts at most {MAX_INSNS}",
            insns.len()
        ));
    }
    let len = insns.len();
    let mut needs_kernel_metadata = false;
    let mut ops = Vec::with_capacity(len);
    for (pc, insn) in insns.iter().enumerate() {
        let k = insn.k;
        let mem = |what: &str| -> Result<u8, String> {
            u8::try_from(k)
                .ok()
                .filter(|&i| usize::from(i) < MEM_WORDS)
                .ok_or_else(|| format!("{what} of M[{k}] at {pc}: scratch memory has 16 cells"))
        };
        // Targets are relative to the next instruction; wider arithmetic cannot overflow.
        let target = |offset: u32| -> Result<u16, String> {
            let to = pc as u64 + 1 + u64::from(offset);
            if to < len as u64 {
                // len <= 4096, so this fits.
                Ok(to as u16)
            } else {
                Err(format!("jump at {pc} lands at {to}, past the end ({len})"))
            }
        };
        let unknown = || format!("unknown opcode {code:#06x} at {pc}", code = insn.code);
        let code = insn.code;
        let op = match code {
            c if c <= 0xff && c & 0x07 == LD && matches!(c & 0xe0, ABS | IND) => {
                let indirect = c & 0xe0 == IND;
                match (c & 0x18, indirect) {
                    (W, true) => Op::LdIndW(k),
                    (H, true) => Op::LdIndH(k),
                    (B, true) => Op::LdIndB(k),
                    (_, true) => return Err(unknown()),
                    _ if k >= SKF_AD_OFF && k - SKF_AD_OFF < SKF_AD_MAX && k % 4 == 0 => {
                        needs_kernel_metadata = true;
                        Op::LdAncillary
                    }
                    _ if k >= SKF_LL_OFF => {
                        return Err(format!(
                            "load at {pc} from {k:#x}, an offset the kernel reads as header or \
                             metadata access, not packet bytes"
                        ));
                    }
                    (W, false) => Op::LdAbsW(k),
                    (H, false) => Op::LdAbsH(k),
                    (B, false) => Op::LdAbsB(k),
                    _ => return Err(unknown()),
                }
            }
            c if c == LD | W | IMM => Op::LdImm(k),
            c if c == LD | W | LEN => Op::LdLen,
            c if c == LD | W | MEM => Op::LdMem(mem("load")?),
            c if c == LDX | W | IMM => Op::LdxImm(k),
            c if c == LDX | W | LEN => Op::LdxLen,
            c if c == LDX | W | MEM => Op::LdxMem(mem("load")?),
            c if c == LDX | B | MSH => Op::LdxMsh(k),
            ST => Op::St(mem("store")?),
            STX => Op::Stx(mem("store")?),
            c if c == ALU | NEG => Op::Neg,
            c if c & 0x07 == ALU && c & !0xf8 == ALU => match (c & 0xf0, c & SRC_X != 0) {
                (DIV | MOD, false) if k == 0 => {
                    return Err(format!("division by constant zero at {pc}"))
                }
                (LSH | RSH, false) if k >= 32 => return Err(format!("shift by {k} at {pc}")),
                (ADD, false) => Op::AddK(k),
                (SUB, false) => Op::SubK(k),
                (MUL, false) => Op::MulK(k),
                (DIV, false) => Op::DivK(k),
                (MOD, false) => Op::ModK(k),
                (AND, false) => Op::AndK(k),
                (OR, false) => Op::OrK(k),
                (XOR, false) => Op::XorK(k),
                (LSH, false) => Op::LshK(k),
                (RSH, false) => Op::RshK(k),
                (ADD, true) => Op::AddX,
                (SUB, true) => Op::SubX,
                (MUL, true) => Op::MulX,
                (DIV, true) => Op::DivX,
                (MOD, true) => Op::ModX,
                (AND, true) => Op::AndX,
                (OR, true) => Op::OrX,
                (XOR, true) => Op::XorX,
                (LSH, true) => Op::LshX,
                (RSH, true) => Op::RshX,
                _ => return Err(unknown()),
            },
            c if c == JMP | JA => Op::Ja(target(k)?),
            c if c & 0x07 == JMP && c & !0xf8 == JMP => {
                let jt = target(u32::from(insn.jt))?;
                let jf = target(u32::from(insn.jf))?;
                match (c & 0xf0, c & SRC_X != 0) {
                    (JEQ, false) => Op::JeqK { k, jt, jf },
                    (JGT, false) => Op::JgtK { k, jt, jf },
                    (JGE, false) => Op::JgeK { k, jt, jf },
                    (JSET, false) => Op::JsetK { k, jt, jf },
                    (JEQ, true) => Op::JeqX { jt, jf },
                    (JGT, true) => Op::JgtX { jt, jf },
                    (JGE, true) => Op::JgeX { jt, jf },
                    (JSET, true) => Op::JsetX { jt, jf },
                    _ => return Err(unknown()),
                }
            }
            c if c == RET | SRC_K => Op::RetK(k),
            c if c == RET | RVAL_A => Op::RetA,
            c if c == MISC | TAX => Op::Tax,
            c if c == MISC | TXA => Op::Txa,
            _ => return Err(unknown()),
        };
        ops.push(op);
    }
    if !matches!(ops.last(), Some(Op::RetK(_) | Op::RetA)) {
        return Err("the last instruction does not return".into());
    }
    // A scratch cell read before any write is the one rule that guards the kernel, not
    // memory safety: our interpreter (like libpcap's `bpf_filter`) starts with every cell at
    // 0. libpcap's optimiser does emit such programs (`pppoes` on radiotap), and tcpdump then
    // filters in user space, so the program is kept and only marked.
    let kernel_refusal = check_scratch_init(&ops).err();
    Ok(Checked {
        ops,
        needs_kernel_metadata,
        kernel_refusal,
    })
}

/// Every scratch cell must be written on all paths before it is read (the kernel refuses the
/// program otherwise). Jumps only go forward, so one pass suffices: each instruction's set of
/// written cells is the intersection over the paths that reach it.
fn check_scratch_init(ops: &[Op]) -> Result<(), String> {
    const UNREACHED: u16 = u16::MAX;
    let mut written = vec![UNREACHED; ops.len()];
    if let Some(first) = written.first_mut() {
        *first = 0;
    }
    for (pc, op) in ops.iter().enumerate() {
        let mut cells = written[pc];
        match *op {
            Op::LdMem(i) | Op::LdxMem(i) if cells & (1 << i) == 0 => {
                return Err(format!("M[{i}] read at {pc} before it is written"));
            }
            Op::St(i) | Op::Stx(i) => cells |= 1 << i,
            _ => {}
        }
        let mut flow = |to: usize| written[to] &= cells;
        match *op {
            Op::RetK(_) | Op::RetA => {}
            Op::Ja(to) => flow(usize::from(to)),
            Op::JeqK { jt, jf, .. }
            | Op::JgtK { jt, jf, .. }
            | Op::JgeK { jt, jf, .. }
            | Op::JsetK { jt, jf, .. }
            | Op::JeqX { jt, jf }
            | Op::JgtX { jt, jf }
            | Op::JgeX { jt, jf }
            | Op::JsetX { jt, jf } => {
                flow(usize::from(jt));
                flow(usize::from(jf));
            }
            // Not a return, so not the last instruction: pc + 1 exists.
            _ => flow(pc + 1),
        }
    }
    Ok(())
}

/// The `N` bytes at `offset`, or `None` past the end of the frame.
#[inline(always)]
fn bytes_at<const N: usize>(frame: &[u8], offset: u64) -> Option<&[u8; N]> {
    frame
        .get(usize::try_from(offset).ok()?..)?
        .first_chunk::<N>()
}

/// The next pc after a conditional jump. Written as a plain `if`, LLVM turns this into a
/// conditional move, and then fetching the next instruction has to wait for the packet load
/// and the comparison: every step of the program serialises (measured 2 to 3 times slower
/// than libpcap on `tcp and (port 80 or port 443 or port 8010 or port 8443)`). Hiding one
/// arm's value behind `black_box` keeps a real, predicted branch, as in libpcap's C
/// interpreter. It is only an optimisation hint; the result is the same either way.
#[inline(always)]
fn branch(taken: bool, jt: u16, jf: u16) -> usize {
    if taken {
        usize::from(jt)
    } else {
        std::hint::black_box(usize::from(jf))
    }
}

/// The interpreter: A and X registers, 16 scratch cells, forward-only control flow.
fn run(ops: &[Op], frame: &[u8], wire_len: u32) -> u32 {
    let word = |offset: u64| bytes_at::<4>(frame, offset).map(|b| u32::from_be_bytes(*b));
    let half =
        |offset: u64| bytes_at::<2>(frame, offset).map(|b| u32::from(u16::from_be_bytes(*b)));
    let byte = |offset: u64| bytes_at::<1>(frame, offset).map(|b| u32::from(b[0]));
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; MEM_WORDS];
    let mut pc = 0usize;
    // Every failed load and every division by zero ends the program with 0 (reject).
    macro_rules! or_reject {
        ($value:expr) => {
            match $value {
                Some(v) => v,
                None => return 0,
            }
        };
    }
    loop {
        let Some(&op) = ops.get(pc) else {
            return 0;
        };
        pc += 1;
        match op {
            Op::LdAbsW(k) => a = or_reject!(word(u64::from(k))),
            Op::LdAbsH(k) => a = or_reject!(half(u64::from(k))),
            Op::LdAbsB(k) => a = or_reject!(byte(u64::from(k))),
            // libpcap and the kernel both add X and k without wrapping into a small offset.
            Op::LdIndW(k) => a = or_reject!(word(u64::from(x) + u64::from(k))),
            Op::LdIndH(k) => a = or_reject!(half(u64::from(x) + u64::from(k))),
            Op::LdIndB(k) => a = or_reject!(byte(u64::from(x) + u64::from(k))),
            Op::LdAncillary => return 0,
            Op::LdImm(k) => a = k,
            Op::LdLen => a = wire_len,
            Op::LdMem(i) => a = mem[usize::from(i) % MEM_WORDS],
            Op::LdxImm(k) => x = k,
            Op::LdxLen => x = wire_len,
            Op::LdxMem(i) => x = mem[usize::from(i) % MEM_WORDS],
            // The IPv4 header length idiom: X = 4 * (P[k] & 0xf).
            Op::LdxMsh(k) => x = (or_reject!(byte(u64::from(k))) & 0xf) << 2,
            Op::St(i) => mem[usize::from(i) % MEM_WORDS] = a,
            Op::Stx(i) => mem[usize::from(i) % MEM_WORDS] = x,
            Op::AddK(k) => a = a.wrapping_add(k),
            Op::SubK(k) => a = a.wrapping_sub(k),
            Op::MulK(k) => a = a.wrapping_mul(k),
            Op::DivK(k) => a = or_reject!(a.checked_div(k)),
            Op::ModK(k) => a = or_reject!(a.checked_rem(k)),
            Op::AndK(k) => a &= k,
            Op::OrK(k) => a |= k,
            Op::XorK(k) => a ^= k,
            // A shift by 32 or more (possible only from X) gives 0, as in libpcap.
            Op::LshK(k) => a = a.checked_shl(k).unwrap_or(0),
            Op::RshK(k) => a = a.checked_shr(k).unwrap_or(0),
            Op::AddX => a = a.wrapping_add(x),
            Op::SubX => a = a.wrapping_sub(x),
            Op::MulX => a = a.wrapping_mul(x),
            Op::DivX => a = or_reject!(a.checked_div(x)),
            Op::ModX => a = or_reject!(a.checked_rem(x)),
            Op::AndX => a &= x,
            Op::OrX => a |= x,
            Op::XorX => a ^= x,
            Op::LshX => a = a.checked_shl(x).unwrap_or(0),
            Op::RshX => a = a.checked_shr(x).unwrap_or(0),
            Op::Neg => a = a.wrapping_neg(),
            Op::Ja(to) => pc = usize::from(to),
            Op::JeqK { k, jt, jf } => pc = branch(a == k, jt, jf),
            Op::JgtK { k, jt, jf } => pc = branch(a > k, jt, jf),
            Op::JgeK { k, jt, jf } => pc = branch(a >= k, jt, jf),
            Op::JsetK { k, jt, jf } => pc = branch(a & k != 0, jt, jf),
            Op::JeqX { jt, jf } => pc = branch(a == x, jt, jf),
            Op::JgtX { jt, jf } => pc = branch(a > x, jt, jf),
            Op::JgeX { jt, jf } => pc = branch(a >= x, jt, jf),
            Op::JsetX { jt, jf } => pc = branch(a & x != 0, jt, jf),
            Op::RetK(k) => return k,
            Op::RetA => return a,
            Op::Tax => x = a,
            Op::Txa => a = x,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- helpers ------------------------------------------------------------------------

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> BpfInsn {
        BpfInsn { code, jt, jf, k }
    }

    fn prog(insns: &[BpfInsn]) -> BpfFilter {
        match BpfFilter::from_insns("(hand-built)", 1, insns.to_vec()) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        }
    }

    fn rejected(insns: &[BpfInsn]) -> String {
        match BpfFilter::from_insns("(hand-built)", 1, insns.to_vec()) {
            Ok(_) => panic!("checker accepted {insns:?}"),
            Err(e) => e.message().to_owned(),
        }
    }

    /// Runs a hand-built program and returns its raw return value.
    fn ret(insns: &[BpfInsn], frame: &[u8], wire_len: u32) -> u32 {
        run(&prog(insns).ops, frame, wire_len)
    }

    fn ret_a() -> BpfInsn {
        insn(RET | RVAL_A, 0, 0, 0)
    }

    #[cfg(feature = "bpf")]
    fn compile(expr: &str, link_type: u32) -> BpfFilter {
        match BpfFilter::compile(expr, link_type) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        }
    }

    /// splitmix64: small, seeded, good enough to spread test inputs.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn byte(&mut self) -> u8 {
            self.next() as u8
        }
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

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

    // ---- loads --------------------------------------------------------------------------

    #[test]
    fn ld_abs_word_half_byte_big_endian() {
        let frame = [0x01, 0x02, 0x03, 0x04, 0x05];
        let w = [insn(LD | W | ABS, 0, 0, 1), ret_a()];
        let h = [insn(LD | H | ABS, 0, 0, 3), ret_a()];
        let b = [insn(LD | B | ABS, 0, 0, 4), ret_a()];
        assert_eq!(ret(&w, &frame, 5), 0x0203_0405);
        assert_eq!(ret(&h, &frame, 5), 0x0405);
        assert_eq!(ret(&b, &frame, 5), 0x05);
    }

    #[test]
    fn ld_abs_out_of_bounds_rejects() {
        let frame = [0xff; 5];
        // Would return 1 if the load were skipped instead of ending the program.
        for (size, k) in [(W, 2), (H, 4), (B, 5), (W, u32::MAX - 0x0020_0000)] {
            let p = [
                insn(LD | W | IMM, 0, 0, 1),
                insn(LD | size | ABS, 0, 0, k),
                insn(LD | W | IMM, 0, 0, 1),
                ret_a(),
            ];
            assert_eq!(ret(&p, &frame, 100), 0, "size {size:#x} k {k}");
        }
        let empty = [insn(LD | B | ABS, 0, 0, 0), insn(RET, 0, 0, 1)];
        assert_eq!(ret(&empty, &[], 0), 0);
    }

    #[test]
    fn ld_ind_adds_x_without_wrapping() {
        let frame = [0, 0, 0xaa, 0xbb, 0xcc, 0xdd];
        let p = [
            insn(LDX | W | IMM, 0, 0, 1),
            insn(LD | H | IND, 0, 0, 1),
            ret_a(),
        ];
        assert_eq!(ret(&p, &frame, 6), 0xaabb);
        // X + k overflows 32 bits: libpcap and the kernel reject rather than wrap to 1.
        let wrap = [
            insn(LDX | W | IMM, 0, 0, u32::MAX),
            insn(LD | B | IND, 0, 0, 2),
            insn(RET, 0, 0, 7),
        ];
        assert_eq!(ret(&wrap, &frame, 6), 0);
        let past = [
            insn(LDX | W | IMM, 0, 0, 3),
            insn(LD | W | IND, 0, 0, 0),
            insn(RET, 0, 0, 7),
        ];
        assert_eq!(ret(&past, &frame, 6), 0);
    }

    #[test]
    fn ldx_msh_is_ipv4_header_length() {
        let p = [
            insn(LDX | B | MSH, 0, 0, 1),
            insn(MISC | TXA, 0, 0, 0),
            ret_a(),
        ];
        assert_eq!(ret(&p, &[0x00, 0x46], 2), 24);
        assert_eq!(ret(&p, &[0x00], 1), 0);
    }

    #[test]
    fn len_loads_see_wire_length_not_capture_length() {
        let a = [insn(LD | W | LEN, 0, 0, 0), ret_a()];
        let x = [
            insn(LDX | W | LEN, 0, 0, 0),
            insn(MISC | TXA, 0, 0, 0),
            ret_a(),
        ];
        assert_eq!(ret(&a, &[0; 10], 1514), 1514);
        assert_eq!(ret(&x, &[0; 10], 9000), 9000);
    }

    #[test]
    fn immediates_scratch_memory_and_transfers() {
        let p = [
            insn(LD | W | IMM, 0, 0, 7),
            insn(ST, 0, 0, 15),
            insn(LDX | W | IMM, 0, 0, 9),
            insn(STX, 0, 0, 0),
            insn(LD | W | IMM, 0, 0, 0),
            insn(LDX | W | MEM, 0, 0, 15), // X = 7
            insn(LD | W | MEM, 0, 0, 0),   // A = 9
            insn(ALU | MUL | SRC_X, 0, 0, 0),
            ret_a(),
        ];
        assert_eq!(ret(&p, &[], 0), 63);
        let tax = [
            insn(LD | W | IMM, 0, 0, 5),
            insn(MISC | TAX, 0, 0, 0),
            insn(LD | W | IMM, 0, 0, 0),
            insn(MISC | TXA, 0, 0, 0),
            ret_a(),
        ];
        assert_eq!(ret(&tax, &[], 0), 5);
    }

    // ---- ALU ----------------------------------------------------------------------------

    #[test]
    fn alu_with_constant_and_x() {
        let cases: [(u16, u32, u32, u32); 12] = [
            (ADD, 0xffff_ffff, 2, 1),
            (SUB, 1, 2, 0xffff_ffff),
            (MUL, 0x8000_0001, 2, 2),
            (DIV, 17, 5, 3),
            (MOD, 17, 5, 2),
            (AND, 0xf0f0, 0xff00, 0xf000),
            (OR, 0xf0f0, 0x0f00, 0xfff0),
            (XOR, 0xf0f0, 0xffff, 0x0f0f),
            (LSH, 1, 31, 0x8000_0000),
            (RSH, 0x8000_0000, 31, 1),
            (LSH, 3, 0, 3),
            (RSH, 3, 1, 1),
        ];
        for (op, a, v, want) in cases {
            let with_k = [
                insn(LD | W | IMM, 0, 0, a),
                insn(ALU | op | SRC_K, 0, 0, v),
                ret_a(),
            ];
            let with_x = [
                insn(LD | W | IMM, 0, 0, a),
                insn(LDX | W | IMM, 0, 0, v),
                insn(ALU | op | SRC_X, 0, 0, 0),
                ret_a(),
            ];
            assert_eq!(ret(&with_k, &[], 0), want, "op {op:#x} K");
            assert_eq!(ret(&with_x, &[], 0), want, "op {op:#x} X");
        }
        let neg = [
            insn(LD | W | IMM, 0, 0, 1),
            insn(ALU | NEG, 0, 0, 0),
            ret_a(),
        ];
        assert_eq!(ret(&neg, &[], 0), u32::MAX);
    }

    #[test]
    fn division_by_zero_x_rejects() {
        for op in [DIV, MOD] {
            let p = [
                insn(LD | W | IMM, 0, 0, 10),
                insn(LDX | W | IMM, 0, 0, 0),
                insn(ALU | op | SRC_X, 0, 0, 0),
                insn(RET, 0, 0, 1),
            ];
            assert_eq!(ret(&p, &[], 0), 0, "op {op:#x}");
        }
    }

    #[test]
    fn shift_by_x_of_32_or_more_gives_zero() {
        for (op, x) in [(LSH, 32), (RSH, 32), (LSH, 255), (RSH, u32::MAX)] {
            let p = [
                insn(LD | W | IMM, 0, 0, 0xffff_ffff),
                insn(LDX | W | IMM, 0, 0, x),
                insn(ALU | op | SRC_X, 0, 0, 0),
                ret_a(),
            ];
            assert_eq!(ret(&p, &[], 0), 0, "op {op:#x} by {x}");
        }
    }

    // ---- jumps and returns --------------------------------------------------------------

    #[test]
    fn conditional_jumps_with_constant_and_x() {
        // (cond, A, operand, taken?)
        let cases = [
            (JEQ, 5, 5, true),
            (JEQ, 5, 6, false),
            (JGT, 6, 5, true),
            (JGT, 5, 5, false),
            (JGE, 5, 5, true),
            (JGE, 4, 5, false),
            (JSET, 0b1010, 0b0010, true),
            (JSET, 0b1010, 0b0101, false),
        ];
        for (cond, a, v, taken) in cases {
            let want = if taken { 1 } else { 2 };
            let with_k = [
                insn(LD | W | IMM, 0, 0, a),
                insn(JMP | cond | SRC_K, 1, 0, v),
                insn(RET, 0, 0, 2),
                insn(RET, 0, 0, 1),
            ];
            let with_x = [
                insn(LD | W | IMM, 0, 0, a),
                insn(LDX | W | IMM, 0, 0, v),
                insn(JMP | cond | SRC_X, 1, 0, 0),
                insn(RET, 0, 0, 2),
                insn(RET, 0, 0, 1),
            ];
            assert_eq!(ret(&with_k, &[], 0), want, "cond {cond:#x} K {a} {v}");
            assert_eq!(ret(&with_x, &[], 0), want, "cond {cond:#x} X {a} {v}");
        }
    }

    #[test]
    fn unconditional_jump_and_returns() {
        let p = [
            insn(JMP | JA, 0, 0, 2),
            insn(RET, 0, 0, 1),
            insn(RET, 0, 0, 2),
            insn(RET, 0, 0, 3),
        ];
        assert_eq!(ret(&p, &[], 0), 3);
        let accept = prog(&[insn(RET, 0, 0, 0xffff_ffff)]);
        let reject = prog(&[insn(RET, 0, 0, 0)]);
        assert!(accept.matches(&[], 0));
        assert!(!reject.matches(&[1, 2, 3], 3));
        let a = prog(&[insn(LD | B | ABS, 0, 0, 0), ret_a()]);
        assert!(a.matches(&[1], 1));
        assert!(!a.matches(&[0], 1));
    }

    #[test]
    fn ancillary_loads_are_kernel_only() {
        // SKF_AD_OFF + SKF_AD_PKTTYPE, what libpcap emits for `inbound` on Ethernet.
        let p = prog(&[insn(LD | W | ABS, 0, 0, SKF_AD_OFF + 4), insn(RET, 0, 0, 1)]);
        assert!(p.needs_kernel_metadata());
        assert!(!p.matches(&[0; 64], 64));
        let plain = prog(&[insn(LD | W | ABS, 0, 0, 0), insn(RET, 0, 0, 1)]);
        assert!(!plain.needs_kernel_metadata());
    }

    // ---- the checker --------------------------------------------------------------------

    #[test]
    fn checker_refuses_invalid_programs() {
        let ret1 = insn(RET, 0, 0, 1);
        let why = rejected(&[]);
        assert!(why.contains("empty"), "{why}");
        let why = rejected(&[insn(LD | W | IMM, 0, 0, 1)]);
        assert!(why.contains("does not return"), "{why}");
        let why = rejected(&[insn(JMP | JEQ, 1, 0, 0), ret1]);
        assert!(why.contains("past the end"), "{why}");
        let why = rejected(&[insn(JMP | JGT | SRC_X, 0, 1, 0), ret1]);
        assert!(why.contains("past the end"), "{why}");
        let why = rejected(&[insn(JMP | JA, 0, 0, u32::MAX), ret1]);
        assert!(why.contains("past the end"), "{why}");
        let why = rejected(&[insn(ST, 0, 0, 16), ret1]);
        assert!(why.contains("16 cells"), "{why}");
        let why = rejected(&[insn(LDX | W | MEM, 0, 0, u32::MAX), ret1]);
        assert!(why.contains("16 cells"), "{why}");
        let why = rejected(&[insn(ALU | DIV | SRC_K, 0, 0, 0), ret1]);
        assert!(why.contains("zero"), "{why}");
        let why = rejected(&[insn(ALU | MOD | SRC_K, 0, 0, 0), ret1]);
        assert!(why.contains("zero"), "{why}");
        let why = rejected(&[insn(ALU | LSH | SRC_K, 0, 0, 32), ret1]);
        assert!(why.contains("shift"), "{why}");
        let why = rejected(&[insn(RET | SRC_X, 0, 0, 0)]);
        assert!(why.contains("unknown opcode"), "{why}");
        // BPF_MISC|BPF_COP, a libpcap extension the kernel lacks; NEG with the X bit; LD W ABS
        // with mode bits of MSH on LD.
        for code in [
            MISC | 0x20,
            ALU | NEG | SRC_X,
            LD | B | MSH,
            0xffff,
            LDX | W | ABS,
        ] {
            let why = rejected(&[insn(code, 0, 0, 0), ret1]);
            assert!(why.contains("unknown opcode"), "{code:#x}: {why}");
        }
        let why = rejected(&vec![ret1; MAX_INSNS + 1]);
        assert!(why.contains("at most 4096"), "{why}");
        assert_eq!(prog(&vec![ret1; MAX_INSNS]).instructions().len(), MAX_INSNS);
        // SKF_NET_OFF: the kernel would read the network header, we would read nothing.
        let why = rejected(&[insn(LD | B | ABS, 0, 0, 0xfff0_0000), ret1]);
        assert!(why.contains("header or metadata"), "{why}");
        // An ancillary offset the kernel does not define.
        let why = rejected(&[insn(LD | W | ABS, 0, 0, SKF_AD_OFF + 400), ret1]);
        assert!(why.contains("header or metadata"), "{why}");
    }

    #[test]
    fn unwritten_scratch_reads_are_kept_but_marked_for_the_kernel() {
        let ret1 = insn(RET, 0, 0, 1);
        let f = prog(&[insn(LD | W | MEM, 0, 0, 3), insn(RET | RVAL_A, 0, 0, 0)]);
        let why = f.kernel_refusal().unwrap_or_default();
        assert!(why.contains("before it is written"), "{why}");
        // Cells start at 0, as in libpcap's interpreter: A = M[3] = 0, so no match.
        assert!(!f.matches(&[0u8; 60], 60));
        // Written on the taken path only.
        let f = prog(&[
            insn(JMP | JEQ, 0, 1, 0),
            insn(ST, 0, 0, 3),
            insn(LDX | W | MEM, 0, 0, 3),
            ret1,
        ]);
        let why = f.kernel_refusal().unwrap_or_default();
        assert!(why.contains("before it is written"), "{why}");
        // Written on both paths: fine. Unreachable code reading memory is fine too.
        let f = prog(&[
            insn(JMP | JEQ, 0, 2, 0),
            insn(ST, 0, 0, 3),
            insn(JMP | JA, 0, 0, 1),
            insn(STX, 0, 0, 3),
            insn(LDX | W | MEM, 0, 0, 3),
            ret1,
            insn(LD | W | MEM, 0, 0, 9),
            ret1,
        ]);
        assert_eq!(f.kernel_refusal(), None);
    }

    #[test]
    fn random_programs_never_panic() {
        let mut rng = Rng(0x5eed_0001);
        // Mostly opcodes the checker knows, so that many programs get to run.
        let mut known = vec![
            0x00, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x60, 0x80, 0x01, 0x61, 0x81, 0xb1, 0x02,
            0x03, 0x84, 0x05, 0x06, 0x16, 0x07, 0x87,
        ];
        for op in [ADD, SUB, MUL, DIV, MOD, AND, OR, XOR, LSH, RSH] {
            known.extend([ALU | op | SRC_K, ALU | op | SRC_X]);
        }
        for cond in [JEQ, JGT, JGE, JSET] {
            known.extend([JMP | cond | SRC_K, JMP | cond | SRC_X]);
        }
        let frames: Vec<Vec<u8>> = (0..8)
            .map(|i| (0..i * 9).map(|_| rng.byte()).collect())
            .collect();
        let mut accepted = 0;
        for _ in 0..20_000 {
            let len = 1 + rng.below(12);
            let mut insns: Vec<BpfInsn> = (0..len)
                .map(|_| BpfInsn {
                    code: if rng.below(10) == 0 {
                        rng.next() as u16
                    } else {
                        rng.pick(&known)
                    },
                    jt: rng.below(4) as u8,
                    jf: rng.below(4) as u8,
                    k: match rng.below(4) {
                        0 => rng.below(20) as u32,
                        1 => rng.below(70) as u32,
                        2 => rng.next() as u32,
                        _ => 0,
                    },
                })
                .collect();
            if rng.below(2) == 0 {
                insns.push(insn(RET | RVAL_A, 0, 0, 0));
            }
            if let Ok(f) = BpfFilter::from_insns("(random)", 1, insns) {
                accepted += 1;
                for frame in &frames {
                    let _ = f.matches(frame, rng.next() as u32);
                }
            }
        }
        assert!(
            accepted > 1_500,
            "only {accepted} random programs passed the checker"
        );
    }

    // ---- libpcap ------------------------------------------------------------------------

    #[cfg(feature = "bpf")]
    #[test]
    fn bad_expression_reports_libpcaps_message() {
        let err = BpfFilter::compile("tcp prt 80", 1).unwrap_err();
        assert_eq!(err.expression(), "tcp prt 80");
        assert_eq!(err.link_type(), 1);
        assert!(err.message().contains("syntax error"), "{}", err.message());
        assert_eq!(
            err.to_string(),
            r#"bad filter expression "tcp prt 80": syntax error"#
        );
        let err = BpfFilter::compile("port 99999", 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"bad filter expression "port 99999": illegal port number 99999 > 65535"#
        );
        // Link-type-dependent refusals come from libpcap too.
        let err = BpfFilter::compile("vlan 10", 101).unwrap_err();
        assert!(err.message().contains("VLAN"), "{}", err.message());
        let err = BpfFilter::compile("ether broadcast", 113).unwrap_err();
        assert!(!err.message().is_empty());
        // Not representable as a C string: the crate's own error, still one line.
        let err = BpfFilter::compile("tcp\0\n", 1).unwrap_err();
        assert!(!err.to_string().contains('\n'), "{err}");
        let err = BpfFilter::compile("tcp", u32::MAX).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("bad filter expression \"tcp\": "));
        let boxed: Box<dyn std::error::Error> = Box::new(err);
        assert!(!boxed.to_string().is_empty());
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn compiled_program_is_libpcaps() {
        let f = compile("tcp", 1);
        assert_eq!(f.expression(), "tcp");
        assert_eq!(f.link_type(), 1);
        let cap = pcap::Capture::dead(pcap::Linktype(1)).unwrap();
        let theirs = cap.compile("tcp", true).unwrap();
        let theirs: Vec<String> = theirs
            .get_instructions()
            .iter()
            .map(|i| i.to_string())
            .collect();
        let ours: Vec<String> = f
            .instructions()
            .iter()
            .map(|i| format!("{} {} {} {}", i.code, i.jt, i.jf, i.k))
            .collect();
        assert_eq!(ours, theirs);
        // The dead handle's snapshot length (65535) is the "accept" verdict.
        assert!(f.instructions().contains(&insn(RET, 0, 0, 65535)));
        assert!(compile("", 1).matches(&[], 0));
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn dead_handle_vlan_uses_plain_loads() {
        for expr in ["vlan", "vlan 10", "vlan and tcp", "vlan 10 and vlan 20"] {
            let f = compile(expr, 1);
            assert!(!f.needs_kernel_metadata(), "{expr}");
            assert!(
                f.instructions().iter().all(|i| i.k < SKF_LL_OFF),
                "{expr}: {:?}",
                f.instructions()
            );
        }
        // `inbound` on Ethernet does use SKF_AD_PKTTYPE even on a dead handle.
        let inbound = compile("inbound", 1);
        assert!(inbound.needs_kernel_metadata());
        // On Linux cooked captures the packet type is in the header instead.
        assert!(!compile("inbound", 113).needs_kernel_metadata());
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn link_types_are_translated_for_libpcap() {
        // 101 is LINKTYPE_RAW; libpcap's dead handle wants DLT_RAW (12 on Linux).
        let raw = compile("udp port 53", 101);
        let frame = ipv4(
            17,
            [192, 0, 2, 1],
            [198, 51, 100, 7],
            0,
            &udp(5353, 53, b"q"),
        );
        assert!(raw.matches(&frame, frame.len() as u32));
        assert_eq!(raw.link_type(), 101);
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn truncated_capture_keeps_wire_length_semantics() {
        let greater = compile("greater 100", 1);
        let frame = [0u8; 60];
        assert!(greater.matches(&frame, 1514));
        assert!(!greater.matches(&frame, 60));
        // Headers present but payload cut: still matches; a test past the cut rejects.
        let full = eth_ipv4(
            6,
            [192, 0, 2, 1],
            [198, 51, 100, 7],
            &tcp(1234, 80, 0x02, &[7; 200]),
        );
        let cut = &full[..54];
        let wire = full.len() as u32;
        assert!(compile("tcp port 80", 1).matches(cut, wire));
        assert!(!compile("tcp[100] = 7", 1).matches(cut, wire));
        assert!(compile("tcp[100] = 7", 1).matches(&full, wire));
    }

    // ---- frames for the differential test -----------------------------------------------

    #[cfg(feature = "bpf")]
    const MAC_A: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
    #[cfg(feature = "bpf")]
    const MAC_B: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
    #[cfg(feature = "bpf")]
    const BROADCAST: [u8; 6] = [0xff; 6];

    #[cfg(feature = "bpf")]
    fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(14 + payload.len());
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// The rest of an 802.1Q/802.1ad tag (TCI, then the inner EtherType), for a frame whose
    /// EtherType field holds the TPID.
    #[cfg(feature = "bpf")]
    fn tagged(vid: u16, inner: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&vid.to_be_bytes());
        f.extend_from_slice(&inner.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[cfg(feature = "bpf")]
    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], frag_offset: u16, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut p = vec![0x45, 0x00];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0x12, 0x34]);
        p.extend_from_slice(&frag_offset.to_be_bytes());
        p.extend_from_slice(&[64, proto, 0, 0]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(payload);
        p
    }

    #[cfg(feature = "bpf")]
    fn ipv6(next: u8, src_last: u8, dst_last: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        for last in [src_last, dst_last] {
            p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            p.extend_from_slice(&[0; 11]);
            p.push(last);
        }
        p.extend_from_slice(payload);
        p
    }

    #[cfg(feature = "bpf")]
    fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        t.extend_from_slice(payload);
        t
    }

    #[cfg(feature = "bpf")]
    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    #[cfg(feature = "bpf")]
    fn eth_ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
        eth(MAC_B, MAC_A, 0x0800, &ipv4(proto, src, dst, 0, l4))
    }

    #[cfg(feature = "bpf")]
    fn arp_request() -> Vec<u8> {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
        a.extend_from_slice(&MAC_A);
        a.extend_from_slice(&[192, 0, 2, 1]);
        a.extend_from_slice(&[0; 6]);
        a.extend_from_slice(&[192, 0, 2, 2]);
        a
    }

    /// Linux cooked header (`LINKTYPE_LINUX_SLL`): packet type, ARPHRD, address, protocol.
    #[cfg(feature = "bpf")]
    fn sll(packet_type: u16, protocol: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&packet_type.to_be_bytes());
        f.extend_from_slice(&1u16.to_be_bytes());
        f.extend_from_slice(&6u16.to_be_bytes());
        f.extend_from_slice(&MAC_A);
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&protocol.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Network-layer packets (EtherType, bytes) shared by all three link types.
    #[cfg(feature = "bpf")]
    fn network_packets(rng: &mut Rng) -> Vec<(u16, Vec<u8>)> {
        let host = [192, 0, 2, 1];
        let peer = [198, 51, 100, 7];
        let other = [203, 0, 113, 9];
        let v4 = |proto, src, dst, l4: Vec<u8>| (0x0800, ipv4(proto, src, dst, 0, &l4));
        let v6 = |next, l4: Vec<u8>| (0x86dd, ipv6(next, 1, 2, &l4));
        let get = b"GET / HTTP/1.1\r\n";
        let mut v = vec![
            v4(6, peer, host, tcp(40000, 80, 0x02, b"")),
            v4(6, host, peer, tcp(443, 40001, 0x12, b"")),
            v4(6, host, other, tcp(22, 50000, 0x18, b"ssh")),
            v4(6, other, host, tcp(50000, 22, 0x10, b"")),
            v4(6, peer, other, tcp(8010, 8443, 0x11, &[0; 80])),
            v4(6, peer, host, tcp(1234, 80, 0x18, get)),
            v4(17, host, peer, udp(53, 33000, &[0xab; 40])),
            v4(17, other, host, udp(5353, 5353, b"")),
            v4(17, peer, [255; 4], udp(68, 67, &[0; 240])),
            v4(17, peer, [224, 0, 0, 251], udp(1500, 1500, b"")),
            v4(1, host, peer, vec![8, 0, 0, 0, 0, 1, 0, 1]),
            v4(1, peer, host, vec![0, 0, 0, 0, 0, 1, 0, 1]),
            v4(47, peer, other, vec![0, 0, 0x08, 0x00]),
            (0x0800, ipv4(6, peer, host, 0x2001, &tcp(1, 80, 0, b""))),
            (0x0800, ipv4(6, peer, host, 0x00b9, &[0; 16])),
            v6(6, tcp(40000, 443, 0x02, b"")),
            v6(17, udp(53, 40000, &[1; 30])),
            v6(58, vec![128, 0, 0, 0, 0, 1, 0, 1]),
            v6(44, vec![6, 0, 0, 1, 0, 0, 0, 0, 0, 80, 0, 80]),
            (0x0806, arp_request()),
            (0x88cc, vec![0x02, 0x07, 0x04]),
        ];
        // Random packets with a plausible start, so filters get past their first tests.
        let hosts = [host, peer, other, [0; 4], [255; 4]];
        let ports: [u16; 10] = [22, 53, 80, 443, 1000, 1500, 2000, 8010, 8443, 65535];
        for _ in 0..200 {
            let proto = rng.pick(&[1, 6, 17, 47, 58, 0]);
            let mut l4: Vec<u8> = (0..rng.below(60)).map(|_| rng.byte()).collect();
            if l4.len() >= 4 {
                l4[..2].copy_from_slice(&rng.pick(&ports).to_be_bytes());
                l4[2..4].copy_from_slice(&rng.pick(&ports).to_be_bytes());
            }
            let packet = if rng.below(3) == 0 {
                (0x86dd, ipv6(proto, rng.byte(), rng.byte(), &l4))
            } else {
                let any = rng.next() as u16;
                let frag = rng.pick(&[0, 0, 0x2000, 0x4000, 0x0001, any]);
                let mut p = ipv4(proto, rng.pick(&hosts), rng.pick(&hosts), frag, &l4);
                if rng.below(4) == 0 {
                    p[0] = 0x40 | (rng.byte() & 0x0f); // odd header lengths
                }
                (0x0800, p)
            };
            v.push(packet);
        }
        v
    }

    /// Cuts, flips and noise applied to a well-formed frame.
    #[cfg(feature = "bpf")]
    fn mutate(frame: &[u8], rng: &mut Rng) -> Vec<u8> {
        let mut f = frame.to_vec();
        match rng.below(3) {
            0 => f.truncate(rng.below(f.len() + 1)),
            1 => {
                for _ in 0..1 + rng.below(3) {
                    if !f.is_empty() {
                        let i = rng.below(f.len());
                        f[i] = rng.byte();
                    }
                }
            }
            _ => f.extend((0..rng.below(40)).map(|_| rng.byte())),
        }
        f
    }

    #[cfg(feature = "bpf")]
    fn frames_for(link_type: u32, rng: &mut Rng) -> Vec<Vec<u8>> {
        let packets = network_packets(rng);
        let mut frames = Vec::new();
        for (ethertype, packet) in &packets {
            match link_type {
                1 => {
                    let dst = rng.pick(&[MAC_A, MAC_B, BROADCAST, [0x01, 0, 0x5e, 0, 0, 1]]);
                    frames.push(eth(dst, MAC_A, *ethertype, packet));
                    for (tpid, vid) in [(0x8100, 10), (0x8100, 20), (0x88a8, 10), (0x9100, 4095)] {
                        frames.push(eth(MAC_B, MAC_A, tpid, &tagged(vid, *ethertype, packet)));
                    }
                    // Q-in-Q: outer 20, inner 10.
                    let inner = tagged(10, *ethertype, packet);
                    frames.push(eth(MAC_B, MAC_A, 0x88a8, &tagged(20, 0x8100, &inner)));
                }
                113 => {
                    for packet_type in [0, 4] {
                        frames.push(sll(packet_type, *ethertype, packet));
                    }
                }
                _ => {
                    if matches!(ethertype, 0x0800 | 0x86dd) {
                        frames.push(packet.clone());
                    }
                }
            }
        }
        let shaped = frames.len();
        for i in 0..shaped * 2 {
            let m = mutate(&frames[i % shaped], rng);
            frames.push(m);
        }
        for _ in 0..500 {
            let len = rng.pick(&[0, 1, 13, 14, 20, 34, 54, 64, 100, 200]) + rng.below(8);
            frames.push((0..len).map(|_| rng.byte()).collect());
        }
        frames
    }

    #[cfg(feature = "bpf")]
    const EXPRESSIONS: &[&str] = &[
        "",
        "tcp",
        "udp",
        "ip",
        "ip6",
        "arp",
        "icmp",
        "icmp6",
        "udp port 53",
        "vlan",
        "vlan 10",
        "vlan 20",
        "vlan and tcp",
        "vlan 20 and vlan 10 and ip",
        "tcp[tcpflags] & tcp-syn != 0",
        "tcp[tcpflags] & (tcp-syn|tcp-ack) = (tcp-syn|tcp-ack)",
        "ip[6:2] & 0x1fff = 0",
        "greater 100",
        "less 64",
        "len >= 60 and len <= 100",
        "host 192.0.2.1 and not port 22",
        "net 198.51.100.0/24",
        "src net 192.0.2.0/25 or dst host 203.0.113.9",
        "ip proto 47",
        "ether broadcast",
        "ether multicast",
        "ether host 00:11:22:33:44:55",
        "ether proto 0x88cc",
        "ip multicast",
        "ip broadcast",
        "tcp and ( port 80 or port 443 or port 8010 or port 8443 )",
        "portrange 1000-2000",
        "ip6 and tcp port 443",
        "ip6 and udp",
        "icmp[icmptype] = icmp-echo",
        "ip[0] & 0xf != 5",
        "tcp port 80 and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)",
        "tcp[((tcp[12]&0xf0)>>2):4] = 0x47455420",
        "ip[1] * 3 + 1 = 1",
        "100 / ip[1] = 1",
        "100 % ip[1] = 0",
        "ip[1] ^ 0xff = 0xff",
        "-ip[1] = 0",
        "ip[8] << ip[9] = 0",
        "ip[8] >> ip[9] = 0",
        "ip[len - 1] = 0 or udp[len - 60] > 3",
        "inbound",
        "outbound",
        "not tcp and not udp",
        "udp and udp[8:4] = 0xabababab",
    ];

    #[cfg(feature = "bpf")]
    fn differential(link_type: u32, seed: u64) {
        let mut rng = Rng(seed);
        let frames = frames_for(link_type, &mut rng);
        let dlt = linktype_to_dlt(link_type) as i32;
        let mut compiled = 0;
        let mut accepted_somewhere = 0;
        for &expr in EXPRESSIONS {
            let cap = pcap::Capture::dead(pcap::Linktype(dlt)).unwrap();
            let oracle = cap.compile(expr, true);
            let ours = BpfFilter::compile(expr, link_type);
            let (oracle, ours) = match (oracle, ours) {
                (Ok(o), Ok(f)) => (o, f),
                (Err(_), Err(_)) => continue,
                (o, f) => panic!(
                    "{expr} on {link_type}: libpcap {:?}, ours {:?}",
                    o.err(),
                    f.err()
                ),
            };
            compiled += 1;
            let mut hits = 0;
            for frame in &frames {
                let want = oracle.filter(frame);
                let got = ours.matches(frame, frame.len() as u32);
                assert_eq!(
                    got, want,
                    "{expr:?} on link type {link_type}, frame {frame:02x?}"
                );
                hits += usize::from(got);
            }
            if hits > 0 && hits < frames.len() {
                accepted_somewhere += 1;
            }
        }
        assert!(
            compiled >= 30,
            "only {compiled} expressions compiled for {link_type}"
        );
        // Most filters should split the frames, or the comparison proves little.
        assert!(
            accepted_somewhere * 3 >= compiled * 2,
            "{accepted_somewhere} of {compiled} filters split the frames on {link_type}"
        );
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn matches_libpcap_on_ethernet() {
        differential(1, 0xe7e7_0001);
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn matches_libpcap_on_linux_cooked() {
        differential(113, 0x5110_0113);
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn matches_libpcap_on_raw_ip() {
        differential(101, 0x0a0a_0101);
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn hand_built_frames_match_as_expected() {
        let syn = eth_ipv4(
            6,
            [198, 51, 100, 7],
            [192, 0, 2, 1],
            &tcp(40000, 80, 0x02, b""),
        );
        let dns = eth_ipv4(17, [192, 0, 2, 1], [198, 51, 100, 7], &udp(53, 40000, b"x"));
        let arp = eth(BROADCAST, MAC_A, 0x0806, &arp_request());
        let ip = ipv4(6, [1, 1, 1, 1], [2, 2, 2, 2], 0, &tcp(1, 443, 0x10, b""));
        let vlan10 = eth(MAC_B, MAC_A, 0x8100, &tagged(10, 0x0800, &ip));
        let cases: &[(&str, &[u8], bool)] = &[
            ("tcp[tcpflags] & tcp-syn != 0", &syn, true),
            ("tcp[tcpflags] & tcp-syn != 0", &dns, false),
            ("udp port 53", &dns, true),
            ("udp port 53", &syn, false),
            ("arp and ether broadcast", &arp, true),
            ("host 192.0.2.1 and not port 22", &syn, true),
            ("net 198.51.100.0/24", &dns, true),
            ("vlan 10 and tcp port 443", &vlan10, true),
            ("vlan 20", &vlan10, false),
            ("tcp", &vlan10, false),
        ];
        for &(expr, frame, want) in cases {
            let f = compile(expr, 1);
            assert_eq!(f.matches(frame, frame.len() as u32), want, "{expr}");
        }
    }

    /// `tcpdump -ddd -y EN10MB 'udp port 53'` (libpcap 1.10), pasted: a program compiled
    /// elsewhere runs without libpcap.
    const UDP_53_DDD: &str = "20
40 0 0 12
21 0 6 34525
48 0 0 20
21 0 15 17
40 0 0 54
21 12 0 53
40 0 0 56
21 10 11 53
21 0 10 2048
48 0 0 23
21 0 8 17
40 0 0 20
69 6 0 8191
177 0 0 14
72 0 0 14
21 2 0 53
72 0 0 16
21 0 1 53
6 0 0 262144
6 0 0 0
";

    #[test]
    fn ddd_text_runs_without_libpcap() {
        let f = BpfFilter::from_ddd("udp port 53", 1, UDP_53_DDD).unwrap();
        assert_eq!(f.instructions().len(), 20);
        assert_eq!(f.expression(), "udp port 53");
        let mut dns = vec![0u8; 14 + 20 + 8];
        dns[12..14].copy_from_slice(&[0x08, 0x00]);
        dns[14] = 0x45;
        dns[23] = 17;
        dns[36..38].copy_from_slice(&53u16.to_be_bytes());
        assert!(f.matches(&dns, dns.len() as u32));
        dns[23] = 6; // TCP, same port
        assert!(!f.matches(&dns, dns.len() as u32));
        assert!(!f.matches(&dns[..20], dns.len() as u32));
    }

    #[test]
    fn ddd_text_errors_are_values() {
        let count = BpfFilter::from_ddd("x", 1, "3\n6 0 0 1\n").unwrap_err();
        assert!(count.message().contains("first line says 3"), "{count}");
        let bad = BpfFilter::from_ddd("x", 1, "1\n6 0 zero 1\n").unwrap_err();
        assert!(bad.message().contains("unreadable"), "{bad}");
        assert!(BpfFilter::from_ddd("x", 1, "").is_err());
        // The checker still applies: a program that does not end in a return.
        let open_end = BpfFilter::from_ddd("x", 1, "1\n40 0 0 12\n").unwrap_err();
        assert!(open_end.message().contains("checker"), "{open_end}");
        let ok = BpfFilter::from_program("all", 1, vec![insn(0x06, 0, 0, 1)]).unwrap();
        assert!(ok.matches(&[], 0));
    }

    #[cfg(feature = "bpf")]
    #[test]
    fn ddd_text_is_what_libpcap_compiles() {
        // tcpdump's snapshot length is 262144, the pcap crate's dead handle's 65535: only the
        // accepting `ret` constants differ.
        let snap = |insns: &[BpfInsn]| -> Vec<BpfInsn> {
            insns
                .iter()
                .map(|i| match i.code {
                    0x06 if i.k != 0 => BpfInsn { k: 1, ..*i },
                    _ => *i,
                })
                .collect()
        };
        let ours = BpfFilter::from_ddd("udp port 53", 1, UDP_53_DDD).unwrap();
        let libpcap = compile("udp port 53", 1);
        assert_eq!(snap(ours.instructions()), snap(libpcap.instructions()));
    }
}
