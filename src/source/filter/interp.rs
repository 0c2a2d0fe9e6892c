//! The interpreter: one [`Op`] per checked instruction, run over a frame without allocating.

use super::MEM_WORDS;

/// A checked instruction, one variant per opcode so that the interpreter dispatches once per
/// instruction. Jump targets are absolute and in range, scratch indices < 16, constant
/// divisors non-zero, constant shifts < 32; the interpreter still never indexes unchecked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
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
pub(super) fn run(ops: &[Op], frame: &[u8], wire_len: u32) -> u32 {
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
    use super::super::test_support::*;
    use super::super::*;

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
}
