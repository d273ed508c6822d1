//! TLB maintenance, behind a trait so that every algorithm runs in
//! `cargo test` and so that tests can watch the order of operations.

use crate::PhysAddr;

/// TLB and barrier operations for one stage-2 regime (one VMID).
///
/// The table code calls these in break-before-make order: it writes the
/// invalid descriptor, calls [`invalidate`](Self::invalidate) for the
/// range the old descriptor translated, and only then writes the new one.
pub trait Tlb {
    /// Makes every earlier descriptor write visible to the walker and
    /// removes every cached translation (and cached walk) for IPAs in
    /// `[ipa, ipa + size)`, on every CPU, before returning. `level` is
    /// the level of the descriptor that changed, a TTL hint.
    fn invalidate(&mut self, ipa: u64, size: u64, level: u8);

    /// Makes earlier descriptor writes visible to the walker (a
    /// `dsb ishst`), for changes that created translations where there
    /// were none and so need no invalidation.
    fn publish(&mut self);

    /// Called for every descriptor write, with the descriptor's physical
    /// address and its old and new values. Hardware implementations do
    /// nothing; the host recorder uses it to check break-before-make.
    #[inline]
    fn observe_write(&mut self, _entry: PhysAddr, _ipa: u64, _level: u8, _old: u64, _new: u64) {}
}
