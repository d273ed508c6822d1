//! A storm of shares over scattered pages, some the host had mapped and
//! some it had not, leaves no table behind once it is undone: the table
//! page count comes back to where it started (bench metric (f)).

use ownership::MemoryMap;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use share::host_model::new_tracker;

const GIB: u64 = 1 << 30;

#[test]
fn undone_share_storm_leaves_no_tables() {
    let mut memory = MemoryMap::new();
    memory.add(GIB, GIB).unwrap();
    let tracker = new_tracker(memory, 40, None);
    // The host has touched part of its memory: a few 2 MiB blocks mapped.
    for block in 0..64u64 {
        tracker.host_access(GIB + block * 7 * (2 << 20)).unwrap();
    }
    let before = tracker.counters().host_table_pages;
    let mut rng = StdRng::seed_from_u64(7);
    let mut pfns: Vec<u64> =
        (0..2000).map(|_| (GIB >> 12) + rng.random_range(0..(GIB >> 12))).collect();
    pfns.sort_unstable();
    pfns.dedup();
    for &pfn in &pfns {
        tracker.host_share_hyp(pfn, 1).unwrap();
    }
    let during = tracker.counters().host_table_pages;
    assert!(during > before + 100, "the storm splits tables ({before} -> {during})");
    // Undo in another order than the shares were made.
    let mut order = pfns.clone();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    for &pfn in &order {
        tracker.host_unshare_hyp(pfn, 1).unwrap();
    }
    assert_eq!(tracker.counters().host_table_pages, before);
    tracker.check_invariants().unwrap();
}
