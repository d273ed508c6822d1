//! At EL2 the FF-A flags and guest share counts live in bounded tables:
//! a share that would not fit is refused with ENOMEM before anything
//! changes, and exactly the room there is can be used.

use ownership::{MemoryMap, OwnerId, PageState};
use share::Errno;
use share::host_model::{create_guest, new_tracker};

const BASE_PFN: u64 = 0x40000;
const UNPROTECTED_GFN: u64 = 1 << 27;

fn tracker() -> share::Tracker<share::host_model::HostPlatform> {
    let mut memory = MemoryMap::new();
    memory.add(BASE_PFN << 12, 64 << 12).expect("a RAM region");
    new_tracker(memory, 40, None)
}

#[test]
fn ffa_shares_fill_the_room_exactly() {
    let t = tracker();
    t.with_platform(|_, _, meta, _| meta.ffa_limit = Some(3));
    assert_eq!(t.host_share_ffa(BASE_PFN, 4), Err(Errno::ENOMEM));
    assert_eq!(t.host_page(BASE_PFN << 12).map(|i| i.host_state), Ok(PageState::Owned));
    assert_eq!(t.host_share_ffa(BASE_PFN, 3), Ok(()));
    assert_eq!(t.host_share_ffa(BASE_PFN + 3, 1), Err(Errno::ENOMEM));
    assert_eq!(t.host_unshare_ffa(BASE_PFN, 1), Ok(()));
    assert_eq!(t.host_share_ffa(BASE_PFN + 3, 1), Ok(()));
    t.check_invariants().expect("invariants");
}

#[test]
fn guest_shares_count_pages_newly_lent() {
    let t = tracker();
    let g: OwnerId = create_guest(&t, None, 40, None).expect("a guest");
    let h: OwnerId = create_guest(&t, None, 40, None).expect("another guest");
    t.with_platform(|_, _, meta, _| meta.guest_share_limit = Some(2));
    assert_eq!(t.host_share_guest(g, BASE_PFN, UNPROTECTED_GFN, 3), Err(Errno::ENOMEM));
    assert_eq!(t.guest_page(g, UNPROTECTED_GFN).map(|p| p.0), Ok(PageState::NoPage));
    assert_eq!(t.host_share_guest(g, BASE_PFN, UNPROTECTED_GFN, 2), Ok(()));
    // Lending the same pages to a second guest takes no more room.
    assert_eq!(t.host_share_guest(h, BASE_PFN, UNPROTECTED_GFN, 2), Ok(()));
    assert_eq!(t.host_share_guest(h, BASE_PFN + 2, UNPROTECTED_GFN + 2, 1), Err(Errno::ENOMEM));
    assert_eq!(t.host_unshare_guest(g, UNPROTECTED_GFN, 2), Ok(()));
    assert_eq!(t.host_unshare_guest(h, UNPROTECTED_GFN, 1), Ok(()));
    assert_eq!(t.host_share_guest(h, BASE_PFN + 2, UNPROTECTED_GFN + 2, 1), Ok(()));
    t.check_invariants().expect("invariants");
}
