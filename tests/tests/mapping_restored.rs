//! A lent page goes back to the host exactly as the host had it: mapped if
//! it was mapped before the first share, unmapped (to be faulted in again)
//! if it was not. That is what lets the tables split for a share fold away
//! once it is undone; the abstract model cannot see it, so it is checked
//! here page by page.

use ownership::{MemoryMap, OwnerId};
use share::host_model::{create_guest, new_tracker};

const BASE: u64 = 0x4000_0000;
const BLOCK: u64 = 0x20_0000;
const PAGE: u64 = 0x1000;

fn mapped(t: &share::Tracker<share::host_model::HostPlatform>, pa: u64) -> bool {
    t.host_page(pa).expect("RAM").mapped
}

/// The last two pages of a mapped block and the first two of an untouched
/// one.
fn setup() -> (share::Tracker<share::host_model::HostPlatform>, u64) {
    let mut memory = MemoryMap::new();
    memory.add(BASE, 2 * BLOCK).expect("a RAM region");
    let t = new_tracker(memory, 40, None);
    t.host_fault(BASE).expect("fault in the first block");
    let first = BASE + BLOCK - 2 * PAGE;
    assert!(mapped(&t, first) && mapped(&t, first + PAGE));
    assert!(!mapped(&t, first + 2 * PAGE) && !mapped(&t, first + 3 * PAGE));
    (t, first)
}

fn expect_as_before(t: &share::Tracker<share::host_model::HostPlatform>, first: u64) {
    let got: Vec<bool> = (0..4).map(|i| mapped(t, first + i * PAGE)).collect();
    assert_eq!(got, [true, true, false, false], "mapped, page by page");
    for i in 0..4 {
        let info = t.host_page(first + i * PAGE).expect("RAM");
        assert_eq!(info.owner, Some(OwnerId::HOST));
        assert_eq!(info.host_state, ownership::PageState::Owned);
    }
    t.check_invariants().expect("invariants");
}

#[test]
fn hyp_share_of_mapped_and_unmapped_pages() {
    let (t, first) = setup();
    let pages_before = t.counters().host_table_pages;
    t.host_share_hyp(first >> 12, 4).expect("share");
    assert!((0..4).all(|i| mapped(&t, first + i * PAGE)), "lent pages are mapped");
    t.host_unshare_hyp(first >> 12, 4).expect("unshare");
    expect_as_before(&t, first);
    assert_eq!(t.counters().host_table_pages, pages_before, "the split folded away");
}

#[test]
fn ffa_share_returned_in_two_pieces() {
    let (t, first) = setup();
    t.host_share_ffa(first >> 12, 4).expect("share");
    t.host_unshare_ffa((first >> 12) + 1, 3).expect("unshare the last three");
    t.host_unshare_ffa(first >> 12, 1).expect("unshare the first");
    expect_as_before(&t, first);
}

#[test]
fn a_page_lent_twice_remembers_the_first_time() {
    let (t, first) = setup();
    let g = create_guest(&t, None, 40, None).expect("a guest");
    let unmapped = first + 3 * PAGE;
    t.host_share_hyp(unmapped >> 12, 1).expect("lend to the hyp");
    t.host_share_guest(g, unmapped >> 12, 1 << 27, 1).expect("and to a guest");
    t.host_unshare_hyp(unmapped >> 12, 1).expect("the hyp gives it back");
    t.host_unshare_guest(g, 1 << 27, 1).expect("the guest too");
    expect_as_before(&t, first);
}
