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

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};
use tests::refmodel::{MAX_PAGES, Model, Op};
use tests::sut::Sut;

const RAM: [(u64, u64); 3] = [(0x40000, 0x40200), (0x40400, 0x40410), (0x50000, 0x50200)];
static CALLS: AtomicU64 = AtomicU64::new(0);
static SUCCEEDED: AtomicU64 = AtomicU64::new(0);

/// A pfn: mostly from a small hot window or from pages that are not
/// plainly the host's, so that calls meet each other's pages.
fn pfn_in(model: &Model) -> BoxedStrategy<u64> {
    let busy: Vec<u64> = model.pages.keys().copied().filter(|p| *p < 0x50000).collect();
    if busy.is_empty() {
        pfn()
    } else {
        prop_oneof![2 => pfn(), 1 => prop::sample::select(busy)].boxed()
    }
}

/// A gfn of some live guest's mapping, or a fresh one.
fn gfn_in(model: &Model, bits: u8) -> BoxedStrategy<u64> {
    let mapped: Vec<u64> = model.guests.values().flat_map(|g| g.map.keys().copied()).collect();
    if mapped.is_empty() {
        gfn(bits)
    } else {
        prop_oneof![1 => gfn(bits), 1 => prop::sample::select(mapped)].boxed()
    }
}

fn pfn() -> BoxedStrategy<u64> {
    prop_oneof![
        12 => 0x40000u64..0x40010,
        2 => 0x40000u64..0x40200,
        1 => 0x40400u64..0x40410,
        1 => prop::sample::select(vec![0x3ffffu64, 0x401ff, 0x40200, 0x4040f, 0x40410, 0x9000, 0]),
        1 => prop::sample::select(vec![u64::MAX, u64::MAX - 1, 1 << 36, (1 << 36) - 1, 1 << 52]),
        1 => (0u64..8).prop_map(|k| 0x50000 + k * 64),
    ]
    .boxed()
}

fn nr() -> BoxedStrategy<u64> {
    prop_oneof![
        12 => Just(1u64),
        4 => 2u64..8,
        1 => Just(512u64),
        1 => prop::sample::select(vec![0u64, u64::MAX, MAX_PAGES, MAX_PAGES + 1, 1 << 63]),
    ]
    .boxed()
}

fn handle(model: &Model) -> BoxedStrategy<u64> {
    let live: Vec<u64> = model.guests.keys().map(|s| u64::from(*s) + 2).collect();
    let bad = prop::sample::select(vec![0u64, 1, 40, 1 << 32, u64::MAX]);
    if live.is_empty() {
        bad.boxed()
    } else {
        prop_oneof![8 => prop::sample::select(live), 1 => bad].boxed()
    }
}

/// A gfn for a guest of `ipa_bits` (40 if unknown): mostly in one half or
/// the other, sometimes on the edges.
fn gfn(ipa_bits: u8) -> BoxedStrategy<u64> {
    let top = 1u64 << (ipa_bits - 13);
    let limit = top * 2;
    prop_oneof![
        6 => 0u64..8,
        6 => top..top + 8,
        1 => prop::sample::select(vec![top - 1, top - 2, limit - 1, limit, u64::MAX, u64::MAX / 4096]),
    ]
    .boxed()
}

fn guest_op(model: &Model) -> BoxedStrategy<Op> {
    let bits = model.guests.values().next().map_or(40, |g| g.ipa_bits);
    let h = handle(model);
    let (pfn, mapped) = (pfn_in(model), gfn_in(model, bits));
    prop_oneof![
        3 => (h.clone(), pfn.clone(), gfn(bits), nr()).prop_map(|(h, pfn, gfn, nr)| Op::DonateGuest { h, pfn, gfn, nr }),
        3 => (h.clone(), pfn, gfn(bits), nr()).prop_map(|(h, pfn, gfn, nr)| Op::ShareGuest { h, pfn, gfn, nr }),
        2 => (h.clone(), mapped.clone(), nr()).prop_map(|(h, gfn, nr)| Op::UnshareGuest { h, gfn, nr }),
        2 => (h.clone(), mapped.clone(), nr()).prop_map(|(h, gfn, nr)| Op::GuestShare { h, gfn, nr }),
        2 => (h.clone(), mapped.clone(), nr()).prop_map(|(h, gfn, nr)| Op::GuestUnshare { h, gfn, nr }),
        2 => (h.clone(), mapped, nr()).prop_map(|(h, gfn, nr)| Op::Relinquish { h, gfn, nr }),
        1 => (h.clone(), gfn(bits), prop_oneof![Just(0u64), 1u64..64, Just(u64::MAX / 4096)])
            .prop_map(|(h, g, n)| Op::InitRipas { h, ipa: g.wrapping_mul(4096), size: n.wrapping_mul(4096) }),
        1 => (h.clone(), any::<u64>()).prop_map(|(h, ipa)| Op::InitRipas { h, ipa, size: 4096 }),
        1 => h.clone().prop_map(|h| Op::Run { h }),
        1 => h.clone().prop_map(|h| Op::Teardown { h }),
        2 => (h.clone().prop_map(|h| h & 0xffff_ffff), gfn(bits))
            .prop_map(|(h, g)| Op::GuestAccess { h, ipa: g.wrapping_mul(4096) }),
    ]
    .boxed()
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::new(RAM.to_vec())).boxed()
    }

    fn transitions(model: &Model) -> BoxedStrategy<Op> {
        let nr_opt = prop::option::weighted(0.5, nr());
        let create_weight = if model.guests.len() < 4 { 2 } else { 0 };
        let busy = pfn_in(model);
        prop_oneof![
            4 => (busy.clone(), nr_opt.clone()).prop_map(|(pfn, nr)| Op::ShareHyp { pfn, nr }),
            3 => (busy.clone(), nr_opt).prop_map(|(pfn, nr)| Op::UnshareHyp { pfn, nr }),
            3 => (busy.clone(), nr()).prop_map(|(pfn, nr)| Op::DonateHyp { pfn, nr }),
            3 => (busy.clone(), nr()).prop_map(|(pfn, nr)| Op::ReclaimHyp { pfn, nr }),
            2 => (busy.clone(), nr()).prop_map(|(pfn, nr)| Op::Pin { pfn, nr }),
            2 => (busy, nr()).prop_map(|(pfn, nr)| Op::Unpin { pfn, nr }),
            create_weight => (
                prop::sample::select(vec![36u8, 40, 44, 31, 49]),
                prop_oneof![4 => (0u64..8).prop_map(|k| 0x50000 + k * 64), 1 => pfn()],
                prop::sample::select(vec![64u64, 64, 64, 0]),
            )
                .prop_map(|(ipa_bits, pool_pfn, pool_pages)| Op::Create { ipa_bits, pool_pfn, pool_pages }),
            14 => guest_op(model),
            3 => prop_oneof![
                (pfn(), 0u64..4096).prop_map(|(p, o)| Op::HostAccess { pa: p.wrapping_mul(4096).wrapping_add(o) }),
                any::<u64>().prop_map(|pa| Op::HostAccess { pa }),
            ],
        ]
        .boxed()
    }

    fn apply(mut model: Model, op: &Op) -> Model {
        model.apply(op);
        model
    }
}

struct ModelTest;

impl StateMachineTest for ModelTest {
    type SystemUnderTest = Sut;
    type Reference = Reference;

    fn init_test(model: &Model) -> Sut {
        Sut::new(&model.ram)
    }

    fn apply(mut sut: Sut, model: &Model, op: Op) -> Sut {
        CALLS.fetch_add(1, Ordering::Relaxed);
        let got = sut.apply(&op);
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
        sut
    }
}

#[test]
fn real_tracker_matches_reference_model() {
    let default_cases = if cfg!(debug_assertions) { 24 } else { 560 };
    let cases = std::env::var("S2RMAP_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config.clone());
    let result =
        runner.run(&Reference::sequential_strategy(1..400), |(initial, transitions, seen)| {
            ModelTest::test_sequential(config.clone(), initial, transitions, seen);
            Ok(())
        });
    let calls = CALLS.load(Ordering::Relaxed);
    let ok = SUCCEEDED.load(Ordering::Relaxed);
    eprintln!(
        "model: {calls} calls checked against the reference model ({ok} succeeded, {cases} sequences)"
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
