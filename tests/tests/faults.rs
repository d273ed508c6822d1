//! Fault injection: for every call of random sequences, every allocation
//! point the call reaches (host table pages, guest table pages, the hyp's
//! stage-1 mapping) is made to fail in turn, for every N. Each failure
//! must give ENOMEM with every party unchanged, byte for byte; then the
//! call runs for real and must agree with the reference model. A host
//! fault is the exception: out of table pages it unmaps the host's MMIO
//! mappings and retries, so it may recover instead.
//!
//! `S2RMAP_FAULT_CASES` sets the number of sequences (default 512 in
//! release builds, 8 in debug builds).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pgtable::host::FaultInjector;
use proptest_state_machine::StateMachineTest;
use share::Errno;
use tests::refmodel::{Model, Op, Res};
use tests::strategies::Reference;
use tests::sut::Sut;

static INJECTED: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);

struct Faulty {
    sut: Sut,
    injector: Arc<FaultInjector>,
}

struct FaultTest;

impl StateMachineTest for FaultTest {
    type SystemUnderTest = Faulty;
    type Reference = Reference;

    fn init_test(model: &Model) -> Faulty {
        let mut sut = Sut::new(&model.ram);
        let injector = FaultInjector::new();
        sut.tracker.with_platform(|alloc, _, _, hyp| {
            alloc.set_injector(Some(injector.clone()));
            hyp.injector = Some(injector.clone());
        });
        sut.factory.injector = Some(injector.clone());
        Faulty { sut, injector }
    }

    fn apply(mut state: Faulty, model: &Model, op: Op) -> Faulty {
        CALLS.fetch_add(1, Ordering::Relaxed);
        for n in 1.. {
            let before = state.sut.tracker.snapshot();
            let fired_before = state.injector.fired();
            state.injector.arm(n);
            let got = state.sut.apply(&op);
            if state.injector.fired() == fired_before {
                // The call reached fewer than n allocation points: it ran
                // for real.
                state.injector.disarm();
                assert_eq!(got, model.last, "{op:x?} after {} injected failures", n - 1);
                break;
            }
            INJECTED.fetch_add(1, Ordering::Relaxed);
            if matches!(op, Op::HostAccess { .. }) && got == model.last {
                // A host fault out of table pages gives back the host's
                // MMIO mappings and retries: it recovered, and ran for real.
                state.injector.disarm();
                break;
            }
            assert_eq!(got, Res::Err(Errno::ENOMEM), "{op:x?} with allocation point {n} failing");
            let after = state.sut.tracker.snapshot();
            assert!(before == after, "{op:x?}: failing allocation point {n} left a change behind");
        }
        if let Err(diff) = state.sut.compare(model) {
            panic!("after {op:x?}: {diff}");
        }
        if let Err(v) = state.sut.tracker.check_invariants() {
            panic!("after {op:x?}: {v}");
        }
        state
    }
}

#[test]
fn every_allocation_failure_leaves_everything_unchanged() {
    let (_, result) = tests::run_sequences::<FaultTest>("S2RMAP_FAULT_CASES", 8, 512, 200);
    eprintln!(
        "faults: {} allocation failures injected over {} calls, each refused with ENOMEM and no change",
        INJECTED.load(Ordering::Relaxed),
        CALLS.load(Ordering::Relaxed)
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(INJECTED.load(Ordering::Relaxed) > 0, "no allocation point was ever reached");
}
