extern crate std;

use std::collections::BTreeMap;
use std::vec::Vec;

use pgtable::host::{HostTables, RecordingTlb};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;

const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;
const PAGE: u64 = PAGE_SIZE;

struct Host {
    alloc: HostTables,
    tlb: RecordingTlb,
    s2: HostStage2,
}

impl Host {
    fn new(regions: &[(u64, u64)]) -> Self {
        let cfg = Stage2Config::new(40).unwrap();
        let mut alloc = HostTables::new();
        let root = alloc.alloc_root(cfg.root_pages()).unwrap();
        let mut memory = MemoryMap::new();
        for &(base, size) in regions {
            memory.add(base, size).unwrap();
        }
        let s2 = HostStage2::new(cfg, root, memory, HostMemoryTypes::CLASSIC).unwrap();
        Self { alloc, tlb: RecordingTlb::default(), s2 }
    }

    fn fault(&mut self, pa: u64) -> FaultOutcome {
        let r = self.s2.host_fault(&mut self.alloc, &mut self.tlb, pa).unwrap();
        self.tlb.check_bbm().unwrap();
        r
    }

    fn runs(&self, range: Range<u64>) -> Vec<Run> {
        self.s2.runs(&self.alloc, range).collect::<Result<_, _>>().unwrap()
    }
}

#[test]
fn fault_in_1g_aligned_ram_maps_a_1g_block() {
    let mut h = Host::new(&[(GIB, 2 * GIB)]);
    let out = h.fault(GIB + 12345 * PAGE);
    assert_eq!(out, FaultOutcome::Mapped { range: GIB..2 * GIB, kind: MemoryKind::Ram });
    let leaf = h.s2.table().lookup(&h.alloc, GIB + 7).unwrap();
    assert_eq!(leaf.level, 1);
    assert_eq!(h.fault(GIB + 5 * PAGE), FaultOutcome::AlreadyMapped);
}

#[test]
fn fault_never_crosses_a_region_boundary() {
    // RAM 2 MiB + 4 KiB .. 6 MiB + 4 KiB: not 2 MiB aligned at either end.
    let mut h = Host::new(&[(MIB2 + PAGE, 2 * MIB2)]);
    assert_eq!(
        h.fault(MIB2 + PAGE),
        FaultOutcome::Mapped { range: MIB2 + PAGE..MIB2 + 2 * PAGE, kind: MemoryKind::Ram }
    );
    assert_eq!(
        h.fault(2 * MIB2 + 5 * PAGE),
        FaultOutcome::Mapped { range: 2 * MIB2..3 * MIB2, kind: MemoryKind::Ram }
    );
    // The MMIO page just below the region: a device page, never a block
    // that would reach into RAM.
    assert_eq!(
        h.fault(MIB2),
        FaultOutcome::Mapped { range: MIB2..MIB2 + PAGE, kind: MemoryKind::Mmio }
    );
    let leaf = h.s2.table().lookup(&h.alloc, MIB2).unwrap();
    assert!(leaf.desc.attrs().contains(S2Attrs::MEMATTR_DEVICE_NGNRE | S2Attrs::XN));
    assert!(!leaf.desc.attrs().contains(S2Attrs::MEMATTR_NORMAL_WB));
    // Far MMIO above all RAM: a 1 GiB device block.
    assert_eq!(
        h.fault(8 * GIB + 3 * PAGE),
        FaultOutcome::Mapped { range: 8 * GIB..9 * GIB, kind: MemoryKind::Mmio }
    );
}

#[test]
fn fault_on_someone_elses_page_maps_nothing() {
    let mut h = Host::new(&[(GIB, GIB)]);
    h.s2.set_owner(&mut h.alloc, &mut h.tlb, GIB + PAGE..GIB + 2 * PAGE, OwnerId::HYP).unwrap();
    let before = h.alloc.snapshot(h.s2.table());
    assert_eq!(h.fault(GIB + PAGE + 8), FaultOutcome::NotYours { owner: OwnerId::HYP });
    assert_eq!(h.alloc.snapshot(h.s2.table()), before);
    // Its neighbour still faults in, as a page: the 2 MiB block around it
    // does not agree.
    assert_eq!(
        h.fault(GIB),
        FaultOutcome::Mapped { range: GIB..GIB + PAGE, kind: MemoryKind::Ram }
    );
    assert_eq!(
        h.fault(GIB + MIB2),
        FaultOutcome::Mapped { range: GIB + MIB2..GIB + 2 * MIB2, kind: MemoryKind::Ram }
    );
}

#[test]
fn annotate_one_page_in_a_block_then_undo_coalesces() {
    let mut h = Host::new(&[(GIB, GIB)]);
    h.fault(GIB);
    let tables = h.s2.table().table_pages();
    let before = h.alloc.snapshot(h.s2.table());
    let page = GIB + 300 * MIB2 + 17 * PAGE;
    h.s2.set_state(&mut h.alloc, &mut h.tlb, page..page + PAGE, PageState::SharedOwned).unwrap();
    assert_eq!(h.s2.table().table_pages(), tables + 2);
    assert_eq!(
        h.runs(GIB..2 * GIB),
        [
            Run { range: GIB..page, owner: Some(OwnerId::HOST), host_state: PageState::Owned },
            Run {
                range: page..page + PAGE,
                owner: Some(OwnerId::HOST),
                host_state: PageState::SharedOwned
            },
            Run {
                range: page + PAGE..2 * GIB,
                owner: Some(OwnerId::HOST),
                host_state: PageState::Owned
            },
        ]
    );
    h.s2.set_state(&mut h.alloc, &mut h.tlb, page..page + PAGE, PageState::Owned).unwrap();
    assert_eq!(h.s2.table().table_pages(), tables);
    assert_eq!(h.alloc.snapshot(h.s2.table()), before);
    h.tlb.check_bbm().unwrap();
}

#[test]
fn whole_block_owner_is_one_block_entry() {
    let mut h = Host::new(&[(GIB, GIB)]);
    h.s2.set_owner(&mut h.alloc, &mut h.tlb, GIB + MIB2..GIB + 2 * MIB2, OwnerId(7)).unwrap();
    let leaf = h.s2.table().lookup(&h.alloc, GIB + MIB2 + 99 * PAGE).unwrap();
    assert_eq!(leaf.level, 2);
    assert_eq!(leaf.desc.bits(), 7 << 32);
    assert_eq!(h.s2.owner_of(&h.alloc, GIB + MIB2).unwrap(), Some(OwnerId(7)));
    assert_eq!(h.s2.state_of(&h.alloc, GIB + MIB2).unwrap(), PageState::NoPage);
}

#[test]
fn refusals_change_nothing() {
    let mut h = Host::new(&[(GIB, GIB)]);
    h.fault(GIB);
    let before = h.alloc.snapshot(h.s2.table());
    let (a, t) = (&mut h.alloc, &mut h.tlb);
    assert_eq!(h.s2.set_state(a, t, 0..PAGE, PageState::Owned), Err(Error::NotRam(0, PAGE)));
    assert_eq!(h.s2.set_state(a, t, GIB..GIB + PAGE, PageState::NoPage), Err(Error::NoPageState));
    assert_eq!(
        h.s2.set_owner(a, t, GIB..GIB + PAGE, OwnerId::HOST),
        Err(Error::HostOwnerAnnotation)
    );
    assert_eq!(h.s2.set_owner(a, t, GIB..GIB, OwnerId::HYP), Err(Error::BadRange(GIB, GIB)));
    assert_eq!(
        h.s2.set_owner(a, t, GIB + 1..GIB + PAGE, OwnerId::HYP),
        Err(Error::BadRange(GIB + 1, GIB + PAGE))
    );
    a.set_limit(Some(a.in_use()));
    assert_eq!(h.s2.set_owner(a, t, GIB..GIB + PAGE, OwnerId::HYP), Err(Error::NoMemory));
    assert_eq!(h.alloc.snapshot(h.s2.table()), before);
}

#[test]
fn fault_out_of_table_pages_recycles_mmio_mappings() {
    // One-page RAM regions at 1, 2, 3, 4 GiB: the MMIO page right after
    // each can only be mapped as a page, which takes two tables.
    let mut regions: Vec<(u64, u64)> = (1..=4).map(|k| (k * GIB, PAGE)).collect();
    regions.push((8 * GIB + PAGE, MIB2));
    let mut h = Host::new(&regions);
    for k in 1..=4 {
        let out = h.fault(k * GIB + PAGE);
        assert_eq!(
            out,
            FaultOutcome::Mapped {
                range: k * GIB + PAGE..k * GIB + 2 * PAGE,
                kind: MemoryKind::Mmio
            }
        );
    }
    let used = h.alloc.in_use();
    h.alloc.set_limit(Some(used));
    // Recycling by hand (on a copy) gives back exactly the four MMIO pages.
    let mut copy = Host::new(&regions);
    for k in 1..=4 {
        copy.fault(k * GIB + PAGE);
    }
    assert_eq!(copy.s2.recycle_mmio(&mut copy.alloc, &mut copy.tlb), 4);
    assert_eq!(copy.s2.table().table_pages(), 0);
    // A RAM fault now needs tables it cannot get: the MMIO mappings go,
    // their tables fold away, and the RAM page is mapped.
    let ram = 8 * GIB + 7 * PAGE;
    assert!(matches!(h.fault(ram), FaultOutcome::Mapped { kind: MemoryKind::Ram, .. }));
    assert!(h.s2.page_info(&h.alloc, ram).unwrap().mapped);
    assert!(!h.s2.page_info(&h.alloc, GIB + PAGE).unwrap().mapped);
    assert!(h.alloc.in_use() < used);
    // And MMIO faults in again.
    assert!(matches!(h.fault(GIB + PAGE), FaultOutcome::Mapped { kind: MemoryKind::Mmio, .. }));
}

#[test]
fn map_owned_ram_maps_the_hosts_unmapped_ram_with_the_largest_blocks() {
    // RAM at 1 GiB (2 GiB, aligned) and one unaligned region; the hyp owns
    // one page and one whole 2 MiB block; the host already mapped one block.
    let regions = [(GIB, 2 * GIB), (4 * GIB + PAGE, MIB2)];
    let mut h = Host::new(&regions);
    let (a, t) = (&mut h.alloc, &mut h.tlb);
    h.s2.set_owner(a, t, GIB + 5 * PAGE..GIB + 6 * PAGE, OwnerId::HYP).unwrap();
    h.s2.set_owner(a, t, GIB + 4 * MIB2..GIB + 5 * MIB2, OwnerId::HYP).unwrap();
    h.fault(2 * GIB + 3 * PAGE);
    let mapped = h.s2.map_owned_ram(&mut h.alloc, &mut h.tlb).unwrap();
    h.tlb.check_bbm().unwrap();
    // Everything but the hyp's 513 pages and the block the host had.
    let ram_pages = (2 * GIB + MIB2) / PAGE;
    assert_eq!(mapped, ram_pages - 513 - GIB / PAGE);
    for (base, size) in regions {
        for run in h.runs(base..base + size) {
            let hyp = run.owner == Some(OwnerId::HYP);
            let hyp_range = run.range == (GIB + 5 * PAGE..GIB + 6 * PAGE)
                || run.range == (GIB + 4 * MIB2..GIB + 5 * MIB2);
            assert_eq!(hyp, hyp_range, "{run:?}");
            if !hyp {
                assert_eq!(run.host_state, PageState::Owned, "{run:?}");
            }
        }
        for pa in (base..base + size).step_by(PAGE as usize) {
            let info = h.s2.page_info(&h.alloc, pa).unwrap();
            assert_eq!(info.mapped, info.owner == Some(OwnerId::HOST), "{pa:#x}");
        }
    }
    // Largest blocks: the 2 MiB block around the hyp's page is split, the
    // rest of its GiB is 2 MiB blocks, the second GiB one 1 GiB block.
    assert_eq!(h.s2.table().lookup(&h.alloc, GIB + 6 * PAGE).unwrap().level, 3);
    assert_eq!(h.s2.table().lookup(&h.alloc, GIB + MIB2).unwrap().level, 2);
    assert_eq!(h.s2.table().lookup(&h.alloc, 2 * GIB + 7 * PAGE).unwrap().level, 1);
    assert_eq!(h.fault(GIB + 7 * PAGE), FaultOutcome::AlreadyMapped);
    assert_eq!(h.fault(GIB + 5 * PAGE), FaultOutcome::NotYours { owner: OwnerId::HYP });
    // Nothing left to map: a second call maps nothing and changes nothing.
    let before = h.alloc.snapshot(h.s2.table());
    assert_eq!(h.s2.map_owned_ram(&mut h.alloc, &mut h.tlb), Ok(0));
    assert_eq!(h.alloc.snapshot(h.s2.table()), before);
}

#[test]
fn map_owned_ram_out_of_table_pages_leaves_the_rest_to_faults() {
    // Two unaligned regions: each needs tables of its own.
    let regions = [(GIB + PAGE, MIB2), (3 * GIB + PAGE, MIB2)];
    let mut h = Host::new(&regions);
    let first_region_tables = {
        let mut probe = Host::new(&regions[..1]);
        probe.s2.map_owned_ram(&mut probe.alloc, &mut probe.tlb).unwrap();
        probe.alloc.in_use()
    };
    h.alloc.set_limit(Some(first_region_tables));
    assert_eq!(h.s2.map_owned_ram(&mut h.alloc, &mut h.tlb), Err(Error::NoMemory));
    assert!(h.s2.page_info(&h.alloc, GIB + PAGE).unwrap().mapped);
    assert!(!h.s2.page_info(&h.alloc, 3 * GIB + PAGE).unwrap().mapped);
    h.alloc.set_limit(None);
    assert!(matches!(h.fault(3 * GIB + PAGE), FaultOutcome::Mapped { .. }));
}

#[test]
fn owner_ids_and_their_names() {
    assert!(!OwnerId::HOST.is_guest() && !OwnerId::HYP.is_guest());
    assert!(OwnerId::FIRST_GUEST.is_guest() && OwnerId(u32::MAX).is_guest());
    assert_eq!(
        std::format!("{} {} {}", OwnerId::HOST, OwnerId::HYP, OwnerId(5)),
        "host hyp guest5"
    );
    assert_eq!(Error::from(pgtable::Error::UnsupportedIpaSize(40)), Error::BadRange(0, 1 << 40));
    assert_eq!(Error::from(pgtable::Error::NoMemory), Error::NoMemory);
}

#[test]
fn ranges_up_to_the_end_of_the_ipa_space() {
    let mut h = Host::new(&[(GIB, GIB)]);
    let limit = h.s2.ipa_limit();
    let (a, t) = (&mut h.alloc, &mut h.tlb);
    h.s2.set_owner(a, t, limit - PAGE..limit, OwnerId::HYP).unwrap();
    assert_eq!(
        h.s2.set_owner(a, t, limit - PAGE..limit + PAGE, OwnerId::HYP),
        Err(Error::BadRange(limit - PAGE, limit + PAGE))
    );
    assert_eq!(
        h.s2.set_owner(a, t, PAGE..PAGE + 1, OwnerId::HYP),
        Err(Error::BadRange(PAGE, PAGE + 1))
    );
    assert_eq!(h.s2.unmap(a, t, limit - PAGE..limit), Ok(()));
}

#[test]
fn commit_reports_the_pages_it_took() {
    let mut h = Host::new(&[(GIB, GIB)]);
    h.fault(GIB);
    let page = GIB + 5 * PAGE;
    let prepared =
        h.s2.prepare(&mut h.alloc, page..page + PAGE, Target::Owner(OwnerId::HYP)).unwrap();
    assert_eq!(prepared.pages, 2, "a 1 GiB block splits twice for one page");
    h.alloc.reserve(2).unwrap();
    assert_eq!(h.s2.commit(&mut h.alloc, &mut h.tlb, prepared), 2);
}

#[test]
fn adjacent_regions_do_not_overlap() {
    let mut m = MemoryMap::new();
    m.add(GIB, GIB).unwrap();
    m.add(2 * GIB, GIB).unwrap();
    m.add(0, GIB).unwrap();
    assert_eq!(m.regions().count(), 3);
}

#[test]
fn corrupt_entries_are_reported_not_trusted() {
    let h = Host::new(&[(GIB, GIB)]);
    let valid_reserved =
        Descriptor::leaf(3, PhysAddr(GIB), S2Attrs::RAM_RWX.with_sw(0b11)).unwrap();
    assert_eq!(
        h.s2.decode(valid_reserved, GIB),
        Err(Error::Corrupt { pa: GIB, desc: valid_reserved.bits() })
    );
    let low_bits = Descriptor::from_bits((5 << 32) | 0x40);
    assert!(matches!(h.s2.decode(low_bits, GIB), Err(Error::Corrupt { .. })));
}

type Value = (Option<OwnerId>, PageState);
const DEFAULT: Value = (Some(OwnerId::HOST), PageState::Owned);

/// The reference model: a plain map from page to (owner, state), kept as
/// disjoint intervals of pages that differ from (host, Owned) so that
/// gigabyte-sized updates stay cheap.
#[derive(Default)]
struct Model {
    /// start pfn -> (end pfn, value)
    spans: BTreeMap<u64, (u64, Value)>,
}

impl Model {
    fn set(&mut self, range: &Range<u64>, value: Value) {
        let (start, end) = (range.start / PAGE, range.end / PAGE);
        // Cut any span that straddles either end, then drop those inside.
        for cut in [start, end] {
            let straddler = self.spans.range(..cut).next_back().map(|(&s, &(e, v))| (s, e, v));
            if let Some((s, e, v)) = straddler.filter(|&(_, e, _)| e > cut) {
                self.spans.insert(s, (cut, v));
                self.spans.insert(cut, (e, v));
            }
        }
        let inside: Vec<u64> = self.spans.range(start..end).map(|(&s, _)| s).collect();
        for s in inside {
            self.spans.remove(&s);
        }
        if value != DEFAULT {
            self.spans.insert(start, (end, value));
        }
    }

    fn get(&self, pfn: u64) -> Value {
        match self.spans.range(..=pfn).next_back() {
            Some((_, &(end, v))) if pfn < end => v,
            _ => DEFAULT,
        }
    }

    /// Maximal non-default runs, as byte ranges.
    fn runs(&self) -> Vec<(Range<u64>, Value)> {
        let mut out: Vec<(Range<u64>, Value)> = Vec::new();
        for (&s, &(e, v)) in &self.spans {
            match out.last_mut() {
                Some((r, lv)) if r.end == s * PAGE && *lv == v => r.end = e * PAGE,
                _ => out.push((s * PAGE..e * PAGE, v)),
            }
        }
        out
    }
}

fn compare(h: &Host, model: &Model, regions: &[(u64, u64)]) -> Result<(), std::string::String> {
    let table: Vec<(Range<u64>, Value)> = regions
        .iter()
        .flat_map(|&(base, size)| h.runs(base..base + size))
        .map(|run| (run.range, (run.owner, run.host_state)))
        .filter(|(_, v)| *v != DEFAULT)
        .collect();
    let model = model.runs();
    if table != model {
        let first = table.iter().zip(&model).find(|(a, b)| a != b);
        return Err(std::format!(
            "table and model disagree ({} vs {} runs); first difference: {first:x?}",
            table.len(),
            model.len()
        ));
    }
    Ok(())
}

/// Random set_owner / set_state / unmap / host_fault sequences over RAM
/// regions with MMIO gaps, checked against the model after every step by
/// walking the table back into runs.
#[test]
fn random_sequences_match_reference_model() {
    let seed: u64 =
        std::env::var("S2RMAP_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_2026);
    let steps: usize =
        std::env::var("S2RMAP_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let regions = [(GIB, GIB), (3 * GIB + 5 * PAGE, 3 * MIB2), (4 * GIB + MIB2, 64 * PAGE)];
    let mut h = Host::new(&regions);
    let mut model = Model::default();
    let mut rng = StdRng::seed_from_u64(seed);
    // Most operations land in a small hot window of each region, so that
    // blocks split and coalesce over and over.
    let pick_range = |rng: &mut StdRng| -> Range<u64> {
        let (base, size) = regions[rng.random_range(0..regions.len())];
        let window = size.min(8 * MIB2) / PAGE;
        let (start, pages) = match rng.random_range(0..10) {
            0 => (0, size / PAGE),
            1..=2 => {
                let blocks = (window * PAGE / MIB2).max(1);
                let first = (base + rng.random_range(0..blocks) * MIB2).next_multiple_of(MIB2);
                ((first.saturating_sub(base)) / PAGE, MIB2 / PAGE)
            }
            _ => (rng.random_range(0..window), rng.random_range(1..=64)),
        };
        let start = start.min(size / PAGE - 1);
        let pages = pages.min(size / PAGE - start);
        base + start * PAGE..base + (start + pages) * PAGE
    };
    let states = [PageState::Owned, PageState::SharedOwned, PageState::SharedBorrowed];
    for step in 0..steps {
        let ctx = || std::format!("seed {seed}, step {step}");
        match rng.random_range(0..8) {
            0..=1 => {
                let range = pick_range(&mut rng);
                let owner = OwnerId(rng.random_range(1..5));
                h.s2.set_owner(&mut h.alloc, &mut h.tlb, range.clone(), owner).unwrap();
                model.set(&range, (Some(owner), PageState::NoPage));
            }
            2..=3 => {
                let range = pick_range(&mut rng);
                let state = states[rng.random_range(0..states.len())];
                h.s2.set_state(&mut h.alloc, &mut h.tlb, range.clone(), state).unwrap();
                let owner = (state != PageState::SharedBorrowed).then_some(OwnerId::HOST);
                model.set(&range, (owner, state));
            }
            4 => {
                let range = pick_range(&mut rng);
                h.s2.unmap(&mut h.alloc, &mut h.tlb, range.clone()).unwrap();
                model.set(&range, DEFAULT);
            }
            _ => {
                // Faults in RAM and in the MMIO gaps around it.
                let pa = if rng.random_bool(0.8) {
                    pick_range(&mut rng).start + rng.random_range(0..PAGE)
                } else {
                    rng.random_range(0..5 * GIB)
                };
                let expect_owner = model.get(pa / PAGE);
                let out = h.s2.host_fault(&mut h.alloc, &mut h.tlb, pa).unwrap();
                let is_ram = h.s2.memory().is_ram(pa);
                match &out {
                    FaultOutcome::NotYours { owner } => {
                        assert!(is_ram, "{}", ctx());
                        assert_eq!((Some(*owner), PageState::NoPage), expect_owner, "{}", ctx());
                    }
                    FaultOutcome::Mapped { range, kind } => {
                        assert_eq!(*kind == MemoryKind::Ram, is_ram, "{}", ctx());
                        let span = h.s2.memory().span_of(pa, 1 << 40);
                        assert!(
                            span.range.start <= range.start && range.end <= span.range.end,
                            "{}",
                            ctx()
                        );
                        assert!(range.contains(&pa), "{}", ctx());
                        if is_ram {
                            assert_eq!(expect_owner, DEFAULT, "{}", ctx());
                        }
                    }
                    FaultOutcome::AlreadyMapped => {
                        assert!(!is_ram || expect_owner.1 != PageState::NoPage, "{}", ctx());
                    }
                }
                let after = h.s2.page_info(&h.alloc, pa).unwrap();
                assert_eq!(
                    after.mapped,
                    !matches!(out, FaultOutcome::NotYours { .. }),
                    "{}",
                    ctx()
                );
            }
        }
        h.tlb.check_bbm().unwrap_or_else(|e| panic!("{}: {e}", ctx()));
        compare(&h, &model, &regions).unwrap_or_else(|e| panic!("{}: {e}", ctx()));
    }
}

/// A one-page change of a page the host maps as RAM skips the RAM check
/// (it creates no translation) and gives what the general path gives; a
/// page mapped with other attributes, MMIO, still goes through it.
#[test]
fn one_page_changes_check_ram_unless_the_page_is_mapped_as_ram() {
    let mut h = Host::new(&[(GIB, GIB)]);
    h.fault(GIB);
    let ram = GIB + 5 * PAGE;
    let page = h.s2.page(&h.alloc, ram).unwrap();
    assert!(page.maps_as_ram);
    for target in [Target::Lent { unmapped_before: false }, Target::State(PageState::SharedOwned)] {
        let general = h.s2.prepare(&mut h.alloc, ram..ram + PAGE, target).unwrap();
        let one_page = h.s2.prepare_page(&mut h.alloc, &page, target).unwrap();
        match one_page {
            PageChange::Prepared(prepared) => assert_eq!(prepared, general),
            PageChange::InPlace(_) => panic!("a page in a 1 GiB block changes through a split"),
        }
    }
    let mmio = 5 * PAGE;
    assert!(matches!(h.fault(mmio), FaultOutcome::Mapped { .. }));
    let page = h.s2.page(&h.alloc, mmio).unwrap();
    assert!(page.info.mapped && !page.maps_as_ram);
    assert_eq!(
        h.s2.prepare_page(&mut h.alloc, &page, Target::Lent { unmapped_before: false }),
        Err(Error::NotRam(mmio, mmio + PAGE))
    );
}
