//! The system under test: the real `share` tracker over real `pgtable`
//! tables, driven through the hypercall dispatcher as EL2 would be, and
//! read back into the reference model's shape from its tables.

use std::collections::BTreeMap;

use hypercalls::host::HostGuestFactory;
use hypercalls::{Caps, Func, GuestCreateArgs};
use ownership::{MemoryMap, OwnerId, PageState};
use share::host_model::{HostPlatform, new_tracker};
use share::{Errno, GuestAccess, HostAccess, Tracker};

use crate::refmodel::{Model, Op, PA_BITS, PAGE, Res};

/// The real tracker plus what the dispatcher needs.
#[derive(Debug)]
pub struct Sut {
    pub tracker: Tracker<HostPlatform>,
    pub factory: HostGuestFactory,
    pub caps: Caps,
}

impl Sut {
    /// A tracker over the RAM regions (page-frame ranges) of `model`.
    #[must_use]
    pub fn new(ram: &[(u64, u64)]) -> Self {
        let mut memory = MemoryMap::new();
        for &(s, e) in ram {
            memory.add(s * PAGE, (e - s) * PAGE).expect("valid region");
        }
        Self {
            tracker: new_tracker(memory, PA_BITS as u8, None),
            factory: HostGuestFactory::default(),
            caps: Caps::ALL,
        }
    }

    /// Issues a raw hypercall; returns the registers after it.
    pub fn hvc(&mut self, func: Func, args: &[u64]) -> [u64; 8] {
        let mut regs = [0u64; 8];
        regs[0] = func.id();
        regs[1..=args.len()].copy_from_slice(args);
        assert!(hypercalls::dispatch(&self.tracker, &mut self.factory, self.caps, &mut regs));
        regs
    }

    fn result(regs: &[u64; 8]) -> Res {
        if regs[0] == hypercalls::SMCCC_RET_NOT_SUPPORTED {
            return Res::NotSupported;
        }
        match regs[1] {
            0 => Res::Ok,
            e => Res::Err(Errno::from_code(-(e as i64) as i32).expect("known errno")),
        }
    }

    /// Runs one operation.
    pub fn apply(&mut self, op: &Op) -> Res {
        let (func, args): (Func, Vec<u64>) = match *op {
            Op::ShareHyp { pfn, nr: None } => (Func::HostShareHyp, vec![pfn]),
            Op::ShareHyp { pfn, nr: Some(nr) } => (Func::HostShareHypRange, vec![pfn, nr]),
            Op::UnshareHyp { pfn, nr: None } => (Func::HostUnshareHyp, vec![pfn]),
            Op::UnshareHyp { pfn, nr: Some(nr) } => (Func::HostUnshareHypRange, vec![pfn, nr]),
            Op::DonateHyp { pfn, nr } => (Func::HostDonateHyp, vec![pfn, nr]),
            Op::ReclaimHyp { pfn, nr } => (Func::HypDonateHost, vec![pfn, nr]),
            Op::Pin { pfn, nr } => (Func::HypPin, vec![pfn, nr]),
            Op::Unpin { pfn, nr } => (Func::HypUnpin, vec![pfn, nr]),
            Op::Create { ipa_bits, pool_pfn, pool_pages } => {
                let word = u64::from(GuestCreateArgs { ipa_bits, flags: 0 }.ipa_bits);
                let regs = self.hvc(Func::GuestCreate, &[word, pool_pfn, pool_pages]);
                return match Self::result(&regs) {
                    Res::Ok => Res::Created(regs[2] as u32),
                    r => r,
                };
            }
            Op::Teardown { h } => (Func::GuestTeardown, vec![h]),
            Op::Run { h } => (Func::GuestRun, vec![h]),
            Op::InitRipas { h, ipa, size } => (Func::GuestInitRipas, vec![h, ipa, size]),
            Op::DonateGuest { h, pfn, gfn, nr } => (Func::HostDonateGuest, vec![h, pfn, gfn, nr]),
            Op::ShareGuest { h, pfn, gfn, nr } => (Func::HostShareGuest, vec![h, pfn, gfn, nr]),
            Op::UnshareGuest { h, gfn, nr } => (Func::HostUnshareGuest, vec![h, gfn, nr]),
            Op::GuestShare { h, gfn, nr } => (Func::GuestShareHost, vec![h, gfn, nr]),
            Op::GuestUnshare { h, gfn, nr } => (Func::GuestUnshareHost, vec![h, gfn, nr]),
            Op::Relinquish { h, gfn, nr } => (Func::GuestRelinquish, vec![h, gfn, nr]),
            Op::ShareFfa { pfn, nr } => {
                return self.tracker.host_share_ffa(pfn, nr).map_or_else(Res::Err, |()| Res::Ok);
            }
            Op::UnshareFfa { pfn, nr } => {
                return self.tracker.host_unshare_ffa(pfn, nr).map_or_else(Res::Err, |()| Res::Ok);
            }
            Op::HostAccess { pa } => {
                return match self.tracker.host_access(pa) {
                    Ok(HostAccess::Ok) => Res::Ok,
                    Ok(HostAccess::Fault { .. }) => Res::Fault,
                    Err(e) => Res::Err(e),
                };
            }
            Op::GuestAccess { h, ipa } => {
                return match self.tracker.guest_access(OwnerId(h as u32), ipa) {
                    Ok(GuestAccess::Ok) => Res::Ok,
                    Ok(GuestAccess::Fault) => Res::Fault,
                    Ok(GuestAccess::Mmio { ipa }) => Res::Mmio(ipa),
                    Err(e) => Res::Err(e),
                };
            }
        };
        let regs = self.hvc(func, &args);
        Self::result(&regs)
    }

    /// Compares every party's state, read back from the real tables and
    /// counters, with the model. Returns the first difference.
    pub fn compare(&self, model: &Model) -> Result<(), String> {
        // Host: runs of the host stage-2 over all RAM.
        let mut host: BTreeMap<u64, (Option<OwnerId>, PageState)> = BTreeMap::new();
        for &(s, e) in &model.ram {
            self.tracker
                .for_each_run(s * PAGE..e * PAGE, |run| {
                    if (run.owner, run.host_state) != (Some(OwnerId::HOST), PageState::Owned) {
                        for pfn in run.range.start / PAGE..run.range.end / PAGE {
                            host.insert(pfn, (run.owner, run.host_state));
                        }
                    }
                })
                .map_err(|e| format!("walking the host stage-2: {e}"))?;
        }
        let mut want_host = BTreeMap::new();
        let mut want_hyp = BTreeMap::new();
        let mut want_counts = BTreeMap::new();
        for (&pfn, p) in &model.pages {
            let v = (Model::owner_id(p), p.host);
            if v != (Some(OwnerId::HOST), PageState::Owned) {
                want_host.insert(pfn, v);
            }
            if p.hyp != PageState::NoPage {
                want_hyp.insert(pfn, (p.hyp, p.hyp_in_use));
            }
            if (p.pins, p.shares) != (0, 0) {
                want_counts.insert(pfn, (p.pins, p.shares));
            }
        }
        if host != want_host {
            return Err(first_diff("host stage-2", &host, &want_host));
        }
        let (hyp, counts, ffa) = self.tracker.with_platform(|_, _, meta, hyp| {
            let hyp: BTreeMap<_, _> = hyp.pages().map(|(pfn, s, u)| (pfn, (s, u))).collect();
            let counts: BTreeMap<_, _> = meta.counts().map(|(pfn, p, s)| (pfn, (p, s))).collect();
            (hyp, counts, meta.ffa.clone())
        });
        let want_ffa: std::collections::BTreeSet<u64> =
            model.pages.iter().filter(|(_, p)| p.ffa).map(|(pfn, _)| *pfn).collect();
        if ffa != want_ffa {
            return Err(format!("FF-A pages: real {ffa:x?}, model {want_ffa:x?}"));
        }
        if hyp != want_hyp {
            return Err(first_diff("hyp", &hyp, &want_hyp));
        }
        if counts != want_counts {
            return Err(first_diff("pins/shares", &counts, &want_counts));
        }
        // Guests: which exist, their mappings, lifecycle and RIPAS.
        for slot in 0..share::MAX_GUESTS as u32 {
            let id = OwnerId(slot + 2);
            let mut map = BTreeMap::new();
            let exists = self
                .tracker
                .for_each_guest_mapping(id, |ipa, pa, state| {
                    for (i, gpa) in (ipa.start..ipa.end).step_by(PAGE as usize).enumerate() {
                        map.insert(gpa / PAGE, (pa / PAGE + i as u64, state));
                    }
                })
                .is_ok();
            let Some(g) = model.guests.get(&slot) else {
                if exists {
                    return Err(format!("guest slot {slot} exists but the model has none"));
                }
                continue;
            };
            if !exists {
                return Err(format!("guest slot {slot} is missing"));
            }
            if map != g.map {
                return Err(first_diff(&format!("guest {slot} mappings"), &map, &g.map));
            }
            let (_, life) = self.tracker.guest_info(id, 0).map_err(|e| e.to_string())?;
            if (life == share::Lifecycle::Running) != g.running {
                return Err(format!("guest {slot}: running {life:?}, model {}", g.running));
            }
            for gfn in (0..64).chain(g.ripas_ram.iter().copied().take(64)) {
                if g.map.contains_key(&gfn) {
                    continue;
                }
                let (ripas, _) =
                    self.tracker.guest_info(id, gfn * PAGE).map_err(|e| e.to_string())?;
                if (ripas == share::Ripas::Ram) != g.ripas_ram.contains(&gfn) {
                    return Err(format!("guest {slot} gfn {gfn:#x}: RIPAS {ripas:?}"));
                }
            }
        }
        let zeroed = self.tracker.with_platform(|_, _, meta, _| meta.zeroed.len() as u64);
        if zeroed != model.zeroed {
            return Err(format!("{zeroed} pages zeroed, model says {}", model.zeroed));
        }
        Ok(())
    }
}

fn first_diff<K: Ord + std::fmt::Debug + Copy, V: PartialEq + std::fmt::Debug>(
    what: &str,
    got: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
) -> String {
    for (k, v) in got {
        if want.get(k) != Some(v) {
            return format!("{what}: {k:x?}: real {v:?}, model {:?}", want.get(k));
        }
    }
    for (k, v) in want {
        if !got.contains_key(k) {
            return format!("{what}: {k:x?}: real nothing, model {v:?}");
        }
    }
    format!("{what}: differ")
}
