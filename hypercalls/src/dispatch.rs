//! Decoding the raw register tuple, and dispatch into `share`.

use core::ops::Range;

use ownership::OwnerId;
use pgtable::{PAGE_SIZE, PhysAddr};
use share::{Errno, Platform, Tracker};

use crate::Caps;
use crate::abi::*;

/// One validated call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    HostShareHyp { pfn: u64, nr: u64 },
    HostUnshareHyp { pfn: u64, nr: u64 },
    HostDonateHyp { pfn: u64, nr: u64 },
    HypDonateHost { pfn: u64, nr: u64 },
    HypPin { pfn: u64, nr: u64 },
    HypUnpin { pfn: u64, nr: u64 },
    GuestCreate { args: GuestCreateArgs, pool_pfn: u64, pool_pages: u64 },
    GuestTeardown { guest: OwnerId },
    GuestRun { guest: OwnerId },
    GuestInitRipas { guest: OwnerId, ipa: u64, size: u64 },
    HostDonateGuest { guest: OwnerId, pfn: u64, gfn: u64, nr: u64 },
    HostShareGuest { guest: OwnerId, pfn: u64, gfn: u64, nr: u64 },
    HostUnshareGuest { guest: OwnerId, gfn: u64, nr: u64 },
    GuestShareHost { guest: OwnerId, gfn: u64, nr: u64 },
    GuestUnshareHost { guest: OwnerId, gfn: u64, nr: u64 },
    GuestRelinquish { guest: OwnerId, gfn: u64, nr: u64 },
    PageQuery { pa: u64 },
    CountersQuery,
    GuestPageQuery { guest: OwnerId, gfn: u64 },
    OwnershipQuery,
    FailAllocation { nth: u64 },
    GhostCheck { sabotage: bool },
}

/// What a register tuple is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Not an s2rmap function ID: the caller's own dispatcher handles it.
    NotOurs,
    /// One of ours that this build does not offer: `SMCCC_RET_NOT_SUPPORTED`.
    Unsupported,
    /// Malformed arguments: the call is refused with this errno.
    Invalid(Errno),
    /// A well-formed call.
    Call(Call),
}

fn count(nr: u64) -> Result<u64, Errno> {
    if nr == 0 || nr > MAX_PAGES_PER_CALL { Err(Errno::EINVAL) } else { Ok(nr) }
}

fn handle(raw: u64) -> Result<OwnerId, Errno> {
    let id = u32::try_from(raw).map_err(|_| Errno::EINVAL)?;
    let id = OwnerId(id);
    if id.is_guest() { Ok(id) } else { Err(Errno::ENOENT) }
}

/// The s2rmap function `x0` names, if any.
#[inline]
fn func_of(regs: &[u64; 8]) -> Option<Func> {
    let id = regs[0] & !SMCCC_CALL_HINTS;
    id.checked_sub(HOST_SMCCC_BASE).filter(|n| *n <= 0xffff).and_then(Func::from_number)
}

/// Decodes `x0..x7`. Only argument shape is checked here; whether the
/// pages may move is `share`'s business.
#[must_use]
pub fn decode(regs: &[u64; 8], caps: Caps) -> Decoded {
    match func_of(regs) {
        Some(func) => decode_func(func, regs, caps),
        None => Decoded::NotOurs,
    }
}

/// [`decode`] for a call already known to be `func`.
#[inline(always)]
fn decode_func(func: Func, regs: &[u64; 8], caps: Caps) -> Decoded {
    let test_only = matches!(
        func,
        Func::HypPin
            | Func::HypUnpin
            | Func::FailAllocation
            | Func::GuestShareHost
            | Func::GuestUnshareHost
            | Func::GuestRelinquish
    );
    let guest_call = matches!(
        func,
        Func::GuestCreate
            | Func::GuestTeardown
            | Func::GuestRun
            | Func::GuestInitRipas
            | Func::HostDonateGuest
            | Func::HostShareGuest
            | Func::HostUnshareGuest
            | Func::GuestShareHost
            | Func::GuestUnshareHost
            | Func::GuestRelinquish
            | Func::GuestPageQuery
    );
    if (test_only && !caps.test_calls) || (guest_call && !caps.guests) {
        return Decoded::Unsupported;
    }
    match decode_args(func, regs) {
        Ok(call) => Decoded::Call(call),
        Err(e) => Decoded::Invalid(e),
    }
}

#[inline(always)]
fn decode_args(func: Func, r: &[u64; 8]) -> Result<Call, Errno> {
    Ok(match func {
        Func::HostShareHyp => Call::HostShareHyp { pfn: r[1], nr: 1 },
        Func::HostUnshareHyp => Call::HostUnshareHyp { pfn: r[1], nr: 1 },
        Func::HostShareHypRange => Call::HostShareHyp { pfn: r[1], nr: count(r[2])? },
        Func::HostUnshareHypRange => Call::HostUnshareHyp { pfn: r[1], nr: count(r[2])? },
        Func::HostDonateHyp => Call::HostDonateHyp { pfn: r[1], nr: count(r[2])? },
        Func::HypDonateHost => Call::HypDonateHost { pfn: r[1], nr: count(r[2])? },
        Func::HypPin => Call::HypPin { pfn: r[1], nr: count(r[2])? },
        Func::HypUnpin => Call::HypUnpin { pfn: r[1], nr: count(r[2])? },
        Func::GuestCreate => Call::GuestCreate {
            args: GuestCreateArgs::from_word(r[1]),
            pool_pfn: r[2],
            pool_pages: count(r[3])?,
        },
        Func::GuestTeardown => Call::GuestTeardown { guest: handle(r[1])? },
        Func::GuestRun => Call::GuestRun { guest: handle(r[1])? },
        Func::GuestInitRipas => {
            Call::GuestInitRipas { guest: handle(r[1])?, ipa: r[2], size: r[3] }
        }
        Func::HostDonateGuest => {
            Call::HostDonateGuest { guest: handle(r[1])?, pfn: r[2], gfn: r[3], nr: count(r[4])? }
        }
        Func::HostShareGuest => {
            Call::HostShareGuest { guest: handle(r[1])?, pfn: r[2], gfn: r[3], nr: count(r[4])? }
        }
        Func::HostUnshareGuest => {
            Call::HostUnshareGuest { guest: handle(r[1])?, gfn: r[2], nr: count(r[3])? }
        }
        Func::GuestShareHost => {
            Call::GuestShareHost { guest: handle(r[1])?, gfn: r[2], nr: count(r[3])? }
        }
        Func::GuestUnshareHost => {
            Call::GuestUnshareHost { guest: handle(r[1])?, gfn: r[2], nr: count(r[3])? }
        }
        Func::GuestRelinquish => {
            Call::GuestRelinquish { guest: handle(r[1])?, gfn: r[2], nr: count(r[3])? }
        }
        Func::PageQuery => Call::PageQuery { pa: r[1] },
        Func::CountersQuery => Call::CountersQuery,
        Func::GuestPageQuery => Call::GuestPageQuery { guest: handle(r[1])?, gfn: r[2] },
        Func::OwnershipQuery => Call::OwnershipQuery,
        Func::FailAllocation => Call::FailAllocation { nth: r[1] },
        Func::GhostCheck => match r[1] {
            0 => Call::GhostCheck { sabotage: false },
            1 => Call::GhostCheck { sabotage: true },
            _ => return Err(Errno::EINVAL),
        },
    })
}

/// Builds and takes apart the table pools of guests. At EL2 the pool is
/// memory the host donated; on the host, heap pages.
pub trait GuestFactory<P: Platform> {
    /// Builds a pool out of `pool` (which the hyp now owns) for a guest
    /// with `ipa_bits` of IPA space: its zeroed root, allocator and TLB.
    fn build(
        &mut self,
        ipa_bits: u8,
        pool: Range<u64>,
    ) -> Result<(PhysAddr, P::GuestAlloc, P::GuestTlb), Errno>;

    /// Takes apart the pool of a torn-down guest; returns its physical
    /// range, to go back to the host.
    fn dismantle(&mut self, alloc: P::GuestAlloc, root: PhysAddr) -> Range<u64>;

    /// Makes the `nth` allocation point from now fail (table-page
    /// reservations of every party, and the hyp's stage-1 mapping); `0`
    /// disarms. False where the platform cannot inject failures.
    fn fail_allocation(&mut self, nth: u64) -> bool {
        let _ = nth;
        false
    }
}

fn status(r: Result<(), Errno>) -> u64 {
    match r {
        Ok(()) => 0,
        Err(e) => (-(e.code() as i64)) as u64,
    }
}

/// Handles one host hypercall: decodes `regs` and, if it is one of
/// s2rmap's, runs it and writes the results back into `regs` the way
/// Linux's `handle_host_hcall` does. Returns false if the call is not
/// s2rmap's (and leaves `regs` alone).
#[inline]
pub fn dispatch<P: Platform>(
    tracker: &Tracker<P>,
    factory: &mut impl GuestFactory<P>,
    caps: Caps,
    regs: &mut [u64; 8],
) -> bool {
    // Every host hypercall comes here first: turn away the ones that are
    // not s2rmap's before the call to decode and run them.
    match func_of(regs) {
        Some(func) => run(tracker, factory, caps, func, regs),
        None => false,
    }
}

/// Decodes and runs the call `func` (see [`dispatch`]). Out of line:
/// with every transition inlined, its stack frame and saved registers
/// would otherwise be paid by each hypercall that is not s2rmap's, the
/// ones that run vCPUs among them. The decoding is inlined here, so that
/// the arguments go from the registers to the transition without being
/// stored as a [`Call`] in between.
#[inline(never)]
fn run<P: Platform>(
    tracker: &Tracker<P>,
    factory: &mut impl GuestFactory<P>,
    caps: Caps,
    func: Func,
    regs: &mut [u64; 8],
) -> bool {
    let call = match decode_func(func, regs, caps) {
        Decoded::Call(call) => call,
        Decoded::NotOurs => return false,
        Decoded::Unsupported => {
            regs[0] = SMCCC_RET_NOT_SUPPORTED;
            return true;
        }
        Decoded::Invalid(e) => {
            regs[0] = SMCCC_RET_SUCCESS;
            regs[1] = status(Err(e));
            return true;
        }
    };
    regs[0] = SMCCC_RET_SUCCESS;
    let result = match call {
        Call::HostShareHyp { pfn, nr } => tracker.host_share_hyp(pfn, nr),
        Call::HostUnshareHyp { pfn, nr } => tracker.host_unshare_hyp(pfn, nr),
        Call::HostDonateHyp { pfn, nr } => tracker.host_donate_hyp(pfn, nr),
        Call::HypDonateHost { pfn, nr } => tracker.hyp_donate_host(pfn, nr),
        Call::HypPin { pfn, nr } => tracker.hyp_pin(pfn, nr),
        Call::HypUnpin { pfn, nr } => tracker.hyp_unpin(pfn, nr),
        Call::GuestCreate { args, pool_pfn, pool_pages } => {
            match create_guest(tracker, factory, args, pool_pfn, pool_pages) {
                Ok(id) => {
                    regs[2] = u64::from(id.0);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        Call::GuestTeardown { guest } => teardown_guest(tracker, factory, guest),
        Call::GuestRun { guest } => tracker.run_guest(guest),
        Call::GuestInitRipas { guest, ipa, size } => tracker.init_ripas(guest, ipa, size),
        Call::HostDonateGuest { guest, pfn, gfn, nr } => {
            tracker.host_donate_guest(guest, pfn, gfn, nr)
        }
        Call::HostShareGuest { guest, pfn, gfn, nr } => {
            tracker.host_share_guest(guest, pfn, gfn, nr)
        }
        Call::HostUnshareGuest { guest, gfn, nr } => tracker.host_unshare_guest(guest, gfn, nr),
        Call::GuestShareHost { guest, gfn, nr } => tracker.guest_share_host(guest, gfn, nr),
        Call::GuestUnshareHost { guest, gfn, nr } => tracker.guest_unshare_host(guest, gfn, nr),
        Call::GuestRelinquish { guest, gfn, nr } => tracker.guest_relinquish(guest, gfn, nr),
        Call::PageQuery { pa } => page_query(tracker, pa).map(|report| {
            regs[2..4].copy_from_slice(&report.to_regs());
        }),
        Call::CountersQuery => {
            let c = tracker.counters();
            let abi = Counters {
                table_pages: c.host_table_pages,
                leaves: c.host_leaves,
                host_faults: c.host_faults,
            };
            regs[2..8].copy_from_slice(&abi.to_regs());
            Ok(())
        }
        Call::GuestPageQuery { guest, gfn } => guest_page_query(tracker, guest, gfn).map(|r| {
            regs[2..4].copy_from_slice(&r.to_regs());
        }),
        Call::OwnershipQuery => tracker.ownership_totals().map(|t| {
            regs[2..7].copy_from_slice(&[t.host, t.host_lent, t.hyp, t.guests, t.borrowed]);
        }),
        Call::FailAllocation { nth } => {
            if !factory.fail_allocation(nth) {
                regs[0] = SMCCC_RET_NOT_SUPPORTED;
                return true;
            }
            Ok(())
        }
        Call::GhostCheck { sabotage } => {
            if !ghost_check(tracker, caps, sabotage, regs) {
                regs[0] = SMCCC_RET_NOT_SUPPORTED;
                return true;
            }
            Ok(())
        }
    };
    regs[1] = status(result);
    true
}

/// The ghost checker's figures into `x2..x5`, arming the sabotage of the
/// next compared call first if asked (test calls only). False where the
/// build has no ghost checker (or no test calls, for the sabotage).
#[cfg(feature = "ghost")]
fn ghost_check<P: Platform>(
    tracker: &Tracker<P>,
    caps: Caps,
    sabotage: bool,
    regs: &mut [u64; 8],
) -> bool {
    if sabotage {
        if !caps.test_calls {
            return false;
        }
        tracker.ghost_sabotage_next();
    }
    let stats = tracker.ghost_stats();
    regs[2..6].copy_from_slice(&[
        stats.checked,
        stats.refused_arguments,
        stats.too_big,
        stats.aliased,
    ]);
    true
}

#[cfg(not(feature = "ghost"))]
fn ghost_check<P: Platform>(
    _tracker: &Tracker<P>,
    _caps: Caps,
    _sabotage: bool,
    _regs: &mut [u64; 8],
) -> bool {
    false
}

fn page_query<P: Platform>(tracker: &Tracker<P>, pa: u64) -> Result<PageReport, Errno> {
    let info = tracker.host_page(pa)?;
    let (pins, guest_shares) = tracker.page_counts(pa);
    Ok(PageReport {
        owner: info.owner.map_or(OWNER_LENDER, |o| o.0),
        host_state: AbiPageState::from(info.host_state) as u8,
        hyp_state: AbiPageState::from(tracker.hyp_state(pa)) as u8,
        mapped: u8::from(info.mapped),
        reserved: 0,
        pins,
        guest_shares,
    })
}

fn guest_page_query<P: Platform>(
    tracker: &Tracker<P>,
    guest: OwnerId,
    gfn: u64,
) -> Result<GuestPageReport, Errno> {
    let (state, pa) = tracker.guest_page(guest, gfn)?;
    let ipa = gfn * PAGE_SIZE;
    let (ripas, lifecycle) = tracker.guest_info(guest, ipa)?;
    Ok(GuestPageReport {
        pa: pa.unwrap_or(0),
        state: AbiPageState::from(state) as u8,
        ripas_ram: u8::from(ripas == share::Ripas::Ram),
        running: u8::from(lifecycle == share::Lifecycle::Running),
        reserved: [0; 5],
    })
}

/// A guest's tables live in memory the host donates for them: donate,
/// claim it for the hyp's own use, build the guest; undo in reverse on any
/// failure so that a refused call changes nothing.
fn create_guest<P: Platform>(
    tracker: &Tracker<P>,
    factory: &mut impl GuestFactory<P>,
    args: GuestCreateArgs,
    pool_pfn: u64,
    pool_pages: u64,
) -> Result<OwnerId, Errno> {
    if pgtable::Stage2Config::new(args.ipa_bits).is_err() {
        return Err(Errno::EINVAL);
    }
    tracker.host_donate_hyp(pool_pfn, pool_pages)?;
    let undo_donate = |e: Errno| {
        // The pages were the host's a moment ago and nothing else could
        // take them: giving them back cannot fail.
        if let Err(undo) = tracker.hyp_donate_host(pool_pfn, pool_pages) {
            panic!("s2rmap: returning a guest pool failed: {undo:?}");
        }
        e
    };
    tracker.hyp_claim(pool_pfn, pool_pages).map_err(undo_donate)?;
    let undo_claim = |e: Errno| {
        // Claimed pages go back directly: nothing to record, cannot fail.
        if let Err(undo) = tracker.hyp_return_used(pool_pfn, pool_pages) {
            panic!("s2rmap: returning a guest pool failed: {undo:?}");
        }
        e
    };
    let pool = pool_pfn * PAGE_SIZE..(pool_pfn + pool_pages) * PAGE_SIZE;
    let (root, alloc, tlb) = factory.build(args.ipa_bits, pool).map_err(undo_claim)?;
    match tracker.create_guest(None, args.ipa_bits, root, alloc, tlb) {
        Ok(id) => Ok(id),
        Err(e) => Err(undo_claim(e)),
    }
}

fn teardown_guest<P: Platform>(
    tracker: &Tracker<P>,
    factory: &mut impl GuestFactory<P>,
    guest: OwnerId,
) -> Result<(), Errno> {
    let (alloc, root) = tracker.teardown(guest)?.into_parts();
    let pool = factory.dismantle(alloc, root);
    let (pfn, nr) = (pool.start / PAGE_SIZE, (pool.end - pool.start) / PAGE_SIZE);
    if let Err(e) = tracker.hyp_return_used(pfn, nr) {
        panic!("s2rmap: returning the pool of a torn-down guest failed: {e:?}");
    }
    Ok(())
}
