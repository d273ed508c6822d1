//! Several threads hammer one tracker with its real locks over an
//! overlapping set of pages: shares, unshares, donations, reclaims, pins,
//! guest donations and shares, host faults. No call may panic or
//! deadlock (a watchdog fails the test), and at the end every invariant
//! holds, every page is accounted for, and the hyp owns exactly what was
//! donated minus what was given back.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use ownership::{MemoryMap, OwnerId, PageState};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use share::HypSide;
use share::host_model::{create_guest, new_tracker};

const BASE_PFN: u64 = 0x40000;
const PAGES: u64 = 64;
const THREADS: u64 = 4;

#[test]
fn threads_hammering_one_tracker_keep_every_invariant() {
    let ops_per_thread: u64 = if cfg!(debug_assertions) { 5_000 } else { 50_000 };
    let mut memory = MemoryMap::new();
    memory.add(BASE_PFN << 12, PAGES << 12).unwrap();
    let tracker = Arc::new(new_tracker(memory, 40, None));
    // The ghost checker serializes every call: keep the contention.
    #[cfg(feature = "ghost")]
    tracker.set_ghost_checking(false);
    let guests: Vec<OwnerId> =
        (0..2).map(|_| create_guest(&tracker, None, 40, None).unwrap()).collect();
    let donated = Arc::new(AtomicI64::new(0));
    let ops_done = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    for t in 0..THREADS {
        let (tracker, guests, donated, ops_done, done_tx) =
            (tracker.clone(), guests.clone(), donated.clone(), ops_done.clone(), done_tx.clone());
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(0xc0ffee + t);
            for _ in 0..ops_per_thread {
                let pfn = BASE_PFN + rng.random_range(0..PAGES);
                let nr = if rng.random_bool(0.8) { 1 } else { rng.random_range(1..4) };
                let g = guests[rng.random_range(0..guests.len())];
                let gfn = rng.random_range(0..8u64);
                let ugfn = (1 << 27) + rng.random_range(0..8u64);
                let _ = match rng.random_range(0..12) {
                    kind @ 0..=3 => tests::host_hyp::call(&tracker, kind, pfn, nr, &donated),
                    4 => tracker.hyp_pin(pfn, 1),
                    5 => tracker.hyp_unpin(pfn, 1),
                    6 => tracker.host_donate_guest(g, pfn, gfn, 1),
                    7 => tracker.host_share_guest(g, pfn, ugfn, 1),
                    8 => tracker.host_unshare_guest(g, ugfn, 1),
                    9 => tracker.guest_share_host(g, gfn, 1),
                    10 => tracker.guest_relinquish(g, gfn, 1),
                    _ => tracker.host_access(pfn << 12).map(|_| ()),
                };
                ops_done.fetch_add(1, Ordering::Relaxed);
            }
            done_tx.send(()).unwrap();
        });
    }
    drop(done_tx);
    for _ in 0..THREADS {
        done_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("a thread hung: deadlock or livelock");
    }
    let ops = ops_done.load(Ordering::Relaxed);
    assert_eq!(ops, THREADS * ops_per_thread);
    tracker.check_invariants().unwrap_or_else(|v| panic!("{v}"));
    tracker.with_platform(|_, tlb, _, hyp| {
        tlb.check_quiescent().unwrap();
        let hyp_owned = hyp.count(PageState::Owned).unwrap() as i64;
        assert_eq!(
            hyp_owned,
            donated.load(Ordering::SeqCst),
            "hyp-owned pages != donated - returned"
        );
    });
    // Every page has exactly one owner: the runs cover RAM exactly once.
    let mut covered = 0;
    tracker
        .for_each_run((BASE_PFN << 12)..((BASE_PFN + PAGES) << 12), |run| {
            covered += (run.range.end - run.range.start) >> 12;
        })
        .unwrap();
    assert_eq!(covered, PAGES);
    eprintln!("concurrency: {ops} operations on {THREADS} threads, invariants hold");
}
