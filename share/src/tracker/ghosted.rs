//! The tracker's side of ghost checking (see [`crate::ghost`]): reading a
//! call's range from every party, under their locks, and holding each
//! call to the specification.

use core::sync::atomic::Ordering;

use ownership::PageState;
use pgtable::PAGE_SIZE;

use super::{Host, Tracker};
use crate::ghost::{Checked, GHOST_MAX_UNITS, Snapshot, compare};
use crate::guest::Half;
use crate::spec::{Call, GuestEntry, PageView, View};
use crate::{Errno, HypSide, PageMeta, Platform};

/// Calls held to the specification, by what the check amounted to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GhostStats {
    /// Every page of the range compared.
    pub checked: u64,
    /// Refused on arguments that name no walkable range (not RAM, no such
    /// guest, the wrong half): the refusal itself is checked.
    pub refused_arguments: u64,
    /// Too large or too fragmented to hold: not compared.
    pub too_big: u64,
    /// Guest frames aliasing one page: guest entries compared.
    pub aliased: u64,
}

/// The ghost lock's data: the two snapshots (too big for the EL2 stack)
/// and the figures.
#[derive(Debug)]
pub(super) struct GhostState {
    before: Snapshot,
    after: Snapshot,
    stats: GhostStats,
    /// The next compared call is made to look wrong (a test of the
    /// checker itself).
    sabotage: bool,
}

impl GhostState {
    pub(super) const fn new() -> Self {
        Self {
            before: Snapshot::new(),
            after: Snapshot::new(),
            stats: GhostStats { checked: 0, refused_arguments: 0, too_big: 0, aliased: 0 },
            sabotage: false,
        }
    }
}

/// What reading a call's range found.
enum Walk {
    Read,
    /// More pages than a check may walk.
    TooBig,
    /// The arguments name no range: the call must refuse them.
    Invalid,
}

/// The unit of a guest frame that maps nothing.
const NO_PAGE: PageView = PageView {
    owner: None,
    host: PageState::NoPage,
    hyp: PageState::NoPage,
    hyp_in_use: false,
    pins: 0,
    guest_shares: 0,
    ffa: false,
};

fn half_of(call: Call) -> Half {
    match call {
        Call::HostShareGuest(_) | Call::HostUnshareGuest(_) => Half::Unprotected,
        _ => Half::Protected,
    }
}

impl<P: Platform> Tracker<P> {
    /// Runs `transition` (see `Tracker::ghosted`) and panics if it did
    /// anything else than what the specification says.
    pub(super) fn ghost_checked(
        &self,
        call: Call,
        pfn: Option<u64>,
        gfn: Option<u64>,
        nr: u64,
        transition: impl FnOnce() -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        if self.ghost_off.load(Ordering::Relaxed) {
            return transition();
        }
        let mut ghost = self.ghost.lock();
        let GhostState { before, after, stats, sabotage } = &mut *ghost;
        before.clear();
        let walk = self.read_range(call, pfn, gfn, nr, None, before);
        let returned = transition();
        match walk {
            Walk::TooBig => stats.too_big += 1,
            Walk::Invalid => {
                if returned.is_ok() {
                    panic!("s2rmap ghost: {call:?} succeeded on arguments that name no range");
                }
                stats.refused_arguments += 1;
            }
            Walk::Read => {
                after.clear();
                self.read_range(call, pfn, gfn, nr, Some(before), after);
                if core::mem::take(sabotage) {
                    after.falsify();
                }
                match compare(call, before, after, returned) {
                    Ok(Checked::Whole) => stats.checked += 1,
                    Ok(Checked::TooBig) => stats.too_big += 1,
                    Ok(Checked::Aliased) => stats.aliased += 1,
                    Err(mismatch) => panic!("s2rmap ghost: {mismatch}"),
                }
            }
        }
        returned
    }

    /// Runs `f` under the ghost lock: calls that change what a unit
    /// records without being checked (guest creation and teardown) must
    /// not run between a checked call's two reads.
    pub(super) fn ghost_serialized<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.ghost_off.load(Ordering::Relaxed) {
            return f();
        }
        let _ghost = self.ghost.lock();
        f()
    }

    /// Switches ghost checking on (the default) or off. It serializes
    /// every transition, so the tests of concurrency switch it off to keep
    /// the contention they are about. Switch it only while no call runs.
    pub fn set_ghost_checking(&self, on: bool) {
        self.ghost_off.store(!on, Ordering::Relaxed);
    }

    /// Makes the next call the checker compares look wrong, as if the
    /// tracker had left a page with one pin too many or too few: the
    /// checker must stop with a mismatch. For tests of the checker (and of
    /// the path its message takes out of EL2).
    pub fn ghost_sabotage_next(&self) {
        self.ghost.lock().sabotage = true;
    }

    /// The ghost checker's figures so far.
    pub fn ghost_stats(&self) -> GhostStats {
        self.ghost.lock().stats
    }

    /// Reads every unit of the call's range into `out`. After the call,
    /// `before` gives the pages that guest frames mapped before it.
    fn read_range(
        &self,
        call: Call,
        pfn: Option<u64>,
        gfn: Option<u64>,
        nr: u64,
        before: Option<&Snapshot>,
        out: &mut Snapshot,
    ) -> Walk {
        let Ok(held) = self.lock_host() else { return Walk::Invalid };
        let (host, hyp) = held.parts();
        let phys = match pfn.map(|pfn| host.phys_range(pfn, nr)) {
            Some(Err(_)) => return Walk::Invalid,
            Some(Ok(range)) => Some(range),
            None => None,
        };
        let guard = match call.guest() {
            Some(id) => match self.lock_guest(host, id) {
                Ok(guard) => Some(guard),
                Err(_) => return Walk::Invalid,
            },
            None => None,
        };
        let guest = guard.as_ref().and_then(|g| g.as_ref());
        let ipa = match (guest, gfn) {
            (Some(guest), Some(gfn)) => match guest.s2.ipa_range(gfn, nr) {
                Ok((ipa, half)) if half == half_of(call) => Some(ipa),
                _ => return Walk::Invalid,
            },
            _ => None,
        };
        if nr > GHOST_MAX_UNITS {
            return Walk::TooBig;
        }
        let mut earlier = before.map(Snapshot::units);
        for i in 0..nr {
            let entry = match (guest, &ipa) {
                (Some(guest), Some(ipa)) => {
                    let page = guest.s2.page(&guest.alloc, ipa.start + i * PAGE_SIZE);
                    GuestEntry { state: page.state, pa: page.pa.unwrap_or(0) }
                }
                _ => GuestEntry::NONE,
            };
            let pa = match &phys {
                Some(range) => range.start + i * PAGE_SIZE,
                None => match earlier.as_mut().and_then(Iterator::next) {
                    Some(unit) => unit.pa,
                    None => entry.pa,
                },
            };
            let page = if phys.is_none() && pa == 0 { NO_PAGE } else { page_view(host, hyp, pa) };
            out.push(View { pa, page, guest: entry });
        }
        Walk::Read
    }
}

fn page_view<P: Platform>(host: &Host<P>, hyp: &P::Hyp, pa: u64) -> PageView {
    let info = host.info(pa).ok();
    let hyp_state = hyp.state(pa);
    PageView {
        owner: info.and_then(|i| i.owner),
        host: info.map_or(PageState::NoPage, |i| i.host_state),
        hyp: hyp_state,
        hyp_in_use: hyp_state == PageState::Owned && hyp.in_use(pa),
        pins: host.pins(pa),
        guest_shares: host.meta.guest_shares(pa),
        ffa: host.meta.ffa_shared(pa),
    }
}
