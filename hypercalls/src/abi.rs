//! Function numbers, return values and the structures shared with C.

use static_assertions::{assert_eq_size, const_assert_eq};

/// SMCCC: fast call (bit 31).
pub const SMCCC_FAST_CALL: u64 = 1 << 31;
/// SMCCC: SMC64 calling convention (bit 30).
pub const SMCCC_SMC_64: u64 = 1 << 30;
/// SMCCC: owner field, bits \[29:24\].
pub const SMCCC_OWNER_SHIFT: u32 = 24;
/// SMCCC owner: vendor-specific hypervisor service.
pub const SMCCC_OWNER_VENDOR_HYP: u64 = 6;
/// SMCCC v1.3 SVE hint (bit 16), which Linux strips before dispatch.
pub const SMCCC_CALL_HINTS: u64 = 1 << 16;
/// `SMCCC_RET_SUCCESS`.
pub const SMCCC_RET_SUCCESS: u64 = 0;
/// `SMCCC_RET_NOT_SUPPORTED` (-1).
pub const SMCCC_RET_NOT_SUPPORTED: u64 = u64::MAX;

/// `KVM_HOST_SMCCC_ID(0)`: the base every host hypercall ID adds to.
pub const HOST_SMCCC_BASE: u64 =
    SMCCC_FAST_CALL | SMCCC_SMC_64 | (SMCCC_OWNER_VENDOR_HYP << SMCCC_OWNER_SHIFT);
const_assert_eq!(HOST_SMCCC_BASE, 0xc600_0000);

/// The most pages one call may name (1 GiB).
pub const MAX_PAGES_PER_CALL: u64 = 1 << 18;

/// Host hypercall function numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Func {
    /// Linux's `__pkvm_host_share_hyp` (one page, `x1` = pfn).
    HostShareHyp = 9,
    /// Linux's `__pkvm_host_unshare_hyp` (one page, `x1` = pfn).
    HostUnshareHyp = 10,
    // s2rmap's own calls, after Linux 6.12's last (`__pkvm_teardown_vm`).
    /// `x1` = pfn, `x2` = nr.
    HostShareHypRange = 26,
    /// `x1` = pfn, `x2` = nr.
    HostUnshareHypRange = 27,
    /// `x1` = pfn, `x2` = nr.
    HostDonateHyp = 28,
    /// `x1` = pfn, `x2` = nr. Only pages the host donated with
    /// [`Func::HostDonateHyp`] come back.
    HypDonateHost = 29,
    /// `x1` = pfn, `x2` = nr. Test calls only.
    HypPin = 30,
    /// `x1` = pfn, `x2` = nr. Test calls only.
    HypUnpin = 31,
    /// `x1` = [`GuestCreateArgs`] word, `x2` = pool pfn, `x3` = pool pages.
    /// Returns the guest handle in `x2`.
    GuestCreate = 32,
    /// `x1` = handle.
    GuestTeardown = 33,
    /// `x1` = handle: the guest has run (RIPAS is frozen).
    GuestRun = 34,
    /// `x1` = handle, `x2` = ipa, `x3` = size.
    GuestInitRipas = 35,
    /// `x1` = handle, `x2` = pfn, `x3` = gfn, `x4` = nr.
    HostDonateGuest = 36,
    /// `x1` = handle, `x2` = pfn, `x3` = gfn, `x4` = nr.
    HostShareGuest = 37,
    /// `x1` = handle, `x2` = gfn, `x3` = nr.
    HostUnshareGuest = 38,
    /// `x1` = handle, `x2` = gfn, `x3` = nr. Test calls only.
    GuestShareHost = 39,
    /// `x1` = handle, `x2` = gfn, `x3` = nr. Test calls only.
    GuestUnshareHost = 40,
    /// `x1` = handle, `x2` = gfn, `x3` = nr. Test calls only.
    GuestRelinquish = 41,
    /// `x1` = pa. Returns a [`PageReport`] in `x2..x3`.
    PageQuery = 42,
    /// Returns [`Counters`] in `x2..x7`.
    CountersQuery = 43,
    /// `x1` = handle, `x2` = gfn. Returns a [`GuestPageReport`] in `x2..x3`.
    GuestPageQuery = 44,
    /// Returns pages of RAM by owner: `x2` host, `x3` host and lent, `x4`
    /// hyp, `x5` guests, `x6` lent to the host by guests.
    OwnershipQuery = 45,
    /// `x1` = n: the n-th allocation point from now fails (0 disarms).
    /// Test calls only.
    FailAllocation = 46,
    /// Debug kernels with the ghost checker only (`NOT_SUPPORTED`
    /// otherwise). `x1` = 0: returns its figures in `x2..x5` (calls
    /// compared page by page, refused on their arguments, too big to
    /// compare, aliased). `x1` = 1 (test calls only): the same, and the
    /// next compared call is made to look wrong, to prove that a mismatch
    /// stops the hyp and reaches the host's log.
    GhostCheck = 47,
}

/// [`Func::ALL`] indexed by function number.
const FUNC_BY_NUMBER: [Option<Func>; Func::GhostCheck as usize + 1] = {
    let mut table = [None; Func::GhostCheck as usize + 1];
    let mut i = 0;
    while i < Func::ALL.len() {
        table[Func::ALL[i] as usize] = Some(Func::ALL[i]);
        i += 1;
    }
    table
};

impl Func {
    /// Every function, for tables and tests.
    pub const ALL: [Func; 24] = [
        Func::HostShareHyp,
        Func::HostUnshareHyp,
        Func::HostShareHypRange,
        Func::HostUnshareHypRange,
        Func::HostDonateHyp,
        Func::HypDonateHost,
        Func::HypPin,
        Func::HypUnpin,
        Func::GuestCreate,
        Func::GuestTeardown,
        Func::GuestRun,
        Func::GuestInitRipas,
        Func::HostDonateGuest,
        Func::HostShareGuest,
        Func::HostUnshareGuest,
        Func::GuestShareHost,
        Func::GuestUnshareHost,
        Func::GuestRelinquish,
        Func::PageQuery,
        Func::CountersQuery,
        Func::GuestPageQuery,
        Func::OwnershipQuery,
        Func::FailAllocation,
        Func::GhostCheck,
    ];

    /// The full SMCCC function ID the host puts in `x0`.
    #[must_use]
    pub const fn id(self) -> u64 {
        HOST_SMCCC_BASE | self as u64
    }

    /// The function for a function number.
    ///
    /// A table lookup rather than a search of [`Func::ALL`]: every host
    /// hypercall, s2rmap's or not, asks this first, so the IDs that are
    /// not s2rmap's (`__kvm_vcpu_run` among them) must be turned away at
    /// once.
    #[must_use]
    #[inline]
    pub fn from_number(n: u64) -> Option<Self> {
        usize::try_from(n).ok().and_then(|n| FUNC_BY_NUMBER.get(n).copied().flatten())
    }

    /// The C name of the function number.
    #[must_use]
    pub const fn c_name(self) -> &'static str {
        match self {
            Func::HostShareHyp => "S2RMAP_FN_HOST_SHARE_HYP",
            Func::HostUnshareHyp => "S2RMAP_FN_HOST_UNSHARE_HYP",
            Func::HostShareHypRange => "S2RMAP_FN_HOST_SHARE_HYP_RANGE",
            Func::HostUnshareHypRange => "S2RMAP_FN_HOST_UNSHARE_HYP_RANGE",
            Func::HostDonateHyp => "S2RMAP_FN_HOST_DONATE_HYP",
            Func::HypDonateHost => "S2RMAP_FN_HYP_DONATE_HOST",
            Func::HypPin => "S2RMAP_FN_HYP_PIN",
            Func::HypUnpin => "S2RMAP_FN_HYP_UNPIN",
            Func::GuestCreate => "S2RMAP_FN_GUEST_CREATE",
            Func::GuestTeardown => "S2RMAP_FN_GUEST_TEARDOWN",
            Func::GuestRun => "S2RMAP_FN_GUEST_RUN",
            Func::GuestInitRipas => "S2RMAP_FN_GUEST_INIT_RIPAS",
            Func::HostDonateGuest => "S2RMAP_FN_HOST_DONATE_GUEST",
            Func::HostShareGuest => "S2RMAP_FN_HOST_SHARE_GUEST",
            Func::HostUnshareGuest => "S2RMAP_FN_HOST_UNSHARE_GUEST",
            Func::GuestShareHost => "S2RMAP_FN_GUEST_SHARE_HOST",
            Func::GuestUnshareHost => "S2RMAP_FN_GUEST_UNSHARE_HOST",
            Func::GuestRelinquish => "S2RMAP_FN_GUEST_RELINQUISH",
            Func::PageQuery => "S2RMAP_FN_PAGE_QUERY",
            Func::CountersQuery => "S2RMAP_FN_COUNTERS_QUERY",
            Func::GuestPageQuery => "S2RMAP_FN_GUEST_PAGE_QUERY",
            Func::OwnershipQuery => "S2RMAP_FN_OWNERSHIP_QUERY",
            Func::FailAllocation => "S2RMAP_FN_FAIL_ALLOCATION",
            Func::GhostCheck => "S2RMAP_FN_GHOST_CHECK",
        }
    }
}

/// The word `x1` of [`Func::GuestCreate`]: bits \[7:0\] the IPA size,
/// bits \[63:8\] flags. Flags outside [`GuestCreateArgs::PERMITTED_FLAGS`]
/// are filtered out, never acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestCreateArgs {
    pub ipa_bits: u8,
    pub flags: u64,
}

impl GuestCreateArgs {
    /// Flags the host may set. None are defined yet, so every flag bit the
    /// host sets is dropped.
    pub const PERMITTED_FLAGS: u64 = 0;

    /// Decodes and filters the word.
    #[must_use]
    pub const fn from_word(word: u64) -> Self {
        Self { ipa_bits: (word & 0xff) as u8, flags: (word >> 8) & Self::PERMITTED_FLAGS }
    }
}

/// Page states as the ABI encodes them (one byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AbiPageState {
    Owned = 0,
    SharedOwned = 1,
    SharedBorrowed = 2,
    NoPage = 3,
}

impl From<ownership::PageState> for AbiPageState {
    fn from(s: ownership::PageState) -> Self {
        match s {
            ownership::PageState::Owned => Self::Owned,
            ownership::PageState::SharedOwned => Self::SharedOwned,
            ownership::PageState::SharedBorrowed => Self::SharedBorrowed,
            ownership::PageState::NoPage => Self::NoPage,
        }
    }
}

/// `owner` value of a page the host borrows (its owner is recorded by the
/// lender).
pub const OWNER_LENDER: u32 = u32::MAX;

/// What [`Func::PageQuery`] returns in `x2..x3` (little-endian, as the
/// structure lies in memory).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PageReport {
    /// Owner ID (0 host, 1 hyp, guests from 2), or [`OWNER_LENDER`].
    pub owner: u32,
    /// [`AbiPageState`] of the host.
    pub host_state: u8,
    /// [`AbiPageState`] of the hyp.
    pub hyp_state: u8,
    /// 1 if the host stage-2 translates the page now.
    pub mapped: u8,
    pub reserved: u8,
    /// Hyp pins.
    pub pins: u32,
    /// Guest mappings borrowing the page.
    pub guest_shares: u32,
}

assert_eq_size!(PageReport, [u64; 2]);
const_assert_eq!(core::mem::offset_of!(PageReport, owner), 0);
const_assert_eq!(core::mem::offset_of!(PageReport, host_state), 4);
const_assert_eq!(core::mem::offset_of!(PageReport, hyp_state), 5);
const_assert_eq!(core::mem::offset_of!(PageReport, mapped), 6);
const_assert_eq!(core::mem::offset_of!(PageReport, reserved), 7);
const_assert_eq!(core::mem::offset_of!(PageReport, pins), 8);
const_assert_eq!(core::mem::offset_of!(PageReport, guest_shares), 12);

impl PageReport {
    /// The two registers that carry the report.
    #[must_use]
    pub fn to_regs(&self) -> [u64; 2] {
        [
            u64::from(self.owner)
                | u64::from(self.host_state) << 32
                | u64::from(self.hyp_state) << 40
                | u64::from(self.mapped) << 48
                | u64::from(self.reserved) << 56,
            u64::from(self.pins) | u64::from(self.guest_shares) << 32,
        ]
    }

    /// The report the two registers carry.
    #[must_use]
    pub fn from_regs(r: [u64; 2]) -> Self {
        Self {
            owner: r[0] as u32,
            host_state: (r[0] >> 32) as u8,
            hyp_state: (r[0] >> 40) as u8,
            mapped: (r[0] >> 48) as u8,
            reserved: (r[0] >> 56) as u8,
            pins: r[1] as u32,
            guest_shares: (r[1] >> 32) as u32,
        }
    }
}

/// What [`Func::GuestPageQuery`] returns in `x2..x3`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct GuestPageReport {
    /// Physical address mapped, or 0.
    pub pa: u64,
    /// [`AbiPageState`] of the guest.
    pub state: u8,
    /// 1 for RIPAS RAM.
    pub ripas_ram: u8,
    /// 1 once the guest has run.
    pub running: u8,
    pub reserved: [u8; 5],
}

assert_eq_size!(GuestPageReport, [u64; 2]);
const_assert_eq!(core::mem::offset_of!(GuestPageReport, pa), 0);
const_assert_eq!(core::mem::offset_of!(GuestPageReport, state), 8);
const_assert_eq!(core::mem::offset_of!(GuestPageReport, ripas_ram), 9);
const_assert_eq!(core::mem::offset_of!(GuestPageReport, running), 10);
const_assert_eq!(core::mem::offset_of!(GuestPageReport, reserved), 11);

impl GuestPageReport {
    #[must_use]
    pub fn to_regs(&self) -> [u64; 2] {
        [
            self.pa,
            u64::from(self.state) | u64::from(self.ripas_ram) << 8 | u64::from(self.running) << 16,
        ]
    }

    #[must_use]
    pub fn from_regs(r: [u64; 2]) -> Self {
        Self {
            pa: r[0],
            state: r[1] as u8,
            ripas_ram: (r[1] >> 8) as u8,
            running: (r[1] >> 16) as u8,
            reserved: [0; 5],
        }
    }
}

/// What [`Func::CountersQuery`] returns in `x2..x7`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Counters {
    /// Host stage-2 table pages in use, the root included.
    pub table_pages: u64,
    /// Non-zero leaf descriptors of the host stage-2 at levels 0-3.
    pub leaves: [u64; 4],
    /// Host stage-2 faults handled since boot.
    pub host_faults: u64,
}

assert_eq_size!(Counters, [u64; 6]);
const_assert_eq!(core::mem::offset_of!(Counters, table_pages), 0);
const_assert_eq!(core::mem::offset_of!(Counters, leaves), 8);
const_assert_eq!(core::mem::offset_of!(Counters, host_faults), 40);

impl Counters {
    #[must_use]
    pub fn to_regs(&self) -> [u64; 6] {
        [
            self.table_pages,
            self.leaves[0],
            self.leaves[1],
            self.leaves[2],
            self.leaves[3],
            self.host_faults,
        ]
    }

    #[must_use]
    pub fn from_regs(r: [u64; 6]) -> Self {
        Self { table_pages: r[0], leaves: [r[1], r[2], r[3], r[4]], host_faults: r[5] }
    }
}
