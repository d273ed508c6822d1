/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * s2rmap host hypercall ABI.
 *
 * Generated from hypercalls/src/abi.rs by
 * `cargo run -p hypercalls --example gen-header`; do not edit.
 */
#ifndef __S2RMAP_ABI_H__
#define __S2RMAP_ABI_H__

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/stddef.h>
#else
#include <linux/types.h>
#include <stddef.h>
#endif

#define S2RMAP_HOST_SMCCC_BASE	0xc6000000UL
#define S2RMAP_FN_ID(fn)	(S2RMAP_HOST_SMCCC_BASE | (fn))
#define S2RMAP_MAX_PAGES_PER_CALL	262144UL
#define S2RMAP_OWNER_HOST	0U
#define S2RMAP_OWNER_HYP	1U
#define S2RMAP_OWNER_LENDER	0xffffffffU

#define S2RMAP_FN_HOST_SHARE_HYP	9
#define S2RMAP_FN_HOST_UNSHARE_HYP	10
#define S2RMAP_FN_HOST_SHARE_HYP_RANGE	26
#define S2RMAP_FN_HOST_UNSHARE_HYP_RANGE	27
#define S2RMAP_FN_HOST_DONATE_HYP	28
#define S2RMAP_FN_HYP_DONATE_HOST	29
#define S2RMAP_FN_HYP_PIN	30
#define S2RMAP_FN_HYP_UNPIN	31
#define S2RMAP_FN_GUEST_CREATE	32
#define S2RMAP_FN_GUEST_TEARDOWN	33
#define S2RMAP_FN_GUEST_RUN	34
#define S2RMAP_FN_GUEST_INIT_RIPAS	35
#define S2RMAP_FN_HOST_DONATE_GUEST	36
#define S2RMAP_FN_HOST_SHARE_GUEST	37
#define S2RMAP_FN_HOST_UNSHARE_GUEST	38
#define S2RMAP_FN_GUEST_SHARE_HOST	39
#define S2RMAP_FN_GUEST_UNSHARE_HOST	40
#define S2RMAP_FN_GUEST_RELINQUISH	41
#define S2RMAP_FN_PAGE_QUERY	42
#define S2RMAP_FN_COUNTERS_QUERY	43
#define S2RMAP_FN_GUEST_PAGE_QUERY	44
#define S2RMAP_FN_OWNERSHIP_QUERY	45
#define S2RMAP_FN_FAIL_ALLOCATION	46
#define S2RMAP_FN_GHOST_CHECK	47

#define S2RMAP_STATE_OWNED	0
#define S2RMAP_STATE_SHARED_OWNED	1
#define S2RMAP_STATE_SHARED_BORROWED	2
#define S2RMAP_STATE_NOPAGE	3

struct s2rmap_page_report {
	__u32 owner;
	__u8 host_state;
	__u8 hyp_state;
	__u8 mapped;
	__u8 reserved;
	__u32 pins;
	__u32 guest_shares;
};

_Static_assert(sizeof(struct s2rmap_page_report) == 16, "s2rmap_page_report size");
_Static_assert(offsetof(struct s2rmap_page_report, owner) == 0, "s2rmap_page_report.owner");
_Static_assert(offsetof(struct s2rmap_page_report, host_state) == 4, "s2rmap_page_report.host_state");
_Static_assert(offsetof(struct s2rmap_page_report, hyp_state) == 5, "s2rmap_page_report.hyp_state");
_Static_assert(offsetof(struct s2rmap_page_report, mapped) == 6, "s2rmap_page_report.mapped");
_Static_assert(offsetof(struct s2rmap_page_report, reserved) == 7, "s2rmap_page_report.reserved");
_Static_assert(offsetof(struct s2rmap_page_report, pins) == 8, "s2rmap_page_report.pins");
_Static_assert(offsetof(struct s2rmap_page_report, guest_shares) == 12, "s2rmap_page_report.guest_shares");

struct s2rmap_guest_page_report {
	__u64 pa;
	__u8 state;
	__u8 ripas_ram;
	__u8 running;
	__u8 reserved[5];
};

_Static_assert(sizeof(struct s2rmap_guest_page_report) == 16, "s2rmap_guest_page_report size");
_Static_assert(offsetof(struct s2rmap_guest_page_report, pa) == 0, "s2rmap_guest_page_report.pa");
_Static_assert(offsetof(struct s2rmap_guest_page_report, state) == 8, "s2rmap_guest_page_report.state");
_Static_assert(offsetof(struct s2rmap_guest_page_report, ripas_ram) == 9, "s2rmap_guest_page_report.ripas_ram");
_Static_assert(offsetof(struct s2rmap_guest_page_report, running) == 10, "s2rmap_guest_page_report.running");
_Static_assert(offsetof(struct s2rmap_guest_page_report, reserved) == 11, "s2rmap_guest_page_report.reserved");

struct s2rmap_counters {
	__u64 table_pages;
	__u64 leaves[4];
	__u64 host_faults;
};

_Static_assert(sizeof(struct s2rmap_counters) == 48, "s2rmap_counters size");
_Static_assert(offsetof(struct s2rmap_counters, table_pages) == 0, "s2rmap_counters.table_pages");
_Static_assert(offsetof(struct s2rmap_counters, leaves) == 8, "s2rmap_counters.leaves");
_Static_assert(offsetof(struct s2rmap_counters, host_faults) == 40, "s2rmap_counters.host_faults");

#endif /* __S2RMAP_ABI_H__ */
