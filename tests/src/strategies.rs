//! Proptest strategies for call sequences: arguments biased towards the
//! pages and guests in play and towards the edges (overflow, MMIO, the
//! ends of RAM, the IPA halves, bad handles).

use proptest::prelude::*;

use crate::refmodel::{MAX_PAGES, Model, Op};

/// RAM regions (page frames): a 2 MiB-aligned region, a small one, a
/// 2 MiB block that only whole-block donations to guests use (so that it
/// is often whole), and one that guest table pools come from.
pub const RAM: [(u64, u64); 4] =
    [(0x40000, 0x40200), (0x40400, 0x40410), (0x40600, 0x40800), (0x50000, 0x50200)];

/// The first pfn of the region only whole-block guest donations use.
const BLOCK_PFN: u64 = 0x40600;

/// A pfn: mostly from a small hot window or from pages that are not
/// plainly the host's, so that calls meet each other's pages.
pub fn pfn_in(model: &Model) -> BoxedStrategy<u64> {
    let busy: Vec<u64> = model.pages.keys().copied().filter(|p| *p < 0x50000).collect();
    if busy.is_empty() {
        pfn()
    } else {
        prop_oneof![2 => pfn(), 1 => prop::sample::select(busy)].boxed()
    }
}

/// A gfn of some live guest's mapping, or a fresh one.
pub fn gfn_in(model: &Model, bits: u8) -> BoxedStrategy<u64> {
    let mapped: Vec<u64> = model.guests.values().flat_map(|g| g.map.keys().copied()).collect();
    if mapped.is_empty() {
        gfn(bits)
    } else {
        prop_oneof![1 => gfn(bits), 1 => prop::sample::select(mapped)].boxed()
    }
}

pub fn pfn() -> BoxedStrategy<u64> {
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

pub fn nr() -> BoxedStrategy<u64> {
    prop_oneof![
        12 => Just(1u64),
        4 => 2u64..8,
        1 => Just(512u64),
        1 => prop::sample::select(vec![0u64, u64::MAX, MAX_PAGES, MAX_PAGES + 1, 1 << 63]),
    ]
    .boxed()
}

pub fn handle(model: &Model) -> BoxedStrategy<u64> {
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
pub fn gfn(ipa_bits: u8) -> BoxedStrategy<u64> {
    let top = 1u64 << (ipa_bits - 13);
    let limit = top * 2;
    prop_oneof![
        6 => 0u64..8,
        6 => top..top + 8,
        1 => prop::sample::select(vec![top - 1, top - 2, limit - 1, limit, u64::MAX, u64::MAX / 4096]),
    ]
    .boxed()
}

pub fn guest_op(model: &Model) -> BoxedStrategy<Op> {
    let bits = model.guests.values().next().map_or(40, |g| g.ipa_bits);
    let h = handle(model);
    let (pfn, mapped) = (pfn_in(model), gfn_in(model, bits));
    // Whole 2 MiB blocks on both sides: the host's BLOCK_PFN region is one,
    // and guest calls on a block-mapped range change it as one entry.
    let whole_block = (h.clone(), prop::sample::select(vec![0u64, 0x200]));
    let block_starts: Vec<u64> = model
        .guests
        .values()
        .flat_map(|g| g.map.keys().copied())
        .filter(|gfn| gfn % 512 == 0)
        .collect();
    let mapped_block = if block_starts.is_empty() {
        Just(0u64).boxed()
    } else {
        prop::sample::select(block_starts).boxed()
    };
    let block_op = prop_oneof![
        whole_block.prop_map(|(h, gfn)| Op::DonateGuest { h, pfn: BLOCK_PFN, gfn, nr: 512 }),
        (h.clone(), mapped_block.clone()).prop_map(|(h, gfn)| Op::GuestShare { h, gfn, nr: 512 }),
        (h.clone(), mapped_block.clone()).prop_map(|(h, gfn)| Op::GuestUnshare { h, gfn, nr: 512 }),
        (h.clone(), mapped_block).prop_map(|(h, gfn)| Op::Relinquish { h, gfn, nr: 512 }),
    ];
    prop_oneof![
        1 => block_op,
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

/// Any call, given the model's state.
pub fn op(model: &Model) -> BoxedStrategy<Op> {
    let nr_opt = prop::option::weighted(0.5, nr());
    // Up to four guests; past that, creations that are refused anyway.
    let sizes = if model.guests.len() < 4 { vec![36u8, 40, 44, 31, 49] } else { vec![31u8, 49] };
    let create = (
        prop::sample::select(sizes),
        prop_oneof![4 => (0u64..8).prop_map(|k| 0x50000 + k * 64), 1 => pfn()],
        prop::sample::select(vec![64u64, 64, 64, 0]),
    )
        .prop_map(|(ipa_bits, pool_pfn, pool_pages)| Op::Create {
            ipa_bits,
            pool_pfn,
            pool_pages,
        });
    let busy = pfn_in(model);
    prop_oneof![
        4 => (busy.clone(), nr_opt.clone()).prop_map(|(pfn, nr)| Op::ShareHyp { pfn, nr }),
        3 => (busy.clone(), nr_opt).prop_map(|(pfn, nr)| Op::UnshareHyp { pfn, nr }),
        3 => (busy.clone(), nr()).prop_map(|(pfn, nr)| Op::DonateHyp { pfn, nr }),
        3 => (busy.clone(), nr()).prop_map(|(pfn, nr)| Op::ReclaimHyp { pfn, nr }),
        2 => (busy.clone(), nr()).prop_map(|(pfn, nr)| Op::Pin { pfn, nr }),
        2 => (busy.clone(), nr()).prop_map(|(pfn, nr)| Op::Unpin { pfn, nr }),
        1 => (busy.clone(), nr()).prop_map(|(pfn, nr)| Op::ShareFfa { pfn, nr }),
        1 => (busy, nr()).prop_map(|(pfn, nr)| Op::UnshareFfa { pfn, nr }),
        2 => create,
        14 => guest_op(model),
        3 => prop_oneof![
            (pfn(), 0u64..4096).prop_map(|(p, o)| Op::HostAccess { pa: p.wrapping_mul(4096).wrapping_add(o) }),
            any::<u64>().prop_map(|pa| Op::HostAccess { pa }),
        ],
    ]
    .boxed()
}

/// The reference state machine shared by the model and fault tests: the
/// model, advanced by calls drawn from [`op`].
#[derive(Debug)]
pub struct Reference;

impl proptest_state_machine::ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::new(RAM.to_vec())).boxed()
    }

    fn transitions(model: &Model) -> BoxedStrategy<Op> {
        op(model)
    }

    fn apply(mut model: Model, op: &Op) -> Model {
        model.apply(op);
        model
    }
}
