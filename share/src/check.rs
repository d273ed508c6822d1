//! The invariant check: walks every party's tables and verifies that they
//! tell one consistent story (the invariants listed in the crate docs).

use ownership::{OwnerId, PageState};
use pgtable::PAGE_SIZE;

use crate::{HypSide, PageMeta, Platform, Tracker};

/// A broken invariant: which one, where, and what was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's number in the crate documentation.
    pub invariant: u8,
    /// The physical address concerned.
    pub pa: u64,
    /// What was found.
    pub what: &'static str,
}

impl core::fmt::Display for Violation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invariant {} broken at {:#x}: {}", self.invariant, self.pa, self.what)
    }
}

fn fail(invariant: u8, pa: u64, what: &'static str) -> Result<(), Violation> {
    Err(Violation { invariant, pa, what })
}

impl<P: Platform> Tracker<P> {
    /// Checks every invariant over all of RAM and every guest, with all
    /// locks held. Cost is linear in RAM and in guest mappings.
    pub fn check_invariants(&self) -> Result<(), Violation> {
        let checked = self.with_all(|host, host_alloc, meta, hyp, guests| {
            // Totals from the host's side, compared with the other parties'
            // below so that every page is matched one-to-one.
            let mut host_hyp_owned = 0u64;
            let mut host_borrowed = 0u64;
            let mut host_guest_owned = [0u64; crate::MAX_GUESTS];
            let mut host_share_total = 0u64;
            for region in host.memory().regions() {
                for leaf in host.table().leaves(host_alloc, region.clone()) {
                    let desc = leaf.entry.desc;
                    if desc.is_valid()
                        && leaf.entry.output_address(leaf.ipa.start).map(|p| p.0)
                            != Some(leaf.ipa.start)
                    {
                        return fail(2, leaf.ipa.start, "host stage-2 is not an identity map");
                    }
                }
                for run in host.runs(host_alloc, region.clone()) {
                    let Ok(run) = run else { return fail(1, region.start, "corrupt host entry") };
                    for pa in (run.range.start..run.range.end).step_by(PAGE_SIZE as usize) {
                        let (pins, shares) = (meta.pins(pa), meta.guest_shares(pa));
                        let hyp_state = hyp.state(pa);
                        match (run.owner, run.host_state) {
                            (Some(OwnerId::HOST), PageState::Owned) => {
                                if hyp_state != PageState::NoPage
                                    || pins != 0
                                    || shares != 0
                                    || meta.ffa_shared(pa)
                                {
                                    return fail(3, pa, "host-owned page is also held elsewhere");
                                }
                            }
                            (Some(OwnerId::HOST), PageState::SharedOwned) => {
                                let hyp_borrows = hyp_state == PageState::SharedBorrowed;
                                if hyp_state != PageState::NoPage && !hyp_borrows {
                                    return fail(
                                        3,
                                        pa,
                                        "lent page held by the hyp other than as borrowed",
                                    );
                                }
                                if !hyp_borrows && shares == 0 && !meta.ffa_shared(pa) {
                                    return fail(3, pa, "host says lent, but nobody borrows it");
                                }
                                if pins != 0 && !hyp_borrows {
                                    return fail(5, pa, "pinned page not shared with the hyp");
                                }
                                host_share_total += u64::from(shares);
                            }
                            (None, PageState::SharedBorrowed) => {
                                if hyp_state != PageState::NoPage || pins != 0 || shares != 0 {
                                    return fail(3, pa, "borrowed page also held by the hyp");
                                }
                                host_borrowed += 1;
                            }
                            (Some(OwnerId::HYP), PageState::NoPage) => {
                                if hyp_state != PageState::Owned || pins != 0 || shares != 0 {
                                    return fail(4, pa, "host says hyp-owned, hyp disagrees");
                                }
                                host_hyp_owned += 1;
                            }
                            (Some(owner), PageState::NoPage) if owner.is_guest() => {
                                if hyp_state != PageState::NoPage || pins != 0 || shares != 0 {
                                    return fail(
                                        4,
                                        pa,
                                        "guest-owned page also held by the host side",
                                    );
                                }
                                let slot = (owner.0 - OwnerId::FIRST_GUEST.0) as usize;
                                match host_guest_owned.get_mut(slot) {
                                    Some(n) => *n += 1,
                                    None => return fail(1, pa, "owner is no guest"),
                                }
                            }
                            _ => return fail(1, pa, "impossible host entry"),
                        }
                    }
                }
            }
            if hyp.count(PageState::Owned).is_some_and(|n| n != host_hyp_owned) {
                return fail(1, 0, "hyp-owned page count differs from the host stage-2's");
            }
            if let Some(borrowed) = hyp.count(PageState::SharedBorrowed).filter(|n| *n > 0) {
                // Every hyp-borrowed page was checked from the host side
                // above only if the host said SharedOwned; count them.
                let mut lent_to_hyp = 0u64;
                for region in host.memory().regions() {
                    for pa in (region.start..region.end).step_by(PAGE_SIZE as usize) {
                        if hyp.state(pa) == PageState::SharedBorrowed {
                            lent_to_hyp += 1;
                        }
                    }
                }
                if lent_to_hyp != borrowed {
                    return fail(3, 0, "the hyp borrows a page outside RAM");
                }
            }
            // From every guest's side.
            let mut guest_borrowed = 0u64;
            let mut guest_lent = 0u64;
            for (slot, guest) in guests.iter().enumerate() {
                let guard = guest.lock();
                let Some(guest) = guard.as_ref() else {
                    if host_guest_owned[slot] != 0 {
                        return fail(1, 0, "pages owned by a guest that does not exist");
                    }
                    continue;
                };
                let id = OwnerId(OwnerId::FIRST_GUEST.0 + slot as u32);
                let (s2, alloc) = guest.stage2();
                let top = s2.unprotected_bit();
                let mut owned = 0u64;
                for leaf in s2.table.leaves(alloc, 0..s2.ipa_limit()) {
                    let Some(oa) = leaf.entry.output_address(leaf.ipa.start) else { continue };
                    let state = PageState::from_sw_bits(leaf.entry.desc.attrs().sw());
                    let protected = leaf.ipa.start < top;
                    for (i, _) in
                        (leaf.ipa.start..leaf.ipa.end).step_by(PAGE_SIZE as usize).enumerate()
                    {
                        let pa = oa.0 + i as u64 * PAGE_SIZE;
                        let Ok(info) = host.page_info(host_alloc, pa) else {
                            return fail(1, pa, "corrupt host entry");
                        };
                        match (state, protected) {
                            (Some(PageState::Owned), true) => {
                                if info.owner != Some(id) {
                                    return fail(
                                        1,
                                        pa,
                                        "guest maps as Owned a page the host gives to another",
                                    );
                                }
                                owned += 1;
                            }
                            (Some(PageState::SharedOwned), true) => {
                                if info.host_state != PageState::SharedBorrowed {
                                    return fail(
                                        3,
                                        pa,
                                        "guest lent a page the host does not borrow",
                                    );
                                }
                                guest_lent += 1;
                            }
                            (Some(PageState::SharedBorrowed), false) => {
                                if info.owner != Some(OwnerId::HOST)
                                    || info.host_state != PageState::SharedOwned
                                {
                                    return fail(
                                        3,
                                        pa,
                                        "guest borrows a page the host has not lent",
                                    );
                                }
                                guest_borrowed += 1;
                            }
                            _ => return fail(3, pa, "guest mapping in the wrong half or state"),
                        }
                    }
                }
                if owned != host_guest_owned[slot] {
                    return fail(
                        1,
                        0,
                        "a guest's owned pages differ from the host stage-2's count",
                    );
                }
            }
            if guest_lent != host_borrowed {
                return fail(1, 0, "host-borrowed pages differ from pages guests lent");
            }
            if guest_borrowed != host_share_total {
                return fail(3, 0, "guest-borrowed mappings differ from the host's share counts");
            }
            Ok(())
        });
        // A tracker with nothing installed holds nothing: trivially consistent.
        checked.unwrap_or(Ok(()))
    }
}
