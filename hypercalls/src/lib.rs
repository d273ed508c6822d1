//! The hypercall ABI between the host kernel and s2rmap at EL2.
//!
//! Calls are SMCCC fast calls, SMC64 convention, owned by the vendor
//! hypervisor range, exactly as Linux's `KVM_HOST_SMCCC_ID()` builds them.
//! Function numbers that exist in Linux 6.12's `enum __kvm_host_smccc_func`
//! keep Linux's number; s2rmap's own calls are numbered after Linux's last
//! (`__pkvm_teardown_vm` = 25).
//!
//! Arguments come in `x1..x7`. Like Linux's `handle_host_hcall`, a handled
//! call returns `SMCCC_RET_SUCCESS` in `x0` and `0` or a negative errno in
//! `x1`; an unknown function returns `SMCCC_RET_NOT_SUPPORTED` in `x0`.
//!
//! # Invariants
//!
//! - Every argument is validated here before anything reaches `share`:
//!   overflowing `pfn + nr`, `nr == 0`, `nr` above [`MAX_PAGES_PER_CALL`],
//!   set bits in reserved argument fields: all EINVAL, nothing changes.
//! - Host-provided flags are filtered through an explicit permitted mask.
//! - Every `#[repr(C)]` structure shared with C has its size and field
//!   offsets pinned with `static_assertions`, and `include/s2rmap_abi.h`
//!   is generated from the same description (a test checks they agree).
//! - Calls that a guest or the hyp would make (guest share/unshare,
//!   relinquish, pin/unpin) are refused unless [`Caps::test_calls`] is set,
//!   which only a selftest build does.
#![no_std]
#![forbid(unsafe_code)]

pub mod abi;
mod dispatch;
pub mod header;

pub use abi::*;
pub use dispatch::{Call, Decoded, GuestFactory, decode, dispatch};

/// What this build of the hypervisor lets the host do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    /// Accept the calls a guest or the hyp would normally make, issued by
    /// the host on their behalf (selftest kernels only).
    pub test_calls: bool,
    /// Offer protected guests (a build with a guest table pool factory).
    pub guests: bool,
}

impl Caps {
    /// Everything on: the host model, s2sim and the selftest kernel.
    pub const ALL: Self = Self { test_calls: true, guests: true };
}

#[cfg(any(test, feature = "host"))]
pub mod host;
