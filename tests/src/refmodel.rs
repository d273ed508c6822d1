//! A reference model of the tracker: plain maps from page to owner and
//! state, written from the transition table, independent of the tables
//! the real code keeps. Used by the state-machine tests.

use std::collections::{BTreeMap, BTreeSet};

use ownership::{OwnerId, PageState};
use share::Errno;

/// Page size.
pub const PAGE: u64 = 4096;
/// The host's physical address space (bits).
pub const PA_BITS: u32 = 48;
/// Most pages per call (the ABI's limit).
pub const MAX_PAGES: u64 = hypercalls::MAX_PAGES_PER_CALL;

/// Who owns a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Host,
    Hyp,
    Guest(u32),
}

/// Everything about one page; pages not in the map are the host's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub owner: Owner,
    pub host: PageState,
    pub hyp: PageState,
    pub pins: u32,
    pub shares: u32,
    pub hyp_in_use: bool,
    /// Lent to the secure world through FF-A.
    pub ffa: bool,
}

const HOST_PAGE: Page = Page {
    owner: Owner::Host,
    host: PageState::Owned,
    hyp: PageState::NoPage,
    pins: 0,
    shares: 0,
    hyp_in_use: false,
    ffa: false,
};

/// One guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guest {
    pub ipa_bits: u8,
    pub running: bool,
    /// gfn -> (pfn, state)
    pub map: BTreeMap<u64, (u64, PageState)>,
    pub ripas_ram: BTreeSet<u64>,
    pub pool: (u64, u64),
}

impl Guest {
    fn top_gfn(&self) -> u64 {
        1 << (self.ipa_bits - 1 - 12)
    }
    fn limit_gfn(&self) -> u64 {
        1 << (self.ipa_bits - 12)
    }
}

/// What a call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Res {
    Ok,
    /// A successful guest creation, with the handle.
    Created(u32),
    Err(Errno),
    Fault,
    Mmio(u64),
    /// `SMCCC_RET_NOT_SUPPORTED`.
    NotSupported,
}

/// One call, with raw (unvalidated) arguments as the host would pass them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    ShareHyp { pfn: u64, nr: Option<u64> },
    UnshareHyp { pfn: u64, nr: Option<u64> },
    DonateHyp { pfn: u64, nr: u64 },
    ReclaimHyp { pfn: u64, nr: u64 },
    Pin { pfn: u64, nr: u64 },
    Unpin { pfn: u64, nr: u64 },
    Create { ipa_bits: u8, pool_pfn: u64, pool_pages: u64 },
    Teardown { h: u64 },
    Run { h: u64 },
    InitRipas { h: u64, ipa: u64, size: u64 },
    DonateGuest { h: u64, pfn: u64, gfn: u64, nr: u64 },
    ShareGuest { h: u64, pfn: u64, gfn: u64, nr: u64 },
    UnshareGuest { h: u64, gfn: u64, nr: u64 },
    GuestShare { h: u64, gfn: u64, nr: u64 },
    GuestUnshare { h: u64, gfn: u64, nr: u64 },
    Relinquish { h: u64, gfn: u64, nr: u64 },
    HostAccess { pa: u64 },
    GuestAccess { h: u64, ipa: u64 },
    ShareFfa { pfn: u64, nr: u64 },
    UnshareFfa { pfn: u64, nr: u64 },
}

/// The whole abstract state.
#[derive(Clone, Debug)]
pub struct Model {
    /// RAM regions as page-frame ranges.
    pub ram: Vec<(u64, u64)>,
    pub pages: BTreeMap<u64, Page>,
    /// slot -> guest; handles are slot + 2.
    pub guests: BTreeMap<u32, Guest>,
    pub last: Res,
    /// Pages zeroed so far, counted.
    pub zeroed: u64,
}

type R<T> = Result<T, Errno>;

fn pfns(start: u64, nr: u64) -> impl Iterator<Item = u64> {
    start..start + nr
}

impl Model {
    #[must_use]
    pub fn new(ram: Vec<(u64, u64)>) -> Self {
        Self { ram, pages: BTreeMap::new(), guests: BTreeMap::new(), last: Res::Ok, zeroed: 0 }
    }

    #[must_use]
    pub fn page(&self, pfn: u64) -> Page {
        self.pages.get(&pfn).copied().unwrap_or(HOST_PAGE)
    }

    fn set(&mut self, pfn: u64, page: Page) {
        if page == HOST_PAGE {
            self.pages.remove(&pfn);
        } else {
            self.pages.insert(pfn, page);
        }
    }

    fn edit(&mut self, pfn: u64, f: impl FnOnce(&mut Page)) {
        let mut p = self.page(pfn);
        f(&mut p);
        self.set(pfn, p);
    }

    fn is_ram(&self, pfn: u64, nr: u64) -> bool {
        self.ram.iter().any(|&(s, e)| pfn >= s && pfn + nr <= e)
    }

    /// `share`'s phys_range: EINVAL for nr 0 / overflow / beyond the PA
    /// space, EPERM for anything not in one RAM region.
    fn phys(&self, pfn: u64, nr: u64) -> R<()> {
        if nr == 0 {
            return Err(Errno::EINVAL);
        }
        let end = pfn.checked_add(nr).ok_or(Errno::EINVAL)?;
        let end_bytes = end.checked_mul(PAGE).ok_or(Errno::EINVAL)?;
        if end_bytes > 1 << PA_BITS {
            return Err(Errno::EINVAL);
        }
        if !self.is_ram(pfn, nr) {
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    fn all(&self, pfn: u64, nr: u64, f: impl Fn(&Page) -> bool) -> R<()> {
        if pfns(pfn, nr).all(|p| f(&self.page(p))) { Ok(()) } else { Err(Errno::EPERM) }
    }

    fn count(nr: u64) -> R<u64> {
        if nr == 0 || nr > MAX_PAGES { Err(Errno::EINVAL) } else { Ok(nr) }
    }

    /// The hypercall layer's handle decoding, then the guest lookup.
    fn handle(raw: u64) -> R<u32> {
        let id = u32::try_from(raw).map_err(|_| Errno::EINVAL)?;
        if id < 2 { Err(Errno::ENOENT) } else { Ok(id - 2) }
    }

    fn guest(&self, slot: u32) -> R<&Guest> {
        self.guests.get(&slot).ok_or(Errno::ENOENT)
    }

    /// `ipa_range`: (start gfn, nr, protected?)
    fn ipa(g: &Guest, gfn: u64, nr: u64) -> R<bool> {
        if nr == 0 {
            return Err(Errno::EINVAL);
        }
        let end = gfn.checked_add(nr).ok_or(Errno::EINVAL)?;
        end.checked_mul(PAGE).ok_or(Errno::EINVAL)?;
        if end <= g.top_gfn() {
            Ok(true)
        } else if gfn >= g.top_gfn() && end <= g.limit_gfn() {
            Ok(false)
        } else {
            Err(Errno::EINVAL)
        }
    }

    fn host_owned(p: &Page) -> bool {
        p.owner == Owner::Host && p.host == PageState::Owned
    }

    fn lent_to_hyp(p: &Page) -> bool {
        p.owner == Owner::Host
            && p.host == PageState::SharedOwned
            && p.hyp == PageState::SharedBorrowed
    }

    /// Applies `op`; records and returns its result. A failed call changes
    /// nothing.
    pub fn apply(&mut self, op: &Op) -> Res {
        let before = self.clone();
        let res = match self.step(op) {
            Ok(res) => res,
            Err(e) => {
                *self = before;
                Res::Err(e)
            }
        };
        self.last = res;
        res
    }

    fn step(&mut self, op: &Op) -> R<Res> {
        match *op {
            Op::ShareHyp { pfn, nr } => {
                let nr = match nr {
                    Some(n) => Self::count(n)?,
                    None => 1,
                };
                self.phys(pfn, nr)?;
                self.all(pfn, nr, Self::host_owned)?;
                for p in pfns(pfn, nr) {
                    self.edit(p, |p| {
                        p.host = PageState::SharedOwned;
                        p.hyp = PageState::SharedBorrowed;
                    });
                }
            }
            Op::UnshareHyp { pfn, nr } => {
                let nr = match nr {
                    Some(n) => Self::count(n)?,
                    None => 1,
                };
                self.phys(pfn, nr)?;
                self.all(pfn, nr, |p| p.owner == Owner::Host && p.host == PageState::SharedOwned)?;
                self.all(pfn, nr, |p| p.hyp == PageState::SharedBorrowed)?;
                if pfns(pfn, nr).any(|p| self.page(p).pins > 0) {
                    return Err(Errno::EBUSY);
                }
                for p in pfns(pfn, nr) {
                    self.edit(p, |p| {
                        p.hyp = PageState::NoPage;
                        if p.shares == 0 && !p.ffa {
                            p.host = PageState::Owned;
                        }
                    });
                }
            }
            Op::DonateHyp { pfn, nr } => {
                let nr = Self::count(nr)?;
                self.donate_hyp(pfn, nr)?;
            }
            Op::ReclaimHyp { pfn, nr } => {
                let nr = Self::count(nr)?;
                self.reclaim_hyp(pfn, nr)?;
            }
            Op::Pin { pfn, nr } | Op::Unpin { pfn, nr } => {
                let nr = Self::count(nr)?;
                self.phys(pfn, nr)?;
                self.all(pfn, nr, |p| p.owner == Owner::Host && p.host == PageState::SharedOwned)?;
                self.all(pfn, nr, |p| p.hyp == PageState::SharedBorrowed)?;
                let pin = matches!(op, Op::Pin { .. });
                if !pin && pfns(pfn, nr).any(|p| self.page(p).pins == 0) {
                    return Err(Errno::EPERM);
                }
                for p in pfns(pfn, nr) {
                    self.edit(p, |p| if pin { p.pins += 1 } else { p.pins -= 1 });
                }
            }
            Op::Create { ipa_bits, pool_pfn, pool_pages } => {
                let pool_pages = Self::count(pool_pages)?;
                if !(32..=48).contains(&ipa_bits) {
                    return Err(Errno::EINVAL);
                }
                self.donate_hyp(pool_pfn, pool_pages)?;
                for p in pfns(pool_pfn, pool_pages) {
                    self.edit(p, |p| p.hyp_in_use = true);
                }
                let slot = (0..share::MAX_GUESTS as u32).find(|s| !self.guests.contains_key(s));
                let Some(slot) = slot else { return Err(Errno::EBUSY) };
                self.guests.insert(
                    slot,
                    Guest {
                        ipa_bits,
                        running: false,
                        map: BTreeMap::new(),
                        ripas_ram: BTreeSet::new(),
                        pool: (pool_pfn, pool_pages),
                    },
                );
                return Ok(Res::Created(slot + 2));
            }
            Op::Teardown { h } => {
                let slot = Self::handle(h)?;
                let g = self.guest(slot)?.clone();
                for &(pfn, state) in g.map.values() {
                    if state == PageState::SharedBorrowed {
                        self.edit(pfn, |p| {
                            p.shares -= 1;
                            if p.shares == 0 && p.hyp != PageState::SharedBorrowed && !p.ffa {
                                p.host = PageState::Owned;
                            }
                        });
                    } else {
                        self.zeroed += 1;
                        self.set(pfn, HOST_PAGE);
                    }
                }
                self.guests.remove(&slot);
                let (pool, n) = g.pool;
                for p in pfns(pool, n) {
                    self.edit(p, |p| p.hyp_in_use = false);
                }
                self.reclaim_hyp(pool, n).expect("the pool goes back");
            }
            Op::Run { h } => {
                let slot = Self::handle(h)?;
                self.guest(slot)?;
                self.guests.get_mut(&slot).expect("exists").running = true;
            }
            Op::InitRipas { h, ipa, size } => {
                let slot = Self::handle(h)?;
                let g = self.guest(slot)?;
                let end = ipa.checked_add(size).ok_or(Errno::EINVAL)?;
                if ipa % PAGE != 0 || size % PAGE != 0 {
                    return Err(Errno::EINVAL);
                }
                if end > g.top_gfn() * PAGE {
                    return Err(Errno::EINVAL);
                }
                if g.running {
                    return Err(Errno::EPERM);
                }
                let g = self.guests.get_mut(&slot).expect("exists");
                for gfn in ipa / PAGE..end / PAGE {
                    if !g.map.contains_key(&gfn) {
                        g.ripas_ram.insert(gfn);
                    }
                }
            }
            Op::DonateGuest { h, pfn, gfn, nr } | Op::ShareGuest { h, pfn, gfn, nr } => {
                let slot = Self::handle(h)?;
                let nr = Self::count(nr)?;
                self.phys(pfn, nr)?;
                let g = self.guest(slot)?;
                let protected = Self::ipa(g, gfn, nr)?;
                let donate = matches!(op, Op::DonateGuest { .. });
                if protected != donate {
                    return Err(Errno::EINVAL);
                }
                if donate {
                    self.all(pfn, nr, Self::host_owned)?;
                } else {
                    self.all(pfn, nr, |p| {
                        p.owner == Owner::Host
                            && matches!(p.host, PageState::Owned | PageState::SharedOwned)
                    })?;
                }
                let g = self.guest(slot)?;
                if pfns(gfn, nr).any(|f| g.map.contains_key(&f)) {
                    return Err(Errno::EPERM);
                }
                for i in 0..nr {
                    let state = if donate { PageState::Owned } else { PageState::SharedBorrowed };
                    self.guests
                        .get_mut(&slot)
                        .expect("exists")
                        .map
                        .insert(gfn + i, (pfn + i, state));
                    self.edit(pfn + i, |p| {
                        if donate {
                            p.owner = Owner::Guest(slot);
                            p.host = PageState::NoPage;
                        } else {
                            p.host = PageState::SharedOwned;
                            p.shares += 1;
                        }
                    });
                }
            }
            Op::UnshareGuest { h, gfn, nr } => {
                let slot = Self::handle(h)?;
                let nr = Self::count(nr)?;
                let g = self.guest(slot)?;
                if Self::ipa(g, gfn, nr)? {
                    return Err(Errno::EINVAL);
                }
                for f in pfns(gfn, nr) {
                    match g.map.get(&f) {
                        None => return Err(Errno::ENOENT),
                        Some((_, s)) if *s != PageState::SharedBorrowed => {
                            return Err(Errno::EPERM);
                        }
                        _ => {}
                    }
                }
                let g = g.clone();
                for f in pfns(gfn, nr) {
                    let (pfn, _) = g.map[&f];
                    self.edit(pfn, |p| {
                        p.shares -= 1;
                        if p.shares == 0 && p.hyp != PageState::SharedBorrowed && !p.ffa {
                            p.host = PageState::Owned;
                        }
                    });
                    self.guests.get_mut(&slot).expect("exists").map.remove(&f);
                }
            }
            Op::GuestShare { h, gfn, nr }
            | Op::GuestUnshare { h, gfn, nr }
            | Op::Relinquish { h, gfn, nr } => {
                let slot = Self::handle(h)?;
                let nr = Self::count(nr)?;
                let g = self.guest(slot)?;
                if !Self::ipa(g, gfn, nr)? {
                    return Err(Errno::EINVAL);
                }
                let from = if matches!(op, Op::GuestUnshare { .. }) {
                    PageState::SharedOwned
                } else {
                    PageState::Owned
                };
                for f in pfns(gfn, nr) {
                    match g.map.get(&f) {
                        Some((_, s)) if *s == from => {}
                        _ => return Err(Errno::EPERM),
                    }
                }
                let g = g.clone();
                for f in pfns(gfn, nr) {
                    let (pfn, _) = g.map[&f];
                    let guest = self.guests.get_mut(&slot).expect("exists");
                    match op {
                        Op::GuestShare { .. } => {
                            guest.map.insert(f, (pfn, PageState::SharedOwned));
                            self.edit(pfn, |p| p.host = PageState::SharedBorrowed);
                        }
                        Op::GuestUnshare { .. } => {
                            guest.map.insert(f, (pfn, PageState::Owned));
                            self.edit(pfn, |p| p.host = PageState::NoPage);
                        }
                        _ => {
                            guest.map.remove(&f);
                            guest.ripas_ram.remove(&f);
                            self.zeroed += 1;
                            self.set(pfn, HOST_PAGE);
                        }
                    }
                }
            }
            Op::ShareFfa { pfn, nr } => {
                self.phys(pfn, nr)?;
                self.all(pfn, nr, Self::host_owned)?;
                for p in pfns(pfn, nr) {
                    self.edit(p, |p| {
                        p.host = PageState::SharedOwned;
                        p.ffa = true;
                    });
                }
            }
            Op::UnshareFfa { pfn, nr } => {
                self.phys(pfn, nr)?;
                self.all(pfn, nr, |p| p.owner == Owner::Host && p.host == PageState::SharedOwned)?;
                self.all(pfn, nr, |p| p.ffa)?;
                for p in pfns(pfn, nr) {
                    self.edit(p, |p| {
                        p.ffa = false;
                        if p.shares == 0 && p.hyp != PageState::SharedBorrowed {
                            p.host = PageState::Owned;
                        }
                    });
                }
            }
            Op::HostAccess { pa } => {
                if pa >= 1 << PA_BITS {
                    return Err(Errno::EINVAL);
                }
                let p = self.page(pa / PAGE);
                return Ok(if p.host == PageState::NoPage { Res::Fault } else { Res::Ok });
            }
            Op::GuestAccess { h, ipa } => {
                let slot =
                    u32::try_from(h).ok().and_then(|h| h.checked_sub(2)).ok_or(Errno::ENOENT)?;
                let g = self.guest(slot)?;
                if ipa >= g.limit_gfn() * PAGE {
                    return Err(Errno::EINVAL);
                }
                let top = g.top_gfn() * PAGE;
                return Ok(if g.map.contains_key(&(ipa / PAGE)) {
                    Res::Ok
                } else if ipa >= top {
                    Res::Mmio(ipa - top)
                } else {
                    Res::Fault
                });
            }
        }
        Ok(Res::Ok)
    }

    fn donate_hyp(&mut self, pfn: u64, nr: u64) -> R<()> {
        self.phys(pfn, nr)?;
        self.all(pfn, nr, Self::host_owned)?;
        for p in pfns(pfn, nr) {
            self.edit(p, |p| {
                p.owner = Owner::Hyp;
                p.host = PageState::NoPage;
                p.hyp = PageState::Owned;
            });
        }
        Ok(())
    }

    fn reclaim_hyp(&mut self, pfn: u64, nr: u64) -> R<()> {
        self.phys(pfn, nr)?;
        self.all(pfn, nr, |p| p.hyp == PageState::Owned)?;
        if pfns(pfn, nr).any(|p| self.page(p).hyp_in_use) {
            return Err(Errno::EPERM);
        }
        self.all(pfn, nr, |p| p.owner == Owner::Hyp)?;
        for p in pfns(pfn, nr) {
            self.set(p, HOST_PAGE);
        }
        Ok(())
    }

    /// Whether pages lent to the hyp exist (for biasing generators).
    #[must_use]
    pub fn any_lent_to_hyp(&self) -> bool {
        self.pages.values().any(Self::lent_to_hyp)
    }

    /// The owner ID the real tracker reports.
    #[must_use]
    pub fn owner_id(p: &Page) -> Option<OwnerId> {
        match (p.owner, p.host) {
            (_, PageState::SharedBorrowed) => None,
            (Owner::Host, _) => Some(OwnerId::HOST),
            (Owner::Hyp, _) => Some(OwnerId::HYP),
            (Owner::Guest(slot), _) => Some(OwnerId(slot + 2)),
        }
    }
}
