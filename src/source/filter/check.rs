//! The checker: the kernel's admission rules for classic BPF programs, and the decoding of
//! each instruction into the interpreter's [`Op`].

use super::interp::Op;
use super::*;

pub(super) struct Checked {
    pub(super) ops: Vec<Op>,
    pub(super) needs_kernel_metadata: bool,
    /// Why the kernel would refuse the program although it is safe to run here.
    pub(super) kernel_refusal: Option<String>,
}

/// Decodes a program and applies the kernel's admission rules (`bpf_check_classic` and
/// `check_load_and_stores` in `net/core/filter.c`): known opcodes only, at most 4096
/// instructions, every jump lands inside the program, the last instruction returns, scratch
/// indices < 16, no constant division by zero or shift by 32 or more, and no scratch cell
/// read on a path where it was never written.
pub(super) fn check(insns: &[BpfInsn]) -> Result<Checked, String> {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;

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
}
