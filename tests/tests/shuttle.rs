//! The lock protocol under a model checker: shuttle runs a few threads
//! over the real tracker, switching between them before every lock is
//! taken (`Platform::preemption_point`) and whenever a thread waits for a
//! lock, along thousands of random schedules.
//!
//! What it looks for: a deadlock between the host and guest locks
//! (every thread waiting for ever: shuttle's step bound fails the run), a
//! pin count or share count that a racing call corrupted, a call that saw
//! a half-made change. After each schedule every invariant must hold, the
//! hyp must own exactly what was donated minus what came back, and each
//! page's pins must equal the pins that succeeded minus the unpins that did.
//!
//! `S2RMAP_SHUTTLE_SCHEDULES` sets the number of schedules (default 20,000
//! in release builds, 200 in debug builds).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use ownership::{MemoryMap, OwnerId};
use share::host_model::{HostPlatform, create_guest, new_tracker_relaxing};
use share::{PageMeta, Tracker};
use shuttle::rand::Rng;

/// While a thread waits for a lock, and before it takes one, it lets the
/// scheduler run another.
struct YieldToScheduler;

impl share::RelaxStrategy for YieldToScheduler {
    fn relax() {
        shuttle::thread::yield_now();
    }
}

type ModelTracker = Tracker<HostPlatform<YieldToScheduler>>;

const BASE_PFN: u64 = 0x40000;
const PAGES: u64 = 4;
const THREADS: usize = 3;
const CALLS_PER_THREAD: usize = 6;

/// Successful pins minus unpins, per page, as the threads saw them.
type PinLedger = Arc<[AtomicI64; PAGES as usize]>;

fn one_schedule() {
    let mut memory = MemoryMap::new();
    memory.add(BASE_PFN << 12, PAGES << 12).expect("a RAM region");
    let tracker: Arc<ModelTracker> = Arc::new(new_tracker_relaxing(memory, 40, None));
    // The ghost checker serializes calls: it would hide the interleavings.
    #[cfg(feature = "ghost")]
    tracker.set_ghost_checking(false);
    let guest = create_guest(&tracker, None, 40, None).expect("a guest");
    let donated = Arc::new(AtomicI64::new(0));
    let pins: PinLedger = Arc::new(std::array::from_fn(|_| AtomicI64::new(0)));

    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (tracker, donated, pins) = (tracker.clone(), donated.clone(), pins.clone());
            shuttle::thread::spawn(move || run_calls(&tracker, guest, &donated, &pins))
        })
        .collect();
    for t in threads {
        t.join().expect("no call panics");
    }

    if let Err(v) = tracker.check_invariants() {
        panic!("after the schedule: {v}");
    }
    let hyp_pages = tracker.ownership_totals().expect("installed").hyp;
    assert_eq!(hyp_pages as i64, donated.load(Ordering::SeqCst), "hyp pages = donated - returned");
    let recorded: BTreeMap<u64, u32> = tracker.with_platform(|_, _, meta, _| {
        (0..PAGES).map(|i| (i, meta.pins((BASE_PFN + i) << 12))).collect()
    });
    for (i, pins_now) in recorded {
        assert_eq!(
            i64::from(pins_now),
            pins[i as usize].load(Ordering::SeqCst),
            "pins of page {i}: the count must be what succeeded"
        );
    }
}

fn run_calls(tracker: &ModelTracker, guest: OwnerId, donated: &AtomicI64, pins: &PinLedger) {
    let mut rng = shuttle::rand::thread_rng();
    for _ in 0..CALLS_PER_THREAD {
        let page = rng.gen_range(0..PAGES);
        let pfn = BASE_PFN + page;
        let nr = if page + 1 < PAGES && rng.gen_bool(0.3) { 2 } else { 1 };
        let _ = match rng.gen_range(0..10) {
            kind @ 0..=3 => tests::host_hyp::call(tracker, kind, pfn, nr, donated),
            4 => tracker.hyp_pin(pfn, 1).inspect(|()| {
                pins[page as usize].fetch_add(1, Ordering::SeqCst);
            }),
            5 => tracker.hyp_unpin(pfn, 1).inspect(|()| {
                pins[page as usize].fetch_sub(1, Ordering::SeqCst);
            }),
            6 => tracker.host_share_guest(guest, pfn, (1 << 27) + page, 1),
            7 => tracker.host_unshare_guest(guest, (1 << 27) + page, 1),
            8 => tracker.host_donate_guest(guest, pfn, page, 1),
            _ => tracker.host_fault(pfn << 12).map(|_| ()),
        };
    }
}

#[test]
fn lock_protocol_under_random_schedules() {
    let default = if cfg!(debug_assertions) { 200 } else { 20_000 };
    let schedules = std::env::var("S2RMAP_SHUTTLE_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let mut config = shuttle::Config::default();
    // A deadlock shows as threads yielding to each other for ever.
    config.max_steps = shuttle::MaxSteps::FailAfter(200_000);
    // Debug builds of the table walks need more than the default stack.
    config.stack_size = 1 << 20;
    let scheduler = shuttle::scheduler::RandomScheduler::new(schedules);
    shuttle::Runner::new(scheduler, config).run(one_schedule);
    eprintln!("shuttle: {schedules} schedules of {THREADS} threads x {CALLS_PER_THREAD} calls");
}
