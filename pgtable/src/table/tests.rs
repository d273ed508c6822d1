use std::collections::BTreeMap;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::host::{HostTables, RecordingTlb};
use crate::{DescriptorKind, level_size};

const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;
const PAGE: u64 = PAGE_SIZE;

struct Fixture {
    alloc: HostTables,
    tlb: RecordingTlb,
    pt: PageTable,
}

impl Fixture {
    fn new(ipa_bits: u8) -> Self {
        let cfg = Stage2Config::new(ipa_bits).unwrap();
        let mut alloc = HostTables::new();
        let root = alloc.alloc_root(cfg.root_pages()).unwrap();
        let pt = PageTable::new(cfg, root).unwrap();
        Self { alloc, tlb: RecordingTlb::default(), pt }
    }

    fn update(&mut self, range: Range<u64>, leaf: Leaf) -> Result<(), Error> {
        let r = self.pt.update(&mut self.alloc, &mut self.tlb, range, leaf);
        self.tlb.check_bbm().unwrap();
        r
    }

    fn map_identity(&mut self, range: Range<u64>) {
        let oa = PhysAddr(range.start);
        self.update(range, Leaf::Mapped { oa, attrs: S2Attrs::RAM_RWX }).unwrap();
    }

    fn leaves(&self, range: Range<u64>) -> Vec<LeafRun> {
        self.pt.leaves(&self.alloc, range).collect()
    }

    /// Number of leaves at each level over the range.
    fn level_histogram(&self, range: Range<u64>) -> [usize; 4] {
        let mut h = [0; 4];
        for run in self.leaves(range) {
            h[run.entry.level as usize] += 1;
        }
        h
    }

    /// No non-root table may hold 512 entries that one leaf could express.
    fn assert_maximally_coalesced(&self) {
        let root = self.pt.root();
        let root_pages = self.pt.config().root_pages() as u64;
        self.pt.for_each_table_page(&self.alloc, |pa, level| {
            if pa.0 >= root.0 && pa.0 < root.0 + root_pages * PAGE {
                return;
            }
            let page = TablePage::new(&self.alloc, pa);
            let first = page.get(0);
            if first.is_table(level) {
                return;
            }
            let step = if first.is_valid() { level_size(level) } else { 0 };
            // Entry by entry, independently of `TablePage::first_mismatch`.
            let uniform = (0..ENTRIES_PER_TABLE)
                .all(|i| page.get(i).bits() == first.bits().wrapping_add(i as u64 * step));
            let parent_can_hold = !first.is_valid()
                || Descriptor::leaf(level - 1, first.oa(), first.attrs()).is_some();
            assert!(
                !(uniform && parent_can_hold),
                "table {pa:?} at level {level} should have been coalesced"
            );
        });
    }
}

#[test]
fn faulting_1g_aligned_ram_uses_1g_blocks() {
    let mut f = Fixture::new(40);
    f.map_identity(GIB..3 * GIB);
    assert_eq!(f.level_histogram(GIB..3 * GIB), [0, 2, 0, 0]);
    assert_eq!(f.pt.table_pages(), 0);
    let e = f.pt.lookup(&f.alloc, GIB + 0x1234_5000).unwrap();
    assert_eq!(e.level, 1);
    assert_eq!(e.output_address(GIB + 0x1234_5000), Some(PhysAddr(GIB + 0x1234_5000)));
}

#[test]
fn largest_block_that_alignment_allows() {
    let mut f = Fixture::new(40);
    // 4 KiB .. 1 GiB + 2 MiB + 4 KiB: pages up to the first 2 MiB boundary,
    // 2 MiB blocks up to 1 GiB, a 1 GiB block, then a 2 MiB block, then a page.
    f.map_identity(PAGE..2 * GIB + MIB2 + PAGE);
    let h = f.level_histogram(PAGE..2 * GIB + MIB2 + PAGE);
    assert_eq!(h, [0, 1, 511 + 1, 511 + 1]);
    // Misaligned output: IPA 2 MiB-aligned but OA only page-aligned -> pages.
    let mut g = Fixture::new(40);
    g.update(0..MIB2, Leaf::Mapped { oa: PhysAddr(PAGE), attrs: S2Attrs::RAM_RWX }).unwrap();
    assert_eq!(g.level_histogram(0..MIB2), [0, 0, 0, 512]);
}

#[test]
fn annotating_one_page_splits_only_down_to_it_and_undo_coalesces() {
    let mut f = Fixture::new(40);
    f.map_identity(GIB..2 * GIB);
    let before = f.alloc.snapshot(&f.pt);
    let pages_before = f.alloc.in_use();
    let victim = GIB + 77 * MIB2 + 5 * PAGE;
    f.update(victim..victim + PAGE, Leaf::Invalid(InvalidPayload::new(7 << 32))).unwrap();
    // One level-2 table and one level-3 table, nothing more.
    assert_eq!(f.pt.table_pages(), 2);
    assert_eq!(f.level_histogram(GIB..2 * GIB), [0, 0, 511, 512]);
    let e = f.pt.lookup(&f.alloc, victim).unwrap();
    assert_eq!(
        (e.level, e.desc.decode(3)),
        (3, DescriptorKind::Invalid(InvalidPayload::new(7 << 32)))
    );
    f.assert_maximally_coalesced();

    f.map_identity(victim..victim + PAGE);
    assert_eq!(f.pt.table_pages(), 0);
    assert_eq!(f.alloc.in_use(), pages_before);
    assert_eq!(f.alloc.snapshot(&f.pt), before);
}

#[test]
fn block_level_invalid_entries() {
    let mut f = Fixture::new(40);
    f.update(GIB..2 * GIB, Leaf::Invalid(InvalidPayload::new(1 << 32))).unwrap();
    assert_eq!(f.pt.table_pages(), 0);
    let e = f.pt.lookup(&f.alloc, GIB + 12345 * PAGE).unwrap();
    assert_eq!(e.level, 1);
    f.update(2 * GIB + MIB2..2 * GIB + 2 * MIB2, Leaf::Invalid(InvalidPayload::new(1 << 32)))
        .unwrap();
    assert_eq!(f.pt.table_pages(), 1);
    assert_eq!(f.pt.lookup(&f.alloc, 2 * GIB + MIB2).unwrap().level, 2);
}

#[test]
fn sw_bit_change_is_in_place_without_invalidation() {
    let mut f = Fixture::new(40);
    f.map_identity(0..MIB2);
    f.tlb.take_events();
    f.pt.update(
        &mut f.alloc,
        &mut f.tlb,
        0..MIB2,
        Leaf::Mapped { oa: PhysAddr(0), attrs: S2Attrs::RAM_RWX.with_sw(1) },
    )
    .unwrap();
    assert_eq!(f.tlb.invalidations(), 0);
    f.tlb.check_bbm().unwrap();
}

#[test]
fn remapping_a_live_block_breaks_first() {
    let mut f = Fixture::new(40);
    f.map_identity(0..MIB2);
    f.tlb.take_events();
    f.pt.update(
        &mut f.alloc,
        &mut f.tlb,
        0..MIB2,
        Leaf::Mapped { oa: PhysAddr(MIB2), attrs: S2Attrs::RAM_RWX },
    )
    .unwrap();
    let ev = f.tlb.take_events();
    use crate::host::TlbEvent::*;
    assert!(matches!(ev[0], Write { new: 0, .. }));
    assert!(matches!(ev[1], Invalidate { ipa: 0, size: MIB2, level: 2 }));
    assert!(matches!(ev[2], Write { old: 0, .. }));
    crate::host::check_bbm(&ev).unwrap();
}

#[test]
fn checker_catches_missing_invalidation() {
    use crate::host::TlbEvent::*;
    let valid = Descriptor::leaf(3, PhysAddr(0x1000), S2Attrs::RAM_RWX).unwrap().bits();
    let other = Descriptor::leaf(3, PhysAddr(0x2000), S2Attrs::RAM_RWX).unwrap().bits();
    let e = PhysAddr(0x10);
    assert!(
        crate::host::check_bbm(&[Write { entry: e, ipa: 0, level: 3, old: valid, new: other }])
            .is_err()
    );
    assert!(
        crate::host::check_bbm(&[
            Write { entry: e, ipa: 0, level: 3, old: valid, new: 0 },
            Write { entry: e, ipa: 0, level: 3, old: 0, new: other }
        ])
        .is_err()
    );
    assert!(
        crate::host::check_bbm(&[Write { entry: e, ipa: 0, level: 3, old: valid, new: 0 }])
            .is_err()
    );
    crate::host::check_bbm(&[
        Write { entry: e, ipa: 0, level: 3, old: valid, new: 0 },
        Invalidate { ipa: 0, size: PAGE, level: 3 },
        Write { entry: e, ipa: 0, level: 3, old: 0, new: other },
    ])
    .unwrap();
}

#[test]
fn enomem_leaves_table_byte_for_byte_unchanged() {
    let mut f = Fixture::new(40);
    f.map_identity(0..4 * GIB);
    f.update(GIB + PAGE..GIB + 2 * PAGE, Leaf::Invalid(InvalidPayload::new(3 << 32))).unwrap();
    let before = f.alloc.snapshot(&f.pt);
    let in_use = f.alloc.in_use();
    // Needs two new tables (level 2 and 3); allow only one more page.
    f.alloc.set_limit(Some(in_use + 1));
    let target = 2 * GIB + 3 * PAGE;
    let r = f.pt.update(
        &mut f.alloc,
        &mut f.tlb,
        target..target + PAGE,
        Leaf::Invalid(InvalidPayload::new(9 << 32)),
    );
    assert_eq!(r, Err(Error::NoMemory));
    assert!(f.tlb.take_events().is_empty(), "no descriptor may be written on ENOMEM");
    assert_eq!(f.alloc.snapshot(&f.pt), before);
    assert_eq!(f.alloc.in_use(), in_use);
    // With exactly enough pages it succeeds.
    f.alloc.set_limit(Some(in_use + 2));
    f.update(target..target + PAGE, Leaf::Invalid(InvalidPayload::new(9 << 32))).unwrap();
}

#[test]
fn bad_ranges_refused_before_any_change() {
    let mut f = Fixture::new(36);
    let before = f.alloc.snapshot(&f.pt);
    let z = Leaf::Invalid(InvalidPayload::ZERO);
    assert_eq!(f.update(PAGE..PAGE, z), Err(Error::OutOfRange(PAGE, PAGE)));
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 2 * PAGE..PAGE;
    assert_eq!(f.update(backwards, z), Err(Error::OutOfRange(2 * PAGE, PAGE)));
    assert_eq!(f.update(0..(1 << 36) + PAGE, z), Err(Error::OutOfRange(0, (1 << 36) + PAGE)));
    assert_eq!(f.update(1..PAGE, z), Err(Error::Misaligned(1)));
    assert_eq!(
        f.update(0..PAGE, Leaf::Mapped { oa: PhysAddr(5), attrs: S2Attrs::RAM_RWX }),
        Err(Error::Misaligned(5))
    );
    assert_eq!(
        f.update(0..2 * PAGE, Leaf::Mapped { oa: PhysAddr(!0xfff), attrs: S2Attrs::RAM_RWX }),
        Err(Error::OutOfRange(!0xfff, u64::MAX))
    );
    assert_eq!(f.alloc.snapshot(&f.pt), before);
}

#[test]
fn every_ipa_size_maps_its_top_and_bottom() {
    for bits in crate::config::MIN_IPA_BITS..=crate::config::MAX_IPA_BITS {
        let mut f = Fixture::new(bits);
        let top = (1u64 << bits) - PAGE;
        f.map_identity(top..top + PAGE);
        f.map_identity(0..PAGE);
        assert_eq!(
            f.pt.lookup(&f.alloc, top).unwrap().output_address(top),
            Some(PhysAddr(top)),
            "{bits} bits"
        );
        assert_eq!(f.pt.lookup(&f.alloc, 0).unwrap().level, 3);
        assert!(f.pt.lookup(&f.alloc, 1 << bits).is_err());
        f.pt.clear(&mut f.alloc, &mut f.tlb);
        f.tlb.check_bbm().unwrap();
        assert_eq!(f.pt.table_pages(), 0);
        assert_eq!(f.alloc.in_use(), f.pt.config().root_pages());
    }
}

#[test]
fn replacing_a_table_with_a_leaf_frees_its_subtree() {
    let mut f = Fixture::new(40);
    for i in 0..8 {
        f.map_identity(GIB + i * 3 * MIB2 + i * PAGE..GIB + i * 3 * MIB2 + (i + 1) * PAGE);
    }
    assert!(f.pt.table_pages() > 1);
    f.update(GIB..2 * GIB, Leaf::Invalid(InvalidPayload::new(4 << 32))).unwrap();
    assert_eq!(f.pt.table_pages(), 0);
    assert_eq!(f.alloc.in_use(), f.pt.config().root_pages());
}

/// Reference model: page number -> the descriptor a page-granular table
/// would hold (normalised to level 3).
type Model = BTreeMap<u64, u64>;

fn page_desc(leaf: Leaf, start: u64, ipa: u64) -> u64 {
    match leaf {
        Leaf::Invalid(p) => p.bits(),
        Leaf::Mapped { oa, attrs } => {
            Descriptor::leaf(3, PhysAddr(oa.0 + (ipa - start)), attrs).unwrap().bits()
        }
    }
}

fn normalise(run: &LeafRun, ipa: u64) -> u64 {
    let d = run.entry.desc;
    if d.is_valid() {
        Descriptor::leaf(3, run.entry.output_address(ipa).unwrap(), d.attrs()).unwrap().bits()
    } else {
        d.bits()
    }
}

fn check_against_model(f: &Fixture, model: &Model, space: Range<u64>) {
    for run in f.leaves(space) {
        let mut ipa = run.ipa.start;
        while ipa < run.ipa.end {
            let want = model.get(&(ipa / PAGE)).copied().unwrap_or(0);
            assert_eq!(normalise(&run, ipa), want, "IPA {ipa:#x} ({run:?})");
            ipa += PAGE;
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Update { start: u64, pages: u64, leaf: Leaf },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    // A 16 MiB window with 2 MiB-sized and page-sized pieces, so blocks,
    // splits and coalescing all happen.
    let start = prop_oneof![(0u64..8).prop_map(|b| b * MIB2), (0u64..4096).prop_map(|p| p * PAGE)];
    let pages = prop_oneof![Just(512u64), Just(1024), 1u64..8, 1u64..600];
    let leaf = prop_oneof![
        (0u64..3).prop_map(|o| Leaf::Invalid(InvalidPayload::new(o << 32))),
        (0u64..3).prop_map(|sw| Leaf::Mapped {
            oa: PhysAddr(0),
            attrs: S2Attrs::RAM_RWX.with_sw(sw as u8)
        }),
        Just(Leaf::Mapped { oa: PhysAddr(8 * MIB2), attrs: S2Attrs::DEVICE_RW }),
    ];
    (start, pages, leaf).prop_map(|(start, pages, leaf)| {
        let leaf = match leaf {
            // Identity or fixed-offset mappings keep the OA aligned like the IPA.
            Leaf::Mapped { oa, attrs } => Leaf::Mapped { oa: PhysAddr(oa.0 + start), attrs },
            l => l,
        };
        Op::Update { start, pages, leaf }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn random_updates_match_model_and_stay_coalesced(ops in proptest::collection::vec(op_strategy(), 1..40)) {
        let mut f = Fixture::new(36);
        let mut model = Model::new();
        let space = 0..32 * MIB2;
        for op in ops {
            let Op::Update { start, pages, leaf } = op;
            let end = (start + pages * PAGE).min(space.end);
            f.update(start..end, leaf).unwrap();
            let mut ipa = start;
            while ipa < end {
                let d = page_desc(leaf, start, ipa);
                if d == 0 { model.remove(&(ipa / PAGE)); } else { model.insert(ipa / PAGE, d); }
                ipa += PAGE;
            }
            check_against_model(&f, &model, space.clone());
            f.assert_maximally_coalesced();
        }
        f.update(space.clone(), Leaf::Invalid(InvalidPayload::ZERO)).unwrap();
        prop_assert_eq!(f.pt.table_pages(), 0);
        prop_assert_eq!(f.alloc.in_use(), f.pt.config().root_pages());
    }

    #[test]
    fn injected_enomem_at_every_reservation_changes_nothing(ops in proptest::collection::vec(op_strategy(), 1..20)) {
        let mut f = Fixture::new(36);
        for op in ops {
            let Op::Update { start, pages, leaf } = op;
            let end = start + pages * PAGE;
            let needed = f.pt.pages_needed(&mut f.alloc, start..end, leaf).unwrap();
            if needed > 0 {
                let before = f.alloc.snapshot(&f.pt);
                let in_use = f.alloc.in_use();
                f.alloc.fail_nth_reserve(1);
                prop_assert_eq!(f.pt.update(&mut f.alloc, &mut f.tlb, start..end, leaf), Err(Error::NoMemory));
                prop_assert!(f.tlb.take_events().is_empty());
                prop_assert_eq!(f.alloc.snapshot(&f.pt), before);
                prop_assert_eq!(f.alloc.in_use(), in_use);
            }
            f.update(start..end, leaf).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// The claim `commit` documents: updates that write one leaf over
    /// disjoint ranges never take more than the sum of their independent
    /// counts, whatever the order and whatever folding happens in between.
    #[test]
    fn batch_of_same_leaf_updates_fits_the_summed_reservation(
        setup in proptest::collection::vec(op_strategy(), 0..20),
        pages in proptest::collection::btree_set(0u64..4096, 1..40),
        payload in 0u64..3,
        mapped in any::<bool>(),
    ) {
        let mut f = Fixture::new(36);
        for Op::Update { start, pages, leaf } in setup {
            f.update(start..start + pages * PAGE, leaf).unwrap();
        }
        let leaf_for = |start: u64| if mapped {
            Leaf::Mapped { oa: PhysAddr(start), attrs: S2Attrs::RAM_RWX.with_sw(payload as u8) }
        } else {
            Leaf::Invalid(InvalidPayload::new(payload << 32))
        };
        let prepared: Vec<Prepared> = pages
            .iter()
            .map(|&p| f.pt.prepare(&mut f.alloc, p * PAGE..(p + 1) * PAGE, leaf_for(p * PAGE)).unwrap())
            .collect();
        let total: usize = prepared.iter().map(|p| p.pages).sum();
        f.alloc.set_limit(Some(f.alloc.in_use() + total));
        f.alloc.reserve(total).unwrap();
        let taken: usize = prepared.into_iter().map(|p| f.pt.commit(&mut f.alloc, &mut f.tlb, p)).sum();
        prop_assert!(taken <= total);
        f.alloc.unreserve(total - taken);
        f.tlb.check_bbm().unwrap();
        f.assert_maximally_coalesced();
    }
}

/// `TablePage::first_mismatch` (eight entries per branch) agrees with an
/// entry by entry comparison for one wrong entry at every index, for
/// uniform and contiguous runs, and names that entry.
#[test]
fn first_mismatch_finds_a_wrong_entry_at_every_index() {
    let mut alloc = HostTables::new();
    alloc.reserve(1).unwrap();
    let pa = alloc.take();
    let page = TablePage::new(&alloc, pa);
    for (first, step) in [(0x0040_0000_0000_0000u64, 0), (0x4000_0000 | 0x7c3, PAGE)] {
        page.fill(first, step);
        assert_eq!(page.first_mismatch(first, step), None);
        assert_eq!(page.first_mismatch(first ^ 2, step), Some(0));
        for i in 0..ENTRIES_PER_TABLE {
            let right = first.wrapping_add(i as u64 * step);
            for wrong in [right ^ 1, right ^ (1 << 63), 0] {
                page.set(i, Descriptor::from_bits(wrong));
                assert_eq!(page.first_mismatch(first, step), Some(i), "entry {i} = {wrong:#x}");
            }
            page.set(i, Descriptor::from_bits(right));
        }
        assert_eq!(page.first_mismatch(first, step), None);
    }
}

/// The fold check looks first where the last failed scan of a table
/// stopped; that never keeps a table from folding once it is uniform.
#[test]
fn a_table_that_could_not_fold_folds_once_the_entry_that_stopped_it_changes() {
    let mut f = Fixture::new(40);
    f.map_identity(GIB..GIB + MIB2);
    let attrs = S2Attrs::RAM_RWX;
    let lent = Leaf::Mapped { oa: PhysAddr(GIB + 7 * PAGE), attrs: attrs.with_sw(1) };
    let back = Leaf::Mapped { oa: PhysAddr(GIB + 7 * PAGE), attrs };
    let hole = GIB + 300 * PAGE..GIB + 301 * PAGE;
    f.update(hole.clone(), Leaf::Invalid(InvalidPayload::ZERO)).unwrap();
    // Page 7 goes out and back: the table stays, held by the hole.
    for _ in 0..3 {
        f.update(GIB + 7 * PAGE..GIB + 8 * PAGE, lent).unwrap();
        f.update(GIB + 7 * PAGE..GIB + 8 * PAGE, back).unwrap();
        assert_eq!(f.level_histogram(GIB..GIB + MIB2), [0, 0, 0, 512]);
        assert_eq!(f.pt.fold_miss.map(|(_, i)| i), Some(300));
    }
    // Filling the hole makes the table uniform: it folds at once.
    f.map_identity(hole);
    assert_eq!(f.level_histogram(GIB..GIB + MIB2), [0, 0, 1, 0]);
    f.assert_maximally_coalesced();
}

/// Commits a one-page change through `cursor` with an exact reservation,
/// as the tracker does; returns the table pages it counted.
fn commit_through(f: &mut Fixture, cursor: &PageCursor, leaf: Leaf) -> usize {
    let change = f.pt.prepare_page(&mut f.alloc, cursor, leaf).unwrap();
    let pages = change.pages();
    if pages > 0 {
        f.alloc.reserve(pages).unwrap();
    }
    let taken = match change {
        PageChange::InPlace(write) => {
            f.pt.commit_in_place(&f.alloc, &mut f.tlb, write);
            0
        }
        PageChange::Prepared(prepared) => f.pt.commit(&mut f.alloc, &mut f.tlb, prepared),
    };
    assert!(taken <= pages, "took {taken} table pages, counted {pages}");
    if pages > taken {
        f.alloc.unreserve(pages - taken);
    }
    f.tlb.check_bbm().unwrap();
    pages
}

#[test]
fn a_cursor_taken_before_the_table_changed_is_not_followed() {
    let mut f = Fixture::new(36);
    f.map_identity(0..MIB2);
    let sw1 = Leaf::Mapped { oa: PhysAddr(5 * PAGE), attrs: S2Attrs::RAM_RWX.with_sw(1) };
    f.update(5 * PAGE..6 * PAGE, sw1).unwrap();
    let stale = f.pt.page(&f.alloc, 5 * PAGE).unwrap();
    assert_eq!(stale.entry.level, 3);
    // The page goes back: its table folds into a block and is freed.
    f.map_identity(5 * PAGE..6 * PAGE);
    assert_eq!(f.pt.table_pages(), 1);
    // The old path leads into a freed table: the change must split the
    // block again instead.
    assert_eq!(commit_through(&mut f, &stale, sw1), 1);
    let now = f.pt.lookup(&f.alloc, 5 * PAGE).unwrap();
    assert_eq!((now.level, now.desc.attrs().sw()), (3, 1));
    assert_eq!(f.pt.lookup(&f.alloc, 6 * PAGE).unwrap().desc.attrs().sw(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// A one-page change through a cursor writes what the general update
    /// would, whether the cursor is fresh (written in place) or the table
    /// changed after it was taken (found again); a cursor finds the leaf
    /// `lookup` finds.
    #[test]
    fn one_page_changes_through_a_cursor_match_the_model(
        steps in proptest::collection::vec(
            (op_strategy(), 0u64..4096, 0u8..4, any::<bool>()), 1..30),
    ) {
        let mut f = Fixture::new(36);
        let mut model = Model::new();
        let space = 0..32 * MIB2;
        let apply = |model: &mut Model, start: u64, end: u64, leaf: Leaf| {
            for ipa in (start..end).step_by(PAGE as usize) {
                match page_desc(leaf, start, ipa) {
                    0 => model.remove(&(ipa / PAGE)),
                    d => model.insert(ipa / PAGE, d),
                };
            }
        };
        for (op, page, which, stale) in steps {
            let ipa = page * PAGE;
            let early = f.pt.page(&f.alloc, ipa).unwrap();
            prop_assert_eq!(early.entry, f.pt.lookup(&f.alloc, ipa).unwrap());
            let Op::Update { start, pages, leaf } = op;
            let end = (start + pages * PAGE).min(space.end);
            f.update(start..end, leaf).unwrap();
            apply(&mut model, start, end, leaf);
            let cursor = if stale { early } else { f.pt.page(&f.alloc, ipa).unwrap() };
            let leaf = match which {
                0 => Leaf::Invalid(InvalidPayload::ZERO),
                1 => Leaf::Invalid(InvalidPayload::new(2 << 32)),
                sw => Leaf::Mapped { oa: PhysAddr(ipa), attrs: S2Attrs::RAM_RWX.with_sw(sw - 2) },
            };
            commit_through(&mut f, &cursor, leaf);
            apply(&mut model, ipa, ipa + PAGE, leaf);
            check_against_model(&f, &model, space.clone());
            f.assert_maximally_coalesced();
        }
    }
}

fn in_place(f: &mut Fixture, ipa: u64, leaf: Leaf) -> bool {
    let cursor = f.pt.page(&f.alloc, ipa).unwrap();
    matches!(f.pt.prepare_page(&mut f.alloc, &cursor, leaf).unwrap(), PageChange::InPlace(_))
}

/// A one-page change is one write in place unless the table it leaves
/// could fold: the neighbour and the fold probes (among them where the
/// last failed scan stopped) decide, on the table as the write leaves it.
#[test]
fn a_one_page_change_is_in_place_unless_its_table_could_fold() {
    let mut f = Fixture::new(40);
    f.map_identity(GIB..GIB + MIB2);
    let page = |n: u64, sw: u8| {
        (
            GIB + n * PAGE,
            Leaf::Mapped { oa: PhysAddr(GIB + n * PAGE), attrs: S2Attrs::RAM_RWX.with_sw(sw) },
        )
    };
    let hole = GIB + 300 * PAGE..GIB + 301 * PAGE;
    f.update(hole.clone(), Leaf::Invalid(InvalidPayload::ZERO)).unwrap();
    // Lending page 7: its neighbours stay as they were.
    let (ipa, lent) = page(7, 1);
    assert!(in_place(&mut f, ipa, lent));
    let cursor = f.pt.page(&f.alloc, ipa).unwrap();
    commit_through(&mut f, &cursor, lent);
    // Giving it back: it continues its neighbours and the probes pass
    // (nothing recorded yet), so the commit scans the table.
    let (_, back) = page(7, 0);
    assert!(!in_place(&mut f, ipa, back));
    let cursor = f.pt.page(&f.alloc, ipa).unwrap();
    commit_through(&mut f, &cursor, back);
    assert_eq!(f.pt.fold_miss.map(|(_, i)| i), Some(300));
    // Next time the probe at the recorded miss rules the fold out.
    let cursor = f.pt.page(&f.alloc, ipa).unwrap();
    commit_through(&mut f, &cursor, lent);
    assert!(in_place(&mut f, ipa, back));
    let cursor = f.pt.page(&f.alloc, ipa).unwrap();
    commit_through(&mut f, &cursor, back);
    assert_eq!(f.level_histogram(GIB..GIB + MIB2), [0, 0, 0, 512]);
    // With the hole filled, giving page 7 back makes the table uniform:
    // not in place, and it folds.
    f.map_identity(hole);
    let cursor = f.pt.page(&f.alloc, ipa).unwrap();
    commit_through(&mut f, &cursor, lent);
    assert!(!in_place(&mut f, ipa, back));
    let cursor = f.pt.page(&f.alloc, ipa).unwrap();
    commit_through(&mut f, &cursor, back);
    assert_eq!(f.level_histogram(GIB..GIB + MIB2), [0, 0, 1, 0]);
    // A change that needs break-before-make is not in place either.
    f.update(GIB + 9 * PAGE..GIB + 10 * PAGE, page(9, 1).1).unwrap();
    let device = Leaf::Mapped { oa: PhysAddr(GIB + 9 * PAGE), attrs: S2Attrs::DEVICE_RW };
    assert!(!in_place(&mut f, GIB + 9 * PAGE, device));
}

#[test]
#[should_panic(expected = "stale in-place write")]
fn an_in_place_write_prepared_before_the_table_changed_is_refused() {
    let mut f = Fixture::new(36);
    f.map_identity(0..MIB2);
    f.update(5 * PAGE..6 * PAGE, Leaf::Invalid(InvalidPayload::ZERO)).unwrap();
    let lent = Leaf::Mapped { oa: PhysAddr(7 * PAGE), attrs: S2Attrs::RAM_RWX.with_sw(1) };
    let cursor = f.pt.page(&f.alloc, 7 * PAGE).unwrap();
    let PageChange::InPlace(write) = f.pt.prepare_page(&mut f.alloc, &cursor, lent).unwrap() else {
        panic!("expected an in-place write");
    };
    f.map_identity(5 * PAGE..6 * PAGE);
    f.pt.commit_in_place(&f.alloc, &mut f.tlb, write);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    /// An in-place write leaves the tables, the fold record and the TLB
    /// log exactly as the general commit of the same change does.
    #[test]
    fn in_place_writes_match_the_general_commit(
        setup in proptest::collection::vec(op_strategy(), 0..20),
        page in 0u64..4096,
        which in 0u8..6,
    ) {
        let mut general = Fixture::new(36);
        let mut fast = Fixture::new(36);
        for Op::Update { start, pages, leaf } in setup {
            general.update(start..start + pages * PAGE, leaf).unwrap();
            fast.update(start..start + pages * PAGE, leaf).unwrap();
        }
        let ipa = page * PAGE;
        let leaf = match which {
            0 => Leaf::Invalid(InvalidPayload::ZERO),
            1 => Leaf::Invalid(InvalidPayload::new(2 << 32)),
            5 => Leaf::Mapped { oa: PhysAddr(ipa), attrs: S2Attrs::DEVICE_RW },
            sw => Leaf::Mapped { oa: PhysAddr(ipa), attrs: S2Attrs::RAM_RWX.with_sw(sw - 2) },
        };
        let cursor = fast.pt.page(&fast.alloc, ipa).unwrap();
        let PageChange::InPlace(write) = fast.pt.prepare_page(&mut fast.alloc, &cursor, leaf).unwrap()
        else {
            return Ok(());
        };
        fast.pt.commit_in_place(&fast.alloc, &mut fast.tlb, write);
        let prepared = general.pt.prepare(&mut general.alloc, ipa..ipa + PAGE, leaf).unwrap();
        prop_assert_eq!(prepared.pages, 0);
        prop_assert_eq!(general.pt.commit(&mut general.alloc, &mut general.tlb, prepared), 0);
        prop_assert_eq!(fast.alloc.snapshot(&fast.pt), general.alloc.snapshot(&general.pt));
        prop_assert_eq!(fast.pt.table_pages(), general.pt.table_pages());
        prop_assert_eq!(fast.pt.fold_miss, general.pt.fold_miss);
        prop_assert_eq!(fast.tlb.take_events(), general.tlb.take_events());
    }
}
