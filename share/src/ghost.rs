//! Ghost checking: after every transition, the range it touched is read
//! back from every party's tables and compared with what [`spec`] says
//! the call should have done to the state read before it.
//!
//! Built with the `ghost` feature (the debug EL2 kernel, the host tests).
//! A mismatch panics, naming the call, the page and the three states;
//! at EL2 the panic message reaches the host's log (see `nvhe`).
//!
//! Calls are serialized by the ghost lock (taken before the host lock) so
//! that nothing changes the range between the two reads. Host faults do
//! not take it: they never change what a [`View`] records.
//!
//! [`spec`]: crate::spec

use arrayvec::ArrayVec;

use crate::Errno;
use crate::spec::{Call, View, verdict};

/// Runs of uniform units a snapshot holds. A range that breaks into more
/// is not checked (and is counted as such).
pub const GHOST_RUNS: usize = 256;
/// Units (pages) a checked range may have: the snapshot reads every page
/// through the hyp's stage-1, so huge ranges would stall the hyp.
pub const GHOST_MAX_UNITS: u64 = 1024;

/// `units` consecutive units, the first being `first`.
#[derive(Clone, Copy, Debug)]
struct Run {
    units: u64,
    first: View,
    last: View,
}

/// The state of a call's range, as runs of units.
#[derive(Debug)]
pub struct Snapshot {
    runs: ArrayVec<Run, GHOST_RUNS>,
    overflowed: bool,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self::new()
    }
}

impl Snapshot {
    #[must_use]
    pub const fn new() -> Self {
        Self { runs: ArrayVec::new_const(), overflowed: false }
    }

    pub fn clear(&mut self) {
        self.runs.clear();
        self.overflowed = false;
    }

    /// Appends the next unit.
    pub fn push(&mut self, view: View) {
        if let Some(run) = self.runs.last_mut()
            && run.last.next_page() == view
        {
            run.units += 1;
            run.last = view;
            return;
        }
        if self.runs.try_push(Run { units: 1, first: view, last: view }).is_err() {
            self.overflowed = true;
        }
    }

    /// Changes the pin count of the first run: a state no correct call
    /// leaves, for testing the checker.
    pub fn falsify(&mut self) {
        if let Some(run) = self.runs.first_mut() {
            run.first.page.pins ^= 1;
            run.last.page.pins ^= 1;
        }
    }

    /// Whether every unit pushed is held.
    #[must_use]
    pub fn complete(&self) -> bool {
        !self.overflowed
    }

    /// The units, in order.
    pub fn units(&self) -> impl Iterator<Item = View> + '_ {
        self.runs.iter().flat_map(|run| {
            core::iter::successors(Some(run.first), |v| Some(v.next_page()))
                .take(run.units as usize)
        })
    }

    /// One unit per run: enough for anything that does not depend on
    /// addresses (refusals).
    fn representatives(&self) -> impl Iterator<Item = View> + '_ {
        self.runs.iter().map(|run| run.first)
    }
}

/// The tracker did something the specification does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The call's result is not the one the specification gives.
    Result { call: Call, expected: Result<(), Errno>, returned: Result<(), Errno> },
    /// A unit is not in the state the specification gives.
    Unit { call: Call, returned: Result<(), Errno>, before: View, expected: View, found: View },
    /// The range read back after the call has another shape.
    Shape { call: Call },
}

impl core::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Result { call, expected, returned } => {
                write!(f, "{call:?} returned {returned:?}, spec says {expected:?}")
            }
            Self::Unit { call, returned, before, expected, found } => write!(
                f,
                "{call:?} returned {returned:?}; page {:#x}: before {before}, \
                 spec says {expected}, found {found}",
                before.pa
            ),
            Self::Shape { call } => write!(f, "{call:?}: the range read back differs in size"),
        }
    }
}

/// What a checked call amounted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// Every unit compared.
    Whole,
    /// The range could not be held (too many runs or pages): not checked.
    TooBig,
    /// A guest frame range maps one page more than once; only the guest
    /// entries were compared, the pages' counts depend on the order.
    Aliased,
}

/// Whether two units of `pre` name the same page (possible only for
/// calls by guest frame, where a page lent twice to a guest appears at
/// two frames).
fn aliased(pre: &Snapshot) -> bool {
    let mapped = || pre.runs.iter().filter(|r| r.first.guest.is_mapped());
    mapped().enumerate().any(|(i, a)| {
        let a_end = a.first.pa + a.units * pgtable::PAGE_SIZE;
        mapped().skip(i + 1).any(|b| {
            let b_end = b.first.pa + b.units * pgtable::PAGE_SIZE;
            a.first.pa < b_end && b.first.pa < a_end
        })
    })
}

/// Compares the state after `call` (which returned `returned`) with what
/// the specification derives from the state before it.
///
/// A refused call must have been refused with the specification's errno
/// and changed nothing; ENOMEM may come from bookkeeping the
/// specification does not model (table pages, the hyp's own tables), but
/// then too nothing may change.
#[allow(
    clippy::result_large_err,
    reason = "no allocator to box it in; a mismatch is built once, to be printed before a panic"
)]
pub fn compare(
    call: Call,
    pre: &Snapshot,
    post: &Snapshot,
    returned: Result<(), Errno>,
) -> Result<Checked, Mismatch> {
    if !pre.complete() || !post.complete() {
        return Ok(Checked::TooBig);
    }
    let expected = verdict(call, pre.representatives());
    let out_of_memory = returned == Err(Errno::ENOMEM);
    if returned != expected && !out_of_memory {
        return Err(Mismatch::Result { call, expected, returned });
    }
    let only_guest = call.by_gfn() && aliased(pre);
    let mut found = post.units();
    for before in pre.units() {
        let after = if returned.is_ok() { call.post(before) } else { before };
        let Some(seen) = found.next() else { return Err(Mismatch::Shape { call }) };
        let agrees = if only_guest { seen.guest == after.guest } else { seen == after };
        if !agrees {
            return Err(Mismatch::Unit { call, returned, before, expected: after, found: seen });
        }
    }
    if found.next().is_some() {
        return Err(Mismatch::Shape { call });
    }
    Ok(if only_guest { Checked::Aliased } else { Checked::Whole })
}

#[cfg(test)]
mod tests {
    use ownership::PageState;

    use super::*;
    use crate::spec::{GuestEntry, PageView};

    fn host_page(pa: u64) -> View {
        View { pa, page: PageView::HOST, guest: GuestEntry::NONE }
    }

    fn snapshot(units: impl IntoIterator<Item = View>) -> Snapshot {
        let mut s = Snapshot::new();
        units.into_iter().for_each(|v| s.push(v));
        s
    }

    const BASE: u64 = 0x4000_0000;

    #[test]
    fn uniform_ranges_are_one_run() {
        let s = snapshot((0..100).map(|i| host_page(BASE + i * 4096)));
        assert_eq!(s.runs.len(), 1);
        assert_eq!(s.units().count(), 100);
        assert_eq!(s.units().last().map(|v| v.pa), Some(BASE + 99 * 4096));
    }

    #[test]
    fn a_faithful_share_passes() {
        let pre = snapshot((0..4).map(|i| host_page(BASE + i * 4096)));
        let post = snapshot(pre.units().map(|v| Call::HostShareHyp.post(v)));
        assert_eq!(compare(Call::HostShareHyp, &pre, &post, Ok(())), Ok(Checked::Whole));
    }

    #[test]
    fn a_page_left_behind_is_named() {
        let pre = snapshot((0..4).map(|i| host_page(BASE + i * 4096)));
        let mut units: ArrayVec<View, 4> =
            pre.units().map(|v| Call::HostShareHyp.post(v)).collect();
        units[2].page.hyp = PageState::NoPage;
        let post = snapshot(units);
        let Err(Mismatch::Unit { before, found, .. }) =
            compare(Call::HostShareHyp, &pre, &post, Ok(()))
        else {
            panic!("the stale page must be reported");
        };
        assert_eq!(before.pa, BASE + 2 * 4096);
        assert_eq!(found.page.hyp, PageState::NoPage);
    }

    #[test]
    fn a_refusal_with_the_wrong_errno_or_a_change_is_caught() {
        let pre = snapshot([host_page(BASE)]);
        // Unsharing a page never shared is EPERM, not EBUSY.
        assert!(matches!(
            compare(Call::HostUnshareHyp, &pre, &pre, Err(Errno::EBUSY)),
            Err(Mismatch::Result { expected: Err(Errno::EPERM), .. })
        ));
        assert_eq!(
            compare(Call::HostUnshareHyp, &pre, &pre, Err(Errno::EPERM)),
            Ok(Checked::Whole)
        );
        // ENOMEM is allowed, a half-made change is not.
        let changed = snapshot([Call::HostShareHyp.post(host_page(BASE))]);
        assert_eq!(compare(Call::HostShareHyp, &pre, &pre, Err(Errno::ENOMEM)), Ok(Checked::Whole));
        assert!(compare(Call::HostShareHyp, &pre, &changed, Err(Errno::ENOMEM)).is_err());
        // Success where the spec refuses.
        assert!(matches!(
            compare(Call::HostUnshareHyp, &pre, &pre, Ok(())),
            Err(Mismatch::Result { .. })
        ));
    }

    #[test]
    fn a_falsified_snapshot_never_passes() {
        let pre = snapshot((0..3).map(|i| host_page(BASE + i * 4096)));
        let mut post = snapshot(pre.units().map(|v| Call::HostShareHyp.post(v)));
        post.falsify();
        assert!(compare(Call::HostShareHyp, &pre, &post, Ok(())).is_err());
        let mut same = snapshot(pre.units());
        same.falsify();
        assert!(compare(Call::HostShareHyp, &pre, &same, Err(Errno::ENOMEM)).is_err());
    }

    #[test]
    fn too_fragmented_ranges_are_not_checked() {
        let mut views = (0..2 * GHOST_RUNS as u64).map(|i| host_page(BASE + 2 * i * 4096));
        let pre = snapshot(&mut views);
        assert!(!pre.complete());
        assert_eq!(compare(Call::HostShareHyp, &pre, &pre, Ok(())), Ok(Checked::TooBig));
    }
}
