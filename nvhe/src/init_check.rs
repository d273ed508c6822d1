//! The link proof: one function that Linux's `__pkvm_init_finalise` calls at EL2.
//!
//! It exercises every kind of section the Rust object may bring: `.text`, `.rodata` (a
//! table), and `.bss` (a zero-initialised static written and read back at run time). If
//! any of them were not mapped at EL2, the call would fault or return a wrong value and
//! pKVM init would fail.

use core::sync::atomic::{AtomicU64, Ordering};

/// What [`s2rmap_init_check`] returns when all is well. The C side
/// (`arch/arm64/kvm/hyp/nvhe/setup.c`) carries the same constant.
pub const S2RMAP_INIT_CHECK_MAGIC: u64 = 0x5332_524d_4150_0b75;

/// Lives in `.rodata`. Folded together with the `.bss` state below.
static TABLE: [u64; 8] = [
    0x0000_0000_0000_0001,
    0x0000_0000_0000_0010,
    0x0000_0000_0000_0100,
    0x0000_0000_0000_1000,
    0x0000_0000_0001_0000,
    0x0000_0000_0010_0000,
    0x0000_0000_0100_0000,
    0x5332_524d_4000_0000,
];

/// Lives in `.bss`: zero-initialised, written at run time.
static SEED: AtomicU64 = AtomicU64::new(0);

/// Computes [`S2RMAP_INIT_CHECK_MAGIC`] from `.rodata`, `.bss` and a run-time store.
///
/// The value goes through a `.bss` static so the compiler cannot fold the result into a
/// constant: the load really happens at EL2.
#[unsafe(no_mangle)]
pub extern "C" fn s2rmap_init_check() -> u64 {
    // A value that is not a compile-time constant, stored into and read back from .bss.
    SEED.store(core::hint::black_box(0x0b75), Ordering::Relaxed);
    let seed = SEED.load(Ordering::Relaxed);
    // Hide the table's contents from the optimiser so the loads from .rodata stay.
    let table: &[u64; 8] = core::hint::black_box(&TABLE);
    let mut acc = 0u64;
    for (i, v) in table.iter().enumerate() {
        acc = acc.wrapping_add(v.wrapping_mul(core::hint::black_box(i as u64 + 1)));
    }
    // acc = sum(TABLE[i] * (i + 1)); fold it into the magic.
    acc ^ EXPECTED_ACC ^ S2RMAP_INIT_CHECK_MAGIC ^ seed ^ 0x0b75
}

/// `sum(TABLE[i] * (i + 1))`, computed at compile time.
const EXPECTED_ACC: u64 = {
    let mut acc = 0u64;
    let mut i = 0;
    while i < TABLE.len() {
        acc = acc.wrapping_add(TABLE[i].wrapping_mul(i as u64 + 1));
        i += 1;
    }
    acc
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_magic() {
        assert_eq!(s2rmap_init_check(), S2RMAP_INIT_CHECK_MAGIC);
        assert_eq!(s2rmap_init_check(), S2RMAP_INIT_CHECK_MAGIC);
    }
}
