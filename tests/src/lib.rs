//! Host-side integration and model tests for s2rmap.
//!
//! - [`refmodel`]: a reference model of every transition, written from
//!   the transition table with plain maps, used by the state-machine
//!   tests in `tests/model.rs`.
//! - [`sut`]: the real tracker driven through the register-level
//!   dispatcher, and a reader that turns its tables back into the model's
//!   shape.

pub mod refmodel;
pub mod strategies;
pub mod sut;
