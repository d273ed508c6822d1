//! nvhe: the EL2 side of s2rmap.
//!
//! Built two ways:
//! - for `aarch64-unknown-none-softfloat` as a `no_std` staticlib that is linked into
//!   Linux's `kvm_nvhe.o` (see `nvhe/linux/` and `cargo xtask kernel`);
//! - for the host as an ordinary `std` crate, so `cargo test --workspace` covers it.
//!
//! Rules for code in this crate (enforced by `cargo xtask kernel`'s link check):
//! - no mutable static with a non-zero initialiser: EL2 maps no writable `.data`,
//!   only `.hyp.bss`; keep mutable statics zeroed and set them up at init;
//! - no FP/SIMD: EL2 never saves the host's FP/SIMD state around its own use;
//! - no large stack frames: the EL2 stack is one 4 KiB page per CPU.

#![cfg_attr(target_os = "none", no_std)]

pub mod counts;
#[cfg(target_os = "none")]
mod el2;
pub mod idle;
pub mod init_check;
pub mod pool;

#[cfg(target_os = "none")]
mod panic;
