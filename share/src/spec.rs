//! The specification of the transitions, page by page, written from the
//! state table in the crate documentation and independent of how
//! [`Tracker`](crate::Tracker) walks its tables.
//!
//! A transition over a range is all or nothing: every unit of the range
//! ([`View`]) is checked, and only if none refuses does each unit move to
//! [`Call::post`] of itself. [`verdict`] gives the result for a range.
//!
//! The ghost checker (the `ghost` feature) holds the real tracker to this
//! after every call; the host tests and the debug EL2 build run with it on.

use ownership::{OwnerId, PageState};
use pgtable::PAGE_SIZE;

use crate::Errno;

/// Everything the parties record about one physical page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageView {
    /// The owner the host stage-2 records; `None` for a page the host
    /// borrows (its owner records it as SharedOwned).
    pub owner: Option<OwnerId>,
    /// The host's state, from its stage-2 entry.
    pub host: PageState,
    /// The hyp's state, from its stage-1.
    pub hyp: PageState,
    /// Whether the hyp uses an Owned page itself.
    pub hyp_in_use: bool,
    pub pins: u32,
    pub guest_shares: u32,
    /// Lent to the secure world through FF-A.
    pub ffa: bool,
}

impl PageView {
    /// A page of the host's that nobody else holds.
    pub const HOST: Self = Self {
        owner: HOST,
        host: PageState::Owned,
        hyp: PageState::NoPage,
        hyp_in_use: false,
        pins: 0,
        guest_shares: 0,
        ffa: false,
    };
}

/// `owner=host host=Owned hyp=NoPage used=0 pins=0 shares=0 ffa=0`: one
/// line, short enough for a kernel log line with two more beside it.
impl core::fmt::Display for PageView {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.owner {
            Some(OwnerId::HOST) => f.write_str("owner=host")?,
            Some(OwnerId::HYP) => f.write_str("owner=hyp")?,
            Some(OwnerId(id)) => write!(f, "owner=guest{id}")?,
            None => f.write_str("owner=lender")?,
        }
        write!(
            f,
            " host={:?} hyp={:?} used={} pins={} shares={} ffa={}",
            self.host,
            self.hyp,
            u8::from(self.hyp_in_use),
            self.pins,
            self.guest_shares,
            u8::from(self.ffa)
        )
    }
}

/// A guest's stage-2 entry at one guest frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestEntry {
    /// `NoPage` where nothing is mapped.
    pub state: PageState,
    /// The page mapped there; 0 where nothing is.
    pub pa: u64,
}

impl GuestEntry {
    pub const NONE: Self = Self { state: PageState::NoPage, pa: 0 };

    #[must_use]
    pub fn is_mapped(self) -> bool {
        self.state != PageState::NoPage
    }
}

/// One unit of a call's range: a physical page and, for calls on a
/// guest, the guest's entry at the matching frame. For calls that name
/// guest frames ([`Call::by_gfn`]) the page is the one that entry maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    /// The physical page.
    pub pa: u64,
    pub page: PageView,
    pub guest: GuestEntry,
}

/// `[owner=host host=Owned ... guest=Owned@0x40001000]`.
impl core::fmt::Display for View {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "[{}", self.page)?;
        if self.guest.is_mapped() {
            write!(f, " guest={:?}@{:#x}", self.guest.state, self.guest.pa)?;
        }
        f.write_str("]")
    }
}

impl View {
    /// The view of the next page of a uniform run: the same states, one
    /// page further on in every address.
    #[must_use]
    pub fn next_page(self) -> Self {
        let mut next = self;
        next.pa += PAGE_SIZE;
        if next.guest.is_mapped() {
            next.guest.pa += PAGE_SIZE;
        }
        next
    }
}

/// The transitions the specification covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    HostShareHyp,
    HostUnshareHyp,
    HostDonateHyp,
    /// `hyp_donate_host`: pages the host donated and the hyp does not use.
    HypDonateHost,
    /// `hyp_return_used`: pages the hyp used itself.
    HypReturnUsed,
    HypClaim,
    HypPin,
    HypUnpin,
    HostShareFfa,
    HostUnshareFfa,
    HostDonateGuest(OwnerId),
    HostShareGuest(OwnerId),
    HostUnshareGuest(OwnerId),
    GuestShareHost(OwnerId),
    GuestUnshareHost(OwnerId),
    GuestRelinquish(OwnerId),
}

const HOST: Option<OwnerId> = Some(OwnerId::HOST);

fn host_owned(p: &PageView) -> bool {
    p.owner == HOST && p.host == PageState::Owned
}

fn lent_by_host(p: &PageView) -> bool {
    p.owner == HOST && p.host == PageState::SharedOwned
}

/// A check that fails; `phase` orders the checks as the tracker runs
/// them over the whole range, one after the other.
fn refuse(phase: u8, e: Errno) -> Option<(u8, Errno)> {
    Some((phase, e))
}

/// Nobody borrows the page any more: it is the host's alone again.
fn settle(mut p: PageView) -> PageView {
    if p.guest_shares == 0 && p.hyp != PageState::SharedBorrowed && !p.ffa {
        p.host = PageState::Owned;
    }
    p
}

impl Call {
    /// The guest the call is about.
    #[must_use]
    pub fn guest(self) -> Option<OwnerId> {
        match self {
            Self::HostDonateGuest(g)
            | Self::HostShareGuest(g)
            | Self::HostUnshareGuest(g)
            | Self::GuestShareHost(g)
            | Self::GuestUnshareHost(g)
            | Self::GuestRelinquish(g) => Some(g),
            _ => None,
        }
    }

    /// Whether the range names guest frames, the pages being wherever the
    /// guest's entries point.
    #[must_use]
    pub fn by_gfn(self) -> bool {
        matches!(
            self,
            Self::HostUnshareGuest(_)
                | Self::GuestShareHost(_)
                | Self::GuestUnshareHost(_)
                | Self::GuestRelinquish(_)
        )
    }

    /// Why `v` refuses the call, with the phase of the check.
    #[must_use]
    pub fn refusal(self, v: &View) -> Option<(u8, Errno)> {
        use PageState::{NoPage, Owned, SharedBorrowed, SharedOwned};
        let (p, g) = (&v.page, v.guest);
        match self {
            Self::HostShareHyp | Self::HostDonateHyp => {
                if !host_owned(p) || p.hyp != NoPage {
                    return refuse(0, Errno::EPERM);
                }
            }
            Self::HostUnshareHyp => {
                if !lent_by_host(p) || p.hyp != SharedBorrowed {
                    return refuse(0, Errno::EPERM);
                }
                if p.pins > 0 {
                    return refuse(1, Errno::EBUSY);
                }
            }
            Self::HypDonateHost | Self::HypReturnUsed => {
                let used = self == Self::HypReturnUsed;
                if p.hyp != Owned {
                    return refuse(0, Errno::EPERM);
                }
                if p.hyp_in_use != used || p.owner != Some(OwnerId::HYP) {
                    return refuse(1, Errno::EPERM);
                }
            }
            Self::HypClaim => {
                if p.hyp != Owned {
                    return refuse(0, Errno::EPERM);
                }
                if p.hyp_in_use {
                    return refuse(1, Errno::EPERM);
                }
            }
            Self::HypPin | Self::HypUnpin => {
                if !lent_by_host(p) || p.hyp != SharedBorrowed {
                    return refuse(0, Errno::EPERM);
                }
                if self == Self::HypPin && p.pins == u32::MAX {
                    return refuse(1, Errno::EBUSY);
                }
                if self == Self::HypUnpin && p.pins == 0 {
                    return refuse(1, Errno::EPERM);
                }
            }
            Self::HostShareFfa => {
                if !host_owned(p) {
                    return refuse(0, Errno::EPERM);
                }
            }
            Self::HostUnshareFfa => {
                if !lent_by_host(p) {
                    return refuse(0, Errno::EPERM);
                }
                if !p.ffa {
                    return refuse(1, Errno::EPERM);
                }
            }
            Self::HostDonateGuest(_) | Self::HostShareGuest(_) => {
                let host_ok = if matches!(self, Self::HostDonateGuest(_)) {
                    host_owned(p)
                } else {
                    p.owner == HOST && matches!(p.host, Owned | SharedOwned)
                };
                if !host_ok {
                    return refuse(0, Errno::EPERM);
                }
                if g.is_mapped() {
                    return refuse(1, Errno::EPERM);
                }
                if matches!(self, Self::HostShareGuest(_)) && p.guest_shares == u32::MAX {
                    return refuse(2, Errno::EBUSY);
                }
            }
            Self::HostUnshareGuest(_) => {
                if !g.is_mapped() {
                    return refuse(0, Errno::ENOENT);
                }
                if g.state != SharedBorrowed {
                    return refuse(0, Errno::EPERM);
                }
                if !lent_by_host(p) || p.guest_shares == 0 {
                    return refuse(1, Errno::EPERM);
                }
            }
            Self::GuestShareHost(id) | Self::GuestUnshareHost(id) => {
                let share = matches!(self, Self::GuestShareHost(_));
                let (guest_from, host_ok) = if share {
                    (Owned, p.owner == Some(id) && p.host == NoPage)
                } else {
                    (SharedOwned, p.owner.is_none() && p.host == SharedBorrowed)
                };
                if g.state != guest_from {
                    return refuse(0, Errno::EPERM);
                }
                if !host_ok {
                    return refuse(1, Errno::EPERM);
                }
            }
            Self::GuestRelinquish(id) => {
                if g.state != Owned {
                    return refuse(0, Errno::EPERM);
                }
                if p.owner != Some(id) {
                    return refuse(1, Errno::EPERM);
                }
            }
        }
        None
    }

    /// `v` after the call succeeded.
    #[must_use]
    pub fn post(self, v: View) -> View {
        use PageState::{NoPage, Owned, SharedBorrowed, SharedOwned};
        let View { pa, mut page, mut guest } = v;
        match self {
            Self::HostShareHyp => {
                page.host = SharedOwned;
                page.hyp = SharedBorrowed;
            }
            Self::HostUnshareHyp => {
                page.hyp = NoPage;
                page = settle(page);
            }
            Self::HostDonateHyp => {
                page.owner = Some(OwnerId::HYP);
                page.host = NoPage;
                page.hyp = Owned;
            }
            Self::HypDonateHost | Self::HypReturnUsed => {
                page.owner = HOST;
                page.host = Owned;
                page.hyp = NoPage;
                page.hyp_in_use = false;
            }
            Self::HypClaim => page.hyp_in_use = true,
            Self::HypPin => page.pins += 1,
            Self::HypUnpin => page.pins -= 1,
            Self::HostShareFfa => {
                page.host = SharedOwned;
                page.ffa = true;
            }
            Self::HostUnshareFfa => {
                page.ffa = false;
                page = settle(page);
            }
            Self::HostDonateGuest(id) => {
                page.owner = Some(id);
                page.host = NoPage;
                guest = GuestEntry { state: Owned, pa };
            }
            Self::HostShareGuest(_) => {
                page.host = SharedOwned;
                page.guest_shares += 1;
                guest = GuestEntry { state: SharedBorrowed, pa };
            }
            Self::HostUnshareGuest(_) => {
                page.guest_shares -= 1;
                page = settle(page);
                guest = GuestEntry::NONE;
            }
            Self::GuestShareHost(_) => {
                page.owner = None;
                page.host = SharedBorrowed;
                guest.state = SharedOwned;
            }
            Self::GuestUnshareHost(id) => {
                page.owner = Some(id);
                page.host = NoPage;
                guest.state = Owned;
            }
            Self::GuestRelinquish(_) => {
                page.owner = HOST;
                page.host = Owned;
                guest = GuestEntry::NONE;
            }
        }
        View { pa, page, guest }
    }
}

/// The result the specification gives for a range: the refusal of the
/// earliest phase (and the first unit within it), or success.
pub fn verdict(call: Call, units: impl IntoIterator<Item = View>) -> Result<(), Errno> {
    let refusal = units
        .into_iter()
        .filter_map(|v| call.refusal(&v))
        .reduce(|first, next| if next.0 < first.0 { next } else { first });
    refusal.map_or(Ok(()), |(_, e)| Err(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_PAGE: PageView = PageView::HOST;

    fn unit(page: PageView) -> View {
        View { pa: 0x4000_0000, page, guest: GuestEntry::NONE }
    }

    #[test]
    fn share_then_unshare_is_the_identity() {
        let shared = Call::HostShareHyp.post(unit(HOST_PAGE));
        assert_eq!(shared.page.host, PageState::SharedOwned);
        assert_eq!(Call::HostUnshareHyp.refusal(&shared), None);
        assert_eq!(Call::HostUnshareHyp.post(shared), unit(HOST_PAGE));
    }

    #[test]
    fn earlier_phase_wins_whatever_the_order() {
        let shared = Call::HostShareHyp.post(unit(HOST_PAGE));
        let pinned = Call::HypPin.post(shared);
        // A pinned page (EBUSY, phase 1) before a page never shared
        // (EPERM, phase 0): the state check runs over the whole range first.
        assert_eq!(verdict(Call::HostUnshareHyp, [pinned, unit(HOST_PAGE)]), Err(Errno::EPERM));
        assert_eq!(verdict(Call::HostUnshareHyp, [pinned, shared]), Err(Errno::EBUSY));
        assert_eq!(verdict(Call::HostUnshareHyp, [shared, shared]), Ok(()));
    }

    #[test]
    fn a_page_borrowed_elsewhere_stays_lent() {
        let lent = Call::HostShareFfa.post(unit(HOST_PAGE));
        let both = View { page: PageView { hyp: PageState::SharedBorrowed, ..lent.page }, ..lent };
        assert_eq!(Call::HostUnshareFfa.post(both).page.host, PageState::SharedOwned);
        assert_eq!(Call::HostUnshareFfa.post(lent).page, HOST_PAGE);
    }

    #[test]
    fn guest_entries_follow_the_page() {
        let g = OwnerId(2);
        let donated = Call::HostDonateGuest(g).post(unit(HOST_PAGE));
        assert_eq!(donated.page.owner, Some(g));
        assert_eq!(donated.guest, GuestEntry { state: PageState::Owned, pa: 0x4000_0000 });
        let lent = Call::GuestShareHost(g).post(donated);
        assert_eq!(Call::GuestShareHost(g).refusal(&lent), Some((0, Errno::EPERM)));
        assert_eq!(Call::GuestUnshareHost(g).post(lent), donated);
        let back = Call::GuestRelinquish(g).post(donated);
        assert_eq!(back, unit(HOST_PAGE));
    }
}
