//! The host <-> hyp calls the concurrency tests issue from many threads,
//! with the count of pages the hyp should own kept beside them.

use std::sync::atomic::{AtomicI64, Ordering};

use share::{Errno, Platform, Tracker};

/// Share, unshare, donate or reclaim (`kind` 0 to 3) `nr` pages at `pfn`;
/// a donation that succeeds adds to `donated`, a return subtracts.
///
/// # Panics
///
/// For `kind` above 3.
pub fn call<P: Platform>(
    tracker: &Tracker<P>,
    kind: u32,
    pfn: u64,
    nr: u64,
    donated: &AtomicI64,
) -> Result<(), Errno> {
    let pages = i64::try_from(nr).expect("a small range");
    match kind {
        0 => tracker.host_share_hyp(pfn, nr),
        1 => tracker.host_unshare_hyp(pfn, nr),
        2 => tracker.host_donate_hyp(pfn, nr).inspect(|()| {
            donated.fetch_add(pages, Ordering::SeqCst);
        }),
        3 => tracker.hyp_donate_host(pfn, nr).inspect(|()| {
            donated.fetch_sub(pages, Ordering::SeqCst);
        }),
        _ => panic!("host <-> hyp call kind {kind} is not 0..=3"),
    }
}
