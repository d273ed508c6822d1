//! `s2sim`: replays scenario files against the real `share` and
//! `hypercalls` code on the host, through the register-level dispatcher
//! that EL2 runs.
//!
//! The scenario language is line-oriented; see the README for the full
//! description. In short:
//!
//! ```text
//! memory 0x40000000 0x200000          # a RAM region (bytes)
//! guest 1 ipa_bits=40                 # protected guest 1, state NEW
//! host_share_hyp 0x40010 -> ok        # a call and its expected result
//! host_share_hyp 0x40010 -> EPERM
//! expect 0x40010 host=SHARED_OWNED hyp=SHARED_BORROWED
//! check                               # every invariant
//! dump 0x40000000 0x200000            # the ownership map, as runs
//! ```
#![forbid(unsafe_code)]

pub mod parse;
pub mod run;

pub use parse::{Line, ParseError, Statement, parse};
pub use run::{Outcome, Runner};
