//! Executing scenarios: every call goes through the register-level
//! dispatcher, as at EL2.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hypercalls::host::HostGuestFactory;
use hypercalls::{
    AbiPageState, Caps, Func, GuestCreateArgs, GuestPageReport, OWNER_LENDER, PageReport,
};
use ownership::{MemoryMap, OwnerId, PageState};
use pgtable::PAGE_SIZE;
use share::host_model::{HostPlatform, new_tracker};
use share::{Errno, GuestAccess, HostAccess, Tracker};

use crate::parse::{CallName, Expected, Line, Statement};

/// Guest table pools come from a RAM region of their own, far from the
/// scenario's memory and left out of dumps.
const POOL_REGION: (u64, u64) = (0xf0_0000_0000, 32 * 64 * PAGE_SIZE);
/// Pages of table pool per guest.
const POOL_PAGES: u64 = 64;
/// The host's physical address space.
const PA_BITS: u8 = 48;

/// What a call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Errno(Errno),
    Fault(OwnerId),
    GuestFault,
    Mmio(u64),
    /// `SMCCC_RET_NOT_SUPPORTED`.
    NotSupported,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Errno(e) => f.write_str(e.name()),
            Outcome::Fault(owner) => write!(f, "fault (page owned by id {})", owner.0),
            Outcome::GuestFault => f.write_str("fault"),
            Outcome::Mmio(ipa) => write!(f, "mmio (exit IPA {ipa:#x})"),
            Outcome::NotSupported => f.write_str("not supported"),
        }
    }
}

fn matches(expected: Expected, got: Outcome) -> bool {
    match (expected, got) {
        (Expected::Ok, Outcome::Ok) => true,
        (Expected::Errno(e), Outcome::Errno(g)) => e == g,
        (Expected::Err, Outcome::Errno(_) | Outcome::NotSupported) => true,
        (Expected::Fault, Outcome::Fault(_) | Outcome::GuestFault) => true,
        (Expected::Mmio, Outcome::Mmio(_)) => true,
        _ => false,
    }
}

fn state_name(s: PageState) -> &'static str {
    match s {
        PageState::Owned => "OWNED",
        PageState::SharedOwned => "SHARED_OWNED",
        PageState::SharedBorrowed => "SHARED_BORROWED",
        PageState::NoPage => "NOPAGE",
    }
}

fn abi_state(raw: u8) -> PageState {
    match raw {
        x if x == AbiPageState::Owned as u8 => PageState::Owned,
        x if x == AbiPageState::SharedOwned as u8 => PageState::SharedOwned,
        x if x == AbiPageState::SharedBorrowed as u8 => PageState::SharedBorrowed,
        _ => PageState::NoPage,
    }
}

/// Runs scenarios; counts assertions.
#[derive(Debug)]
pub struct Runner {
    file: String,
    memory: MemoryMap,
    tracker: Option<Tracker<HostPlatform>>,
    factory: HostGuestFactory,
    /// Scenario guest number -> handle.
    guests: BTreeMap<u32, OwnerId>,
    next_pool: u64,
    /// Assertions that held / failed.
    pub passed: usize,
    pub failed: usize,
    /// Everything printed, in order.
    pub output: String,
}

impl Runner {
    /// A fresh machine for one scenario file.
    #[must_use]
    pub fn new(file: &str) -> Self {
        Self {
            file: file.into(),
            memory: MemoryMap::new(),
            tracker: None,
            factory: HostGuestFactory::default(),
            guests: BTreeMap::new(),
            next_pool: POOL_REGION.0,
            passed: 0,
            failed: 0,
            output: String::new(),
        }
    }

    fn say(&mut self, line: usize, text: std::fmt::Arguments<'_>) {
        let _ = writeln!(self.output, "{}:{line}: {text}", self.file);
    }

    fn assert(&mut self, line: usize, ok: bool, expected: &str, got: &str) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            self.say(line, format_args!("expected {expected}, got {got}"));
        }
    }

    fn tracker(&mut self) -> &Tracker<HostPlatform> {
        if self.tracker.is_none() {
            let mut memory = self.memory.clone();
            memory.add(POOL_REGION.0, POOL_REGION.1).expect("pool region is free");
            self.tracker = Some(new_tracker(memory, PA_BITS, None));
        }
        self.tracker.as_ref().expect("just created")
    }

    fn hypercall(&mut self, func: Func, args: &[u64]) -> ([u64; 8], Outcome) {
        let mut regs = [0u64; 8];
        regs[0] = func.id();
        regs[1..=args.len()].copy_from_slice(args);
        let caps = Caps::ALL;
        self.tracker();
        let tracker = self.tracker.as_ref().expect("created above");
        assert!(
            hypercalls::dispatch(tracker, &mut self.factory, caps, &mut regs),
            "s2rmap function"
        );
        let outcome = if regs[0] == hypercalls::SMCCC_RET_NOT_SUPPORTED {
            Outcome::NotSupported
        } else if regs[1] == 0 {
            Outcome::Ok
        } else {
            let code = -(regs[1] as i64);
            Outcome::Errno(Errno::from_code(code as i32).expect("a known errno"))
        };
        (regs, outcome)
    }

    /// An owner as the scenario names it: host, hyp, or `guest G`.
    fn owner_name(&self, owner: Option<OwnerId>) -> String {
        match owner {
            None => "lender".into(),
            Some(o) if o.is_guest() => match self.guests.iter().find(|(_, h)| **h == o) {
                Some((g, _)) => format!("guest {g}"),
                None => format!("torn-down guest (id {})", o.0),
            },
            Some(o) => o.to_string(),
        }
    }

    fn handle(&self, guest: u64) -> u64 {
        // An undeclared guest gets a handle no guest has, so the call is
        // refused by the hypervisor (ENOENT) rather than by s2sim.
        u32::try_from(guest)
            .ok()
            .and_then(|g| self.guests.get(&g))
            .map_or(u64::from(u32::MAX), |h| u64::from(h.0))
    }

    fn call(&mut self, call: CallName, a: &[u64]) -> Outcome {
        let opt = |i: usize| a.get(i).copied();
        let (func, args): (Func, Vec<u64>) = match call {
            CallName::HostShareHyp => match opt(1) {
                Some(nr) => (Func::HostShareHypRange, vec![a[0], nr]),
                None => (Func::HostShareHyp, vec![a[0]]),
            },
            CallName::HostUnshareHyp => match opt(1) {
                Some(nr) => (Func::HostUnshareHypRange, vec![a[0], nr]),
                None => (Func::HostUnshareHyp, vec![a[0]]),
            },
            CallName::HostDonateHyp => (Func::HostDonateHyp, vec![a[0], a[1]]),
            CallName::HypDonateHost => (Func::HypDonateHost, vec![a[0], a[1]]),
            CallName::HypPin => (Func::HypPin, vec![a[0], opt(1).unwrap_or(1)]),
            CallName::HypUnpin => (Func::HypUnpin, vec![a[0], opt(1).unwrap_or(1)]),
            CallName::HostDonateGuest => {
                (Func::HostDonateGuest, vec![self.handle(a[0]), a[1], a[2], opt(3).unwrap_or(1)])
            }
            CallName::HostShareGuest => {
                (Func::HostShareGuest, vec![self.handle(a[0]), a[1], a[2], opt(3).unwrap_or(1)])
            }
            CallName::HostUnshareGuest => {
                (Func::HostUnshareGuest, vec![self.handle(a[0]), a[1], opt(2).unwrap_or(1)])
            }
            CallName::GuestShareHost => {
                (Func::GuestShareHost, vec![self.handle(a[0]), a[1], opt(2).unwrap_or(1)])
            }
            CallName::GuestUnshareHost => {
                (Func::GuestUnshareHost, vec![self.handle(a[0]), a[1], opt(2).unwrap_or(1)])
            }
            CallName::GuestRelinquish => {
                (Func::GuestRelinquish, vec![self.handle(a[0]), a[1], opt(2).unwrap_or(1)])
            }
            CallName::InitRipas => (Func::GuestInitRipas, vec![self.handle(a[0]), a[1], a[2]]),
            CallName::Teardown => {
                let handle = self.handle(a[0]);
                let (_, outcome) = self.hypercall(Func::GuestTeardown, &[handle]);
                if outcome == Outcome::Ok {
                    self.guests.retain(|_, h| u64::from(h.0) != handle);
                }
                return outcome;
            }
            // FF-A shares reach the tracker through the hyp's FF-A proxy (an
            // SMC the host makes), not through a hypercall.
            CallName::HostShareFfa | CallName::HostUnshareFfa => {
                let tracker = self.tracker();
                let r = if call == CallName::HostShareFfa {
                    tracker.host_share_ffa(a[0], a[1])
                } else {
                    tracker.host_unshare_ffa(a[0], a[1])
                };
                return r.map_or_else(Outcome::Errno, |()| Outcome::Ok);
            }
            CallName::HostAccess => {
                return match self.tracker().host_access(a[0]) {
                    Ok(HostAccess::Ok) => Outcome::Ok,
                    Ok(HostAccess::Fault { owner }) => Outcome::Fault(owner),
                    Err(e) => Outcome::Errno(e),
                };
            }
            CallName::GuestAccess => {
                let handle = OwnerId(self.handle(a[0]) as u32);
                return match self.tracker().guest_access(handle, a[1]) {
                    Ok(GuestAccess::Ok) => Outcome::Ok,
                    Ok(GuestAccess::Fault) => Outcome::GuestFault,
                    Ok(GuestAccess::Mmio { ipa }) => Outcome::Mmio(ipa),
                    Err(e) => Outcome::Errno(e),
                };
            }
        };
        self.hypercall(func, &args).1
    }

    fn create_guest(&mut self, line: usize, guest: u32, ipa_bits: u8) {
        if self.guests.contains_key(&guest) {
            self.failed += 1;
            self.say(line, format_args!("guest {guest} already exists"));
            return;
        }
        let pool_pfn = self.next_pool / PAGE_SIZE;
        self.next_pool += POOL_PAGES * PAGE_SIZE;
        let word = u64::from(GuestCreateArgs { ipa_bits, flags: 0 }.ipa_bits);
        let (regs, outcome) = self.hypercall(Func::GuestCreate, &[word, pool_pfn, POOL_PAGES]);
        if outcome == Outcome::Ok {
            self.guests.insert(guest, OwnerId(regs[2] as u32));
        } else {
            self.failed += 1;
            self.say(line, format_args!("creating guest {guest}: {outcome}"));
        }
    }

    fn expect(
        &mut self,
        line: usize,
        pfn: u64,
        host: PageState,
        hyp: PageState,
        guests: &[(u32, u64, PageState)],
    ) {
        let pa = pfn.saturating_mul(PAGE_SIZE);
        let (regs, outcome) = self.hypercall(Func::PageQuery, &[pa]);
        let mut expected = format!("host={} hyp={}", state_name(host), state_name(hyp));
        let mut got = String::new();
        let mut ok = outcome == Outcome::Ok;
        if ok {
            let r = PageReport::from_regs([regs[2], regs[3]]);
            let (h, y) = (abi_state(r.host_state), abi_state(r.hyp_state));
            ok = h == host && y == hyp;
            let owner = if r.owner == OWNER_LENDER {
                "lender".into()
            } else {
                OwnerId(r.owner).to_string()
            };
            let _ = write!(got, "host={} hyp={} (owner {owner})", state_name(h), state_name(y));
        } else {
            let _ = write!(got, "{outcome}");
        }
        for &(g, gfn, want) in guests {
            let handle = self.handle(u64::from(g));
            let (regs, outcome) = self.hypercall(Func::GuestPageQuery, &[handle, gfn]);
            let st = if outcome == Outcome::Ok {
                abi_state(GuestPageReport::from_regs([regs[2], regs[3]]).state)
            } else {
                PageState::NoPage
            };
            ok &= outcome == Outcome::Ok && st == want;
            let _ = write!(expected, " g{g}@{gfn:#x}={}", state_name(want));
            if outcome == Outcome::Ok {
                let _ = write!(got, " g{g}@{gfn:#x}={}", state_name(st));
            } else {
                let _ = write!(got, " g{g}@{gfn:#x}: {outcome}");
            }
        }
        self.assert(line, ok, &expected, &got);
    }

    fn check(&mut self, line: usize) {
        let tracker = self.tracker();
        let mut problem = tracker.check_invariants().err().map(|v| v.to_string());
        if problem.is_none() {
            problem = tracker.with_platform(|_, tlb, _, _| tlb.check_quiescent().err());
        }
        let handles: Vec<OwnerId> = self.guests.values().copied().collect();
        for h in handles {
            if problem.is_none() {
                let tracker = self.tracker.as_ref().expect("exists");
                problem = tracker
                    .with_guest_platform(h, |_, tlb| tlb.check_quiescent().err())
                    .ok()
                    .flatten();
            }
        }
        let got = problem.unwrap_or_default();
        self.assert(line, got.is_empty(), "all invariants to hold", &got);
    }

    fn dump(&mut self, line: usize, range: Option<(u64, u64)>) {
        let regions: Vec<(u64, u64)> = match range {
            Some((base, size)) => vec![(base, base.saturating_add(size))],
            None => self.memory.regions().map(|r| (r.start, r.end)).collect(),
        };
        let _ = writeln!(self.output, "{}:{line}: dump", self.file);
        let mut text = String::new();
        self.tracker();
        let tracker = self.tracker.as_ref().expect("created above");
        for (start, end) in regions {
            let result = tracker.for_each_run(start..end, |run| {
                let owner = self.owner_name(run.owner);
                let pages = (run.range.end - run.range.start) / PAGE_SIZE;
                let _ = writeln!(
                    text,
                    "  {:#012x}..{:#012x} {:>7} page{} {:<7} {}",
                    run.range.start,
                    run.range.end,
                    pages,
                    if pages == 1 { " " } else { "s" },
                    owner,
                    state_name(run.host_state)
                );
            });
            if let Err(e) = result {
                let _ = writeln!(text, "  {start:#x}..{end:#x}: {e}");
            }
        }
        self.output.push_str(&text);
    }

    /// Executes parsed lines.
    pub fn run(&mut self, lines: &[Line]) {
        for Line { number, statement } in lines {
            let line = *number;
            match statement {
                Statement::Memory { base, size } => {
                    if self.tracker.is_some() {
                        self.failed += 1;
                        self.say(
                            line,
                            format_args!("memory must be declared before anything else"),
                        );
                    } else if let Err(e) = self.memory.add(*base, *size) {
                        self.failed += 1;
                        self.say(line, format_args!("memory {base:#x} {size:#x}: {e}"));
                    }
                }
                Statement::Guest { guest, ipa_bits } => self.create_guest(line, *guest, *ipa_bits),
                Statement::Run { guest } => {
                    let handle = self.handle(u64::from(*guest));
                    let (_, outcome) = self.hypercall(Func::GuestRun, &[handle]);
                    if outcome != Outcome::Ok {
                        self.failed += 1;
                        self.say(line, format_args!("run {guest}: {outcome}"));
                    }
                }
                Statement::Call { call, args, expect } => {
                    let got = self.call(*call, args);
                    match expect {
                        Some(e) => {
                            self.assert(line, matches(*e, got), &e.to_string(), &got.to_string())
                        }
                        None => {
                            let args: Vec<String> =
                                args.iter().map(|a| format!("{a:#x}")).collect();
                            self.say(
                                line,
                                format_args!("{} {} -> {got}", call.name(), args.join(" ")),
                            );
                        }
                    }
                }
                Statement::Expect { pfn, host, hyp, guests } => {
                    self.expect(line, *pfn, *host, *hyp, guests)
                }
                Statement::Check => self.check(line),
                Statement::Dump { range } => self.dump(line, *range),
                Statement::Reset => {
                    self.tracker = None;
                    self.factory = HostGuestFactory::default();
                    self.guests.clear();
                    self.next_pool = POOL_REGION.0;
                }
            }
        }
    }
}
