//! State-machine property tests: random call sequences (illegal calls,
//! out-of-range and overflowing arguments, MMIO, the wrong guest half,
//! repeats) run against the real tracker through the hypercall
//! dispatcher and against the reference model. After every call the
//! result and the whole abstract state, read back from the real tables,
//! must equal the model's, and every invariant must hold. Failures shrink
//! to a minimal sequence.
//!
//! `S2RMAP_MODEL_CASES` sets the number of sequences (default: 560 in
//! release builds, about 100,000 calls; 24 in debug builds).

use std::sync::atomic::{AtomicU64, Ordering};

use proptest_state_machine::StateMachineTest;
use tests::refmodel::{Model, Op};
use tests::strategies::Reference;
use tests::sut::Sut;

static CALLS: AtomicU64 = AtomicU64::new(0);
static SUCCEEDED: AtomicU64 = AtomicU64::new(0);
/// Calls the ghost checker compared page by page with the specification.
static GHOST_CHECKED: AtomicU64 = AtomicU64::new(0);

struct ModelTest;

/// Calls the ghost checker has compared so far (none without it).
fn ghost_checked(sut: &Sut) -> u64 {
    #[cfg(feature = "ghost")]
    return sut.tracker.ghost_stats().checked;
    #[cfg(not(feature = "ghost"))]
    {
        let _ = sut;
        0
    }
}

impl StateMachineTest for ModelTest {
    type SystemUnderTest = Sut;
    type Reference = Reference;

    fn init_test(model: &Model) -> Sut {
        Sut::new(&model.ram)
    }

    fn apply(mut sut: Sut, model: &Model, op: Op) -> Sut {
        CALLS.fetch_add(1, Ordering::Relaxed);
        let ghost_before = ghost_checked(&sut);
        let got = sut.apply(&op);
        GHOST_CHECKED.fetch_add(ghost_checked(&sut) - ghost_before, Ordering::Relaxed);
        if matches!(got, tests::refmodel::Res::Ok | tests::refmodel::Res::Created(_)) {
            SUCCEEDED.fetch_add(1, Ordering::Relaxed);
        }
        assert_eq!(got, model.last, "result of {op:x?}");
        if let Err(diff) = sut.compare(model) {
            panic!("after {op:x?}: {diff}");
        }
        if let Err(v) = sut.tracker.check_invariants() {
            panic!("after {op:x?}: {v}");
        }
        sut.tracker
            .with_platform(|_, tlb, _, _| tlb.check_quiescent())
            .unwrap_or_else(|e| panic!("after {op:x?}: {e}"));
        // Every reservation is taken or given back within its call.
        let host_reserved = sut.tracker.with_platform(|alloc, _, _, _| alloc.reserved());
        assert_eq!(host_reserved, 0, "host table pages left reserved after {op:x?}");
        for slot in model.guests.keys() {
            let id = ownership::OwnerId(slot + 2);
            let reserved = sut.tracker.with_guest_platform(id, |alloc, _| alloc.reserved());
            assert_eq!(reserved, Ok(0), "guest {slot} pages left reserved after {op:x?}");
        }
        sut
    }
}

#[test]
fn real_tracker_matches_reference_model() {
    let (cases, result) = tests::run_sequences::<ModelTest>("S2RMAP_MODEL_CASES", 24, 560, 400);
    let calls = CALLS.load(Ordering::Relaxed);
    let ok = SUCCEEDED.load(Ordering::Relaxed);
    let ghost = GHOST_CHECKED.load(Ordering::Relaxed);
    eprintln!(
        "model: {calls} calls checked against the reference model ({ok} succeeded, {cases} sequences); \
         {ghost} also held page by page to share::spec by the ghost checker"
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
