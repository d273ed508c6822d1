//! A call asks its table pools for exactly what it needs: one that needs
//! no table page succeeds with its pool empty and is no allocation point
//! (an injected failure cannot reach it), and one that needs some
//! succeeds when the pool holds exactly that many.

use std::sync::Arc;

use ownership::{MemoryMap, OwnerId, PageState};
use pgtable::host::{FaultInjector, HostTables};
use share::Errno;
use share::host_model::{HostPlatform, create_guest, new_tracker};

const BASE_PFN: u64 = 0x40000;
const UNPROTECTED_GFN: u64 = 1 << 27;

type Tracker = share::Tracker<HostPlatform>;

/// 4 MiB of RAM: two 2 MiB blocks.
fn tracker() -> Tracker {
    let mut memory = MemoryMap::new();
    memory.add(BASE_PFN << 12, 1024 << 12).expect("a RAM region");
    new_tracker(memory, 40, None)
}

/// Runs `f` with the host's pool holding no free page, then lifts the
/// limit again.
fn with_host_pool_full<T>(t: &Tracker, f: impl FnOnce() -> T) -> T {
    t.with_platform(|alloc, _, _, _| alloc.set_limit(Some(alloc.in_use())));
    let out = f();
    t.with_platform(|alloc, _, _, _| alloc.set_limit(None));
    out
}

fn host_in_use(t: &Tracker) -> usize {
    t.with_platform(|alloc, _, _, _| alloc.in_use())
}

fn host_state(t: &Tracker, pfn: u64) -> PageState {
    t.host_page(pfn << 12).expect("a RAM page").host_state
}

fn guest_alloc<T>(t: &Tracker, g: OwnerId, f: impl FnOnce(&mut HostTables) -> T) -> T {
    t.with_guest_platform(g, |alloc, _| f(alloc)).expect("a live guest")
}

#[test]
fn giving_pages_back_needs_no_free_table_page() {
    let t = tracker();
    let after_boot = host_in_use(&t);
    assert_eq!(t.host_share_hyp(BASE_PFN + 5, 1), Ok(()));
    assert!(host_in_use(&t) > after_boot, "sharing one page of a block splits it");

    // Unsharing needs no table page (the split table folds away).
    assert_eq!(with_host_pool_full(&t, || t.host_unshare_hyp(BASE_PFN + 5, 1)), Ok(()));
    assert_eq!(host_state(&t, BASE_PFN + 5), PageState::Owned);
    assert_eq!(host_in_use(&t), after_boot);

    assert_eq!(t.host_donate_hyp(BASE_PFN + 7, 1), Ok(()));
    assert_eq!(with_host_pool_full(&t, || t.hyp_donate_host(BASE_PFN + 7, 1)), Ok(()));
    assert_eq!(host_state(&t, BASE_PFN + 7), PageState::Owned);

    assert_eq!(t.host_share_ffa(BASE_PFN + 9, 2), Ok(()));
    assert_eq!(with_host_pool_full(&t, || t.host_unshare_ffa(BASE_PFN + 9, 2)), Ok(()));
    assert_eq!(host_state(&t, BASE_PFN + 10), PageState::Owned);
    t.check_invariants().expect("invariants");
}

#[test]
fn a_guest_gives_back_and_is_torn_down_with_the_host_pool_full() {
    let t = tracker();
    let g = create_guest(&t, None, 40, None).expect("a guest");
    assert_eq!(t.host_share_guest(g, BASE_PFN + 3, UNPROTECTED_GFN, 2), Ok(()));
    assert_eq!(with_host_pool_full(&t, || t.host_unshare_guest(g, UNPROTECTED_GFN, 2)), Ok(()));
    assert_eq!(host_state(&t, BASE_PFN + 3), PageState::Owned);

    // Teardown counts, for each run of the guest, that run alone: a page
    // donated, a page lent and a whole block donated all come back
    // without a free table page.
    assert_eq!(t.host_donate_guest(g, BASE_PFN + 20, 0x10, 1), Ok(()));
    assert_eq!(t.host_share_guest(g, BASE_PFN + 21, UNPROTECTED_GFN + 1, 1), Ok(()));
    assert_eq!(t.host_donate_guest(g, BASE_PFN + 0x200, 0x200, 512), Ok(()));
    let guest = with_host_pool_full(&t, || t.teardown(g)).expect("teardown");
    drop(guest);
    for pfn in [BASE_PFN + 20, BASE_PFN + 21, BASE_PFN + 0x200, BASE_PFN + 0x3ff] {
        assert_eq!(host_state(&t, pfn), PageState::Owned, "pfn {pfn:#x}");
    }
    t.check_invariants().expect("invariants");
}

#[test]
fn a_guest_call_that_needs_no_guest_table_page_is_no_allocation_point() {
    let t = tracker();
    let g = create_guest(&t, None, 40, None).expect("a guest");
    // Pages 0x10 and 0x11 in one guest table: from now on their changes
    // need no guest table page.
    assert_eq!(t.host_donate_guest(g, BASE_PFN + 20, 0x10, 2), Ok(()));
    let injector = FaultInjector::new();
    guest_alloc(&t, g, |alloc| alloc.set_injector(Some(Arc::clone(&injector))));
    injector.arm(1);
    assert_eq!(t.guest_share_host(g, 0x10, 1), Ok(()));
    assert_eq!(t.guest_unshare_host(g, 0x10, 1), Ok(()));
    assert_eq!(t.guest_relinquish(g, 0x11, 1), Ok(()));
    assert_eq!(injector.fired(), 0, "a guest call with nothing to allocate reached the pool");

    // A call that needs a guest table page meets the armed failure.
    assert_eq!(t.host_donate_guest(g, BASE_PFN + 30, 0x400, 1), Err(Errno::ENOMEM));
    assert_eq!(injector.fired(), 1);
    t.check_invariants().expect("invariants");
}

#[test]
fn one_reservation_serves_commits_that_need_none_and_some() {
    let t = tracker();
    let g = create_guest(&t, None, 40, None).expect("a guest");
    // Guest frame 0x1ff is a page of a split range, 0x200 starts a block;
    // on the host, 0x401ff is in a split table and 0x40200 starts a block.
    assert_eq!(t.host_donate_guest(g, BASE_PFN + 0x1ff, 0x1ff, 1), Ok(()));
    assert_eq!(t.host_donate_guest(g, BASE_PFN + 0x200, 0x200, 512), Ok(()));
    let guest_before = guest_alloc(&t, g, |alloc| alloc.in_use());
    // Exactly the pages the call needs: one guest table and one host table
    // to split the blocks, taken by the second of the two commits.
    guest_alloc(&t, g, |alloc| alloc.set_limit(Some(guest_before + 1)));
    let host_before = host_in_use(&t);
    t.with_platform(|alloc, _, _, _| alloc.set_limit(Some(host_before + 1)));
    assert_eq!(t.guest_share_host(g, 0x1ff, 2), Ok(()));
    assert_eq!(guest_alloc(&t, g, |alloc| alloc.in_use()), guest_before + 1);
    assert_eq!(host_in_use(&t), host_before + 1);
    assert_eq!(host_state(&t, BASE_PFN + 0x1ff), PageState::SharedBorrowed);
    assert_eq!(host_state(&t, BASE_PFN + 0x200), PageState::SharedBorrowed);
    assert_eq!(host_state(&t, BASE_PFN + 0x201), PageState::NoPage);
    t.check_invariants().expect("invariants");
}

#[test]
fn what_a_call_reserved_and_did_not_take_goes_back() {
    let t = tracker();
    let g = create_guest(&t, None, 40, None).expect("a guest");
    let h = create_guest(&t, None, 40, None).expect("another guest");
    // Both 2 MiB blocks lent to g; h borrows the first page of the second.
    assert_eq!(t.host_share_guest(g, BASE_PFN, UNPROTECTED_GFN, 1024), Ok(()));
    assert_eq!(t.host_share_guest(h, BASE_PFN + 0x200, UNPROTECTED_GFN, 1), Ok(()));
    let host_reserved = || t.with_platform(|alloc, _, _, _| alloc.reserved());
    // Giving back the last page of the first block and the first of the
    // second: one split is counted for each block, but only the first
    // block's page comes back (h still borrows the other).
    let before = host_in_use(&t);
    assert_eq!(t.host_unshare_guest(g, UNPROTECTED_GFN + 0x1ff, 2), Ok(()));
    assert_eq!(host_in_use(&t), before + 1, "one block split");
    assert_eq!(host_reserved(), 0, "the unused table page stayed reserved");
    assert_eq!(host_state(&t, BASE_PFN + 0x1ff), PageState::Owned);
    assert_eq!(host_state(&t, BASE_PFN + 0x200), PageState::SharedOwned);
    t.check_invariants().expect("invariants");
}

/// A 1 GiB block lent to a guest comes back page by page around pages
/// another guest still borrows: the host splits the 1 GiB leaf and then
/// one 2 MiB block per kept page, which `host_unshare_guest` must have
/// counted before anything changed (`split_bound`'s level-1 case).
#[test]
fn a_1g_block_comes_back_around_pages_another_guest_borrows() {
    const GIB_PAGES: u64 = 1 << 18;
    let mut memory = MemoryMap::new();
    memory.add(BASE_PFN << 12, GIB_PAGES << 12).expect("1 GiB of RAM");
    let t = new_tracker(memory, 40, None);
    let g = create_guest(&t, None, 40, None).expect("a guest");
    let h = create_guest(&t, None, 40, None).expect("another guest");
    assert_eq!(t.host_share_guest(g, BASE_PFN, UNPROTECTED_GFN, GIB_PAGES), Ok(()));
    // One page of every 2 MiB block: the return splits them all, so the
    // bound below is also exactly what it takes.
    let kept: Vec<u64> = (0..512).map(|block| BASE_PFN + block * 512 + 7).collect();
    for (i, &pfn) in kept.iter().enumerate() {
        assert_eq!(t.host_share_guest(h, pfn, UNPROTECTED_GFN + i as u64, 1), Ok(()));
    }
    let before = host_in_use(&t);
    // Exactly the pages it needs: one table for the 1 GiB leaf, one for
    // each of its 512 blocks.
    t.with_platform(|alloc, _, _, _| alloc.set_limit(Some(before + 1 + 512)));
    assert_eq!(t.host_unshare_guest(g, UNPROTECTED_GFN, GIB_PAGES), Ok(()));
    t.with_platform(|alloc, _, _, _| alloc.set_limit(None));
    assert_eq!(host_in_use(&t), before + 1 + kept.len(), "one 1 GiB and 512 2 MiB splits");
    assert_eq!(t.with_platform(|alloc, _, _, _| alloc.reserved()), 0);
    for &pfn in &kept {
        assert_eq!(host_state(&t, pfn), PageState::SharedOwned, "pfn {pfn:#x}");
        assert_eq!(host_state(&t, pfn + 1), PageState::Owned, "pfn {:#x}", pfn + 1);
    }
    assert_eq!(host_state(&t, BASE_PFN + GIB_PAGES - 1), PageState::Owned);
    t.check_invariants().expect("invariants");
}

/// Giving back part of a lent 2 MiB block splits it: the call counts the
/// table page, reserves it, and succeeds with exactly that page free.
#[test]
fn giving_back_part_of_a_lent_block_counts_its_split() {
    let t = tracker();
    assert_eq!(t.host_share_hyp(BASE_PFN, 512), Ok(()));
    assert_eq!(t.host_share_ffa(BASE_PFN + 0x200, 512), Ok(()));
    for (pfn, unshare) in [
        (BASE_PFN + 5, Tracker::host_unshare_hyp as fn(&Tracker, u64, u64) -> _),
        (BASE_PFN + 0x205, Tracker::host_unshare_ffa),
    ] {
        let before = host_in_use(&t);
        t.with_platform(|alloc, _, _, _| alloc.set_limit(Some(before + 1)));
        assert_eq!(unshare(&t, pfn, 1), Ok(()), "pfn {pfn:#x}");
        t.with_platform(|alloc, _, _, _| alloc.set_limit(None));
        assert_eq!(host_in_use(&t), before + 1, "pfn {pfn:#x}: one split");
        assert_eq!(host_state(&t, pfn), PageState::Owned);
        assert_eq!(host_state(&t, pfn + 1), PageState::SharedOwned);
    }
    assert_eq!(t.with_platform(|alloc, _, _, _| alloc.reserved()), 0);
    t.check_invariants().expect("invariants");
}
