//! VMSAv8-64 stage-2 translation tables with a 4 KiB granule.
//!
//! This crate knows descriptors, walks and the rules of the architecture;
//! it knows nothing of owners or hypercalls. Above it, `ownership` gives
//! the entries of the host stage-2 their meaning.
//!
//! # Invariants
//!
//! - A range update is *prepare, then commit*: it validates the range and
//!   reserves the exact number of table pages it will need before it
//!   writes any descriptor, so every failure (including
//!   [`Error::NoMemory`]) leaves the table unchanged, and the commit step
//!   cannot fail.
//! - A live translation is never changed in place unless only its software
//!   bits change: the entry is first made invalid, the TLB is invalidated
//!   through [`Tlb`], and only then is the new descriptor written
//!   (break-before-make). A table page is freed only after that
//!   invalidation.
//! - Leaves are as large as possible: an update writes a block (or a
//!   block-level invalid descriptor) wherever a whole aligned block takes
//!   one value, and a table whose 512 entries come to say the same thing
//!   again is folded back into one leaf and its page freed.
//! - No descriptor an update writes ever has an attribute or payload bit
//!   outside its field: payloads cannot make an entry valid, attributes
//!   cannot reach the output address.
//!
//! All memory access goes through one audited type (`mm::TablePage`);
//! everything else is safe code. Walks recurse at most once per level
//! (four frames), as KVM's do: the EL2 stack is one page.
#![cfg_attr(not(any(test, feature = "host")), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod config;
pub mod descriptor;
#[cfg(any(test, feature = "host"))]
pub mod host;
pub mod mm;
pub mod table;
pub mod tlb;

pub use config::Stage2Config;
pub use descriptor::{Descriptor, DescriptorKind, InvalidPayload, S2Attrs};
pub use mm::TableAllocator;
pub use table::{InPlace, Leaf, LeafEntry, LeafRun, PageChange, PageCursor, PageTable, Prepared};
pub use tlb::Tlb;

/// log2 of the translation granule.
pub const PAGE_SHIFT: u32 = 12;
/// The translation granule, 4 KiB.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// A physical (output) address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct PhysAddr(pub u64);

/// The number of address bits below the entries of `level` (12 at level
/// 3, 21 at level 2, 30 at level 1, 39 at level 0).
#[must_use]
pub const fn level_shift(level: u8) -> u32 {
    PAGE_SHIFT + 9 * (3 - level as u32)
}

/// The size of the range one descriptor at `level` covers.
#[must_use]
pub const fn level_size(level: u8) -> u64 {
    1 << level_shift(level)
}

/// Why a table operation was refused. Every error is returned before any
/// descriptor changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not enough table pages for the change.
    #[error("out of table pages")]
    NoMemory,
    /// An address is not aligned as the operation requires.
    #[error("address {0:#x} is misaligned")]
    Misaligned(u64),
    /// The range is empty, wraps, or leaves the address space.
    #[error("range {0:#x}..{1:#x} is empty or outside the address space")]
    OutOfRange(u64, u64),
    /// The IPA size is outside 32-48 bits.
    #[error("unsupported IPA size of {0} bits")]
    UnsupportedIpaSize(u8),
}
