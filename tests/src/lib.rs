//! Host-side integration and model tests for s2rmap.
//!
//! - [`refmodel`]: a reference model of every transition, written from
//!   the transition table with plain maps, used by the state-machine
//!   tests in `tests/model.rs`.
//! - [`sut`]: the real tracker driven through the register-level
//!   dispatcher, and a reader that turns its tables back into the model's
//!   shape.

pub mod host_hyp;
pub mod refmodel;
pub mod strategies;
pub mod sut;

use proptest::test_runner::{Config, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

/// Runs random call sequences of up to `max_len` calls through the
/// state-machine test `T`: `$cases_var` sequences if set, else `debug` or
/// `release` by build. Returns the number of sequences, and the failure
/// (already shrunk) if any.
pub fn run_sequences<T>(
    cases_var: &str,
    debug: u32,
    release: u32,
    max_len: usize,
) -> (u32, Result<(), String>)
where
    T: StateMachineTest<Reference = strategies::Reference>,
{
    let default_cases = if cfg!(debug_assertions) { debug } else { release };
    let cases = std::env::var(cases_var).ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config.clone());
    let strategy = strategies::Reference::sequential_strategy(1..max_len);
    let result = runner.run(&strategy, |(initial, transitions, seen)| {
        T::test_sequential(config.clone(), initial, transitions, seen);
        Ok(())
    });
    (cases, result.map_err(|e| e.to_string()))
}
