//! Program builders and a small random generator shared by the filter's tests.

use super::*;

// ---- helpers ------------------------------------------------------------------------

pub(super) fn insn(code: u16, jt: u8, jf: u8, k: u32) -> BpfInsn {
    BpfInsn { code, jt, jf, k }
}

pub(super) fn prog(insns: &[BpfInsn]) -> BpfFilter {
    match BpfFilter::from_insns("(hand-built)", 1, insns.to_vec()) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    }
}

pub(super) fn rejected(insns: &[BpfInsn]) -> String {
    match BpfFilter::from_insns("(hand-built)", 1, insns.to_vec()) {
        Ok(_) => panic!("checker accepted {insns:?}"),
        Err(e) => e.message().to_owned(),
    }
}

/// Runs a hand-built program and returns its raw return value.
pub(super) fn ret(insns: &[BpfInsn], frame: &[u8], wire_len: u32) -> u32 {
    run(&prog(insns).ops, frame, wire_len)
}

pub(super) fn ret_a() -> BpfInsn {
    insn(RET | RVAL_A, 0, 0, 0)
}

#[cfg(feature = "bpf")]
pub(super) fn compile(expr: &str, link_type: u32) -> BpfFilter {
    match BpfFilter::compile(expr, link_type) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    }
}

/// splitmix64: small, seeded, good enough to spread test inputs.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub(super) fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}
