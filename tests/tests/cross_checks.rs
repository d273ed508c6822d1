//! Every call checks the host's rmap as well as the other party's view,
//! and does not act on the other party alone. The views never disagree
//! unless something else is broken, so these tests make them disagree on
//! purpose: the hyp's view or the FF-A flag claims a page the host never
//! lent, and every call that would give it back or pin it is refused with
//! nothing changed.

use ownership::{MemoryMap, PageState};
use share::host_model::{HostPlatform, new_tracker};
use share::{Errno, HypSide, PageMeta};

const BASE_PFN: u64 = 0x40000;

fn tracker() -> share::Tracker<HostPlatform> {
    let mut memory = MemoryMap::new();
    memory.add(BASE_PFN << 12, 64 << 12).expect("a RAM region");
    new_tracker(memory, 40, None)
}

fn host_state(t: &share::Tracker<HostPlatform>, pfn: u64) -> PageState {
    t.host_page(pfn << 12).expect("a RAM page").host_state
}

#[test]
fn a_hyp_that_claims_to_borrow_an_unlent_page_is_not_believed() {
    let t = tracker();
    let pa = (BASE_PFN + 4) << 12;
    t.with_platform(|_, _, _, hyp| hyp.map(pa..pa + 4096, PageState::SharedBorrowed))
        .expect("the test double maps");
    let snapshot = t.snapshot();
    assert_eq!(t.hyp_pin(BASE_PFN + 4, 1), Err(Errno::EPERM));
    assert_eq!(t.host_unshare_hyp(BASE_PFN + 4, 1), Err(Errno::EPERM));
    assert!(t.snapshot() == snapshot, "a refused call changed something");
    assert_eq!(host_state(&t, BASE_PFN + 4), PageState::Owned);
}

#[test]
fn an_ffa_flag_on_an_unlent_page_is_not_believed() {
    let t = tracker();
    let pa = (BASE_PFN + 6) << 12;
    t.with_platform(|_, _, meta, _| meta.set_ffa_shared(pa, true));
    let snapshot = t.snapshot();
    assert_eq!(t.host_unshare_ffa(BASE_PFN + 6, 1), Err(Errno::EPERM));
    assert!(t.snapshot() == snapshot, "a refused call changed something");
    assert_eq!(host_state(&t, BASE_PFN + 6), PageState::Owned);
}
