// SPDX-License-Identifier: GPL-2.0-only
/*
 * s2rmap host-side selftests.
 *
 * Runs after pKVM has finalised: attempts illegal ownership transitions
 * through the s2rmap hypercalls and checks, for each, the errno and that
 * the page's ownership (read back with the page-query hypercall) did not
 * change. Prints KTAP through the kernel log; loading fails if any test
 * fails.
 *
 * It also donates one page to the hypervisor and leaves it there, and
 * publishes its physical address in /sys/kernel/debug/s2rmap/donated_pa,
 * so that a user program can try to read it through /dev/mem and take a
 * SIGBUS.
 */
#define pr_fmt(fmt) fmt

#include <linux/arm-smccc.h>
#include <linux/debugfs.h>
#include <linux/gfp.h>
#include <linux/kernel.h>
#include <linux/ioport.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/string.h>

#include "s2rmap_abi.h"

#define UART_PFN	0x9000UL	/* QEMU virt's PL011: MMIO */

static int tests_run, tests_failed;
static struct page *donated;
static u64 donated_pa;
static struct dentry *dir;

struct s2_ret {
	unsigned long a0, a1, a2, a3;
};

/* Issues an s2rmap hypercall; returns 0, a negative errno, or -EOPNOTSUPP. */
static long s2_call(u32 fn, u64 a1, u64 a2, u64 a3, u64 a4, struct s2_ret *out)
{
	struct arm_smccc_res res;

	arm_smccc_1_1_hvc(S2RMAP_FN_ID(fn), a1, a2, a3, a4, &res);
	if (out) {
		out->a0 = res.a0;
		out->a1 = res.a1;
		out->a2 = res.a2;
		out->a3 = res.a3;
	}
	if (res.a0 == SMCCC_RET_NOT_SUPPORTED)
		return -EOPNOTSUPP;
	return (long)res.a1;
}

static int page_state(u64 pa, struct s2rmap_page_report *r)
{
	struct s2_ret ret;
	u64 regs[2];
	long err = s2_call(S2RMAP_FN_PAGE_QUERY, pa, 0, 0, 0, &ret);

	if (err)
		return err;
	regs[0] = ret.a2;
	regs[1] = ret.a3;
	memcpy(r, regs, sizeof(*r));
	return 0;
}

static void result(bool ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	tests_run++;
	if (!ok) {
		char msg[160];

		tests_failed++;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		pr_info("    # %s: %s\n", name, msg);
	}
	pr_info("    %sok %d - %s\n", ok ? "" : "not ", tests_run, name);
}

/*
 * One refused call: it must return @want and leave the page at @pa exactly
 * as it was.
 */
static void expect_refused(const char *name, long got, long want, u64 pa,
			   const struct s2rmap_page_report *before)
{
	struct s2rmap_page_report after;
	int err = page_state(pa, &after);

	if (got != want) {
		result(false, name, "returned %ld, expected %ld", got, want);
		return;
	}
	if (err) {
		result(false, name, "page query failed: %d", err);
		return;
	}
	if (memcmp(before, &after, sizeof(after))) {
		result(false, name,
		       "state changed: owner %u/%u host %u/%u hyp %u/%u pins %u/%u",
		       before->owner, after.owner, before->host_state,
		       after.host_state, before->hyp_state, after.hyp_state,
		       before->pins, after.pins);
		return;
	}
	result(true, name, NULL);
}

/* The last page of the RAM region holding @pfn. */
static u64 last_ram_pfn(u64 pfn)
{
	while (page_is_ram(pfn + PTRS_PER_PTE))
		pfn += PTRS_PER_PTE;
	while (page_is_ram(pfn + 1))
		pfn++;
	return pfn;
}

static bool state_is(u64 pa, u32 owner, u8 host, u8 hyp)
{
	struct s2rmap_page_report r;

	return !page_state(pa, &r) && r.owner == owner &&
	       r.host_state == host && r.hyp_state == hyp;
}

static void run_tests(void)
{
	struct page *page = alloc_page(GFP_KERNEL | __GFP_ZERO);
	struct page *hyp_page = alloc_page(GFP_KERNEL | __GFP_ZERO);
	struct s2rmap_page_report before;
	u64 pa, pfn, hyp_pa, hyp_pfn, last_pfn;
	long ret;

	if (!page || !hyp_page) {
		result(false, "allocate test pages", "out of memory");
		goto out;
	}
	pa = page_to_phys(page);
	pfn = pa >> PAGE_SHIFT;
	hyp_pa = page_to_phys(hyp_page);
	hyp_pfn = hyp_pa >> PAGE_SHIFT;
	last_pfn = last_ram_pfn(pfn);

	/* A legal share, then the same share again. */
	ret = s2_call(S2RMAP_FN_HOST_SHARE_HYP, pfn, 0, 0, 0, NULL);
	result(!ret && state_is(pa, S2RMAP_OWNER_HOST, S2RMAP_STATE_SHARED_OWNED,
				S2RMAP_STATE_SHARED_BORROWED),
	       "share_hyp", "returned %ld", ret);
	page_state(pa, &before);
	expect_refused("double_share", s2_call(S2RMAP_FN_HOST_SHARE_HYP, pfn, 0, 0, 0, NULL),
		       -EPERM, pa, &before);

	/* A shared page can never be donated. */
	expect_refused("donate_shared_page",
		       s2_call(S2RMAP_FN_HOST_DONATE_HYP, pfn, 1, 0, 0, NULL),
		       -EPERM, pa, &before);

	/* Pinned by the hyp: unsharing is EBUSY until unpinned. */
	ret = s2_call(S2RMAP_FN_HYP_PIN, pfn, 1, 0, 0, NULL);
	result(!ret, "pin", "returned %ld", ret);
	page_state(pa, &before);
	expect_refused("unshare_while_pinned",
		       s2_call(S2RMAP_FN_HOST_UNSHARE_HYP, pfn, 0, 0, 0, NULL),
		       -EBUSY, pa, &before);
	ret = s2_call(S2RMAP_FN_HYP_UNPIN, pfn, 1, 0, 0, NULL);
	result(!ret, "unpin", "returned %ld", ret);
	ret = s2_call(S2RMAP_FN_HOST_UNSHARE_HYP, pfn, 0, 0, 0, NULL);
	result(!ret && state_is(pa, S2RMAP_OWNER_HOST, S2RMAP_STATE_OWNED,
				S2RMAP_STATE_NOPAGE),
	       "unshare_hyp", "returned %ld", ret);

	/* Unshare of a page that is not shared. */
	page_state(pa, &before);
	expect_refused("unshare_not_shared",
		       s2_call(S2RMAP_FN_HOST_UNSHARE_HYP, pfn, 0, 0, 0, NULL),
		       -EPERM, pa, &before);

	/* A hyp-owned page can be neither donated nor shared again. */
	ret = s2_call(S2RMAP_FN_HOST_DONATE_HYP, hyp_pfn, 1, 0, 0, NULL);
	result(!ret && state_is(hyp_pa, S2RMAP_OWNER_HYP, S2RMAP_STATE_NOPAGE,
				S2RMAP_STATE_OWNED),
	       "donate_hyp", "returned %ld", ret);
	page_state(hyp_pa, &before);
	expect_refused("share_hyp_owned_page",
		       s2_call(S2RMAP_FN_HOST_SHARE_HYP, hyp_pfn, 0, 0, 0, NULL),
		       -EPERM, hyp_pa, &before);
	expect_refused("donate_hyp_owned_page",
		       s2_call(S2RMAP_FN_HOST_DONATE_HYP, hyp_pfn, 1, 0, 0, NULL),
		       -EPERM, hyp_pa, &before);

	/* hyp_donate_host of a page the host already owns. */
	page_state(pa, &before);
	expect_refused("hyp_donate_host_of_host_page",
		       s2_call(S2RMAP_FN_HYP_DONATE_HOST, pfn, 1, 0, 0, NULL),
		       -EPERM, pa, &before);

	/* MMIO is never donated or shared. */
	page_state(UART_PFN << PAGE_SHIFT, &before);
	expect_refused("donate_mmio",
		       s2_call(S2RMAP_FN_HOST_DONATE_HYP, UART_PFN, 1, 0, 0, NULL),
		       -EPERM, UART_PFN << PAGE_SHIFT, &before);
	expect_refused("share_mmio",
		       s2_call(S2RMAP_FN_HOST_SHARE_HYP, UART_PFN, 0, 0, 0, NULL),
		       -EPERM, UART_PFN << PAGE_SHIFT, &before);

	/* Just past the end of RAM, and the last page of RAM with nr = 2. */
	page_state((last_pfn + 1) << PAGE_SHIFT, &before);
	expect_refused("pfn_outside_memory",
		       s2_call(S2RMAP_FN_HOST_DONATE_HYP, last_pfn + 1, 1, 0, 0, NULL),
		       -EPERM, (last_pfn + 1) << PAGE_SHIFT, &before);
	page_state(last_pfn << PAGE_SHIFT, &before);
	expect_refused("range_runs_past_memory",
		       s2_call(S2RMAP_FN_HOST_DONATE_HYP, last_pfn, 2, 0, 0, NULL),
		       -EPERM, last_pfn << PAGE_SHIFT, &before);

	/* pfn + nr overflows; nr = 0; nr beyond the per-call limit. */
	page_state(pa, &before);
	expect_refused("pfn_plus_nr_overflow",
		       s2_call(S2RMAP_FN_HOST_DONATE_HYP, ~0ULL - 1, 4, 0, 0, NULL),
		       -EINVAL, pa, &before);
	expect_refused("nr_zero",
		       s2_call(S2RMAP_FN_HOST_DONATE_HYP, pfn, 0, 0, 0, NULL),
		       -EINVAL, pa, &before);
	expect_refused("nr_too_large",
		       s2_call(S2RMAP_FN_HOST_DONATE_HYP, pfn,
			       S2RMAP_MAX_PAGES_PER_CALL + 1, 0, 0, NULL),
		       -EINVAL, pa, &before);

	/* Give the hyp page back: the only legal reclaim. */
	ret = s2_call(S2RMAP_FN_HYP_DONATE_HOST, hyp_pfn, 1, 0, 0, NULL);
	result(!ret && state_is(hyp_pa, S2RMAP_OWNER_HOST, S2RMAP_STATE_OWNED,
				S2RMAP_STATE_NOPAGE),
	       "hyp_donate_host", "returned %ld", ret);

out:
	if (page)
		__free_page(page);
	if (hyp_page)
		__free_page(hyp_page);
}

#define GUEST_IPA_BITS	40
#define GUEST_TOP_GFN	(1UL << (GUEST_IPA_BITS - 1 - PAGE_SHIFT))
#define GUEST_POOL_ORDER	6	/* 64 pages of stage-2 tables */

/* Protected guests: wrong halves, RIPAS after run, teardown with shares. */
static void run_guest_tests(void)
{
	struct page *pool = alloc_pages(GFP_KERNEL | __GFP_ZERO, GUEST_POOL_ORDER);
	struct page *shared = alloc_page(GFP_KERNEL | __GFP_ZERO);
	struct page *given = alloc_page(GFP_KERNEL | __GFP_ZERO);
	struct s2rmap_page_report before;
	u64 pool_pfn, shared_pa, given_pa;
	struct s2_ret ret;
	long err;
	u64 h;

	if (!pool || !shared || !given) {
		result(false, "allocate guest test pages", "out of memory");
		goto out;
	}
	pool_pfn = page_to_pfn(pool);
	shared_pa = page_to_phys(shared);
	given_pa = page_to_phys(given);

	err = s2_call(S2RMAP_FN_GUEST_CREATE, GUEST_IPA_BITS, pool_pfn,
		      1UL << GUEST_POOL_ORDER, 0, &ret);
	h = ret.a2;
	result(!err && state_is(PFN_PHYS(pool_pfn), S2RMAP_OWNER_HYP,
				S2RMAP_STATE_NOPAGE, S2RMAP_STATE_OWNED),
	       "guest_create", "returned %ld", err);
	if (err)
		goto out;

	/* The guest's table pool is the hyp's: the host cannot reclaim it. */
	page_state(PFN_PHYS(pool_pfn), &before);
	expect_refused("reclaim_guest_table_pool",
		       s2_call(S2RMAP_FN_HYP_DONATE_HOST, pool_pfn, 1, 0, 0, NULL),
		       -EPERM, PFN_PHYS(pool_pfn), &before);

	/* Donations go to the protected half, shares to the unprotected one. */
	page_state(given_pa, &before);
	expect_refused("donate_into_unprotected_half",
		       s2_call(S2RMAP_FN_HOST_DONATE_GUEST, h, PHYS_PFN(given_pa),
			       GUEST_TOP_GFN, 1, NULL),
		       -EINVAL, given_pa, &before);
	expect_refused("donate_straddling_halves",
		       s2_call(S2RMAP_FN_HOST_DONATE_GUEST, h, PHYS_PFN(given_pa),
			       GUEST_TOP_GFN - 1, 2, NULL),
		       -EINVAL, given_pa, &before);
	page_state(shared_pa, &before);
	expect_refused("share_into_protected_half",
		       s2_call(S2RMAP_FN_HOST_SHARE_GUEST, h, PHYS_PFN(shared_pa), 0x10, 1, NULL),
		       -EINVAL, shared_pa, &before);
	expect_refused("donate_mmio_to_guest",
		       s2_call(S2RMAP_FN_HOST_DONATE_GUEST, h, UART_PFN, 0x10, 1, NULL),
		       -EPERM, shared_pa, &before);

	/* RIPAS can be set up before the guest runs, never after. */
	err = s2_call(S2RMAP_FN_GUEST_INIT_RIPAS, h, 0, 0x200000, 0, NULL);
	result(!err, "init_ripas_before_run", "returned %ld", err);
	err = s2_call(S2RMAP_FN_GUEST_INIT_RIPAS, h, ~0UL & PAGE_MASK, 2 * PAGE_SIZE, 0, NULL);
	result(err == -EINVAL, "init_ripas_wrapping", "returned %ld", err);
	err = s2_call(S2RMAP_FN_GUEST_INIT_RIPAS, h, 0, 0, 0, NULL);
	result(!err, "init_ripas_size_zero", "returned %ld", err);

	err = s2_call(S2RMAP_FN_HOST_DONATE_GUEST, h, PHYS_PFN(given_pa), 0x10, 1, NULL);
	result(!err && state_is(given_pa, h, S2RMAP_STATE_NOPAGE, S2RMAP_STATE_NOPAGE),
	       "donate_guest", "returned %ld", err);
	err = s2_call(S2RMAP_FN_HOST_SHARE_GUEST, h, PHYS_PFN(shared_pa), GUEST_TOP_GFN, 1, NULL);
	result(!err && state_is(shared_pa, S2RMAP_OWNER_HOST, S2RMAP_STATE_SHARED_OWNED,
				S2RMAP_STATE_NOPAGE),
	       "share_guest", "returned %ld", err);
	page_state(shared_pa, &before);
	expect_refused("donate_page_shared_with_guest",
		       s2_call(S2RMAP_FN_HOST_DONATE_HYP, PHYS_PFN(shared_pa), 1, 0, 0, NULL),
		       -EPERM, shared_pa, &before);

	err = s2_call(S2RMAP_FN_GUEST_RUN, h, 0, 0, 0, NULL);
	result(!err, "guest_run", "returned %ld", err);
	page_state(given_pa, &before);
	expect_refused("init_ripas_after_run",
		       s2_call(S2RMAP_FN_GUEST_INIT_RIPAS, h, 0, PAGE_SIZE, 0, NULL),
		       -EPERM, given_pa, &before);

	/* Teardown with a share outstanding gives everything back. */
	err = s2_call(S2RMAP_FN_GUEST_TEARDOWN, h, 0, 0, 0, NULL);
	result(!err && state_is(given_pa, S2RMAP_OWNER_HOST, S2RMAP_STATE_OWNED,
				S2RMAP_STATE_NOPAGE) &&
	       state_is(shared_pa, S2RMAP_OWNER_HOST, S2RMAP_STATE_OWNED,
			S2RMAP_STATE_NOPAGE) &&
	       state_is(PFN_PHYS(pool_pfn), S2RMAP_OWNER_HOST, S2RMAP_STATE_OWNED,
			S2RMAP_STATE_NOPAGE),
	       "teardown_with_shares_outstanding", "returned %ld", err);
	page_state(given_pa, &before);
	expect_refused("donate_to_torn_down_guest",
		       s2_call(S2RMAP_FN_HOST_DONATE_GUEST, h, PHYS_PFN(given_pa), 0x10, 1, NULL),
		       -ENOENT, given_pa, &before);

out:
	if (pool)
		__free_pages(pool, GUEST_POOL_ORDER);
	if (shared)
		__free_page(shared);
	if (given)
		__free_page(given);
}

/* Donates one page and leaves it with the hyp, for the SIGBUS test. */
static int donate_for_sigbus(void)
{
	long ret;

	donated = alloc_page(GFP_KERNEL | __GFP_ZERO);
	if (!donated)
		return -ENOMEM;
	donated_pa = page_to_phys(donated);
	ret = s2_call(S2RMAP_FN_HOST_DONATE_HYP, donated_pa >> PAGE_SHIFT, 1, 0, 0, NULL);
	result(!ret, "donate_page_for_devmem_test", "returned %ld", ret);
	if (ret) {
		__free_page(donated);
		donated = NULL;
		return ret;
	}
	dir = debugfs_create_dir("s2rmap", NULL);
	debugfs_create_x64("donated_pa", 0444, dir, &donated_pa);
	return 0;
}

/* Removes the debugfs file and takes the donated page back, if there is one. */
static void undo_donate_for_sigbus(void)
{
	debugfs_remove_recursive(dir);
	dir = NULL;
	if (donated && !s2_call(S2RMAP_FN_HYP_DONATE_HOST, donated_pa >> PAGE_SHIFT, 1,
				0, 0, NULL))
		__free_page(donated);
	donated = NULL;
}

static int __init s2rmap_selftest_init(void)
{
	pr_info("    KTAP version 1\n");
	pr_info("    # Subtest: s2rmap_selftest\n");
	run_tests();
	run_guest_tests();
	donate_for_sigbus();
	pr_info("    1..%d\n", tests_run);
	pr_info("# s2rmap_selftest: %d passed, %d failed\n",
		tests_run - tests_failed, tests_failed);
	if (tests_failed) {
		/*
		 * The module is freed when its init fails: its debugfs file,
		 * which points at donated_pa, must not outlive it.
		 */
		undo_donate_for_sigbus();
		return -EINVAL;
	}
	return 0;
}

static void __exit s2rmap_selftest_exit(void)
{
	undo_donate_for_sigbus();
}

module_init(s2rmap_selftest_init);
module_exit(s2rmap_selftest_exit);
MODULE_DESCRIPTION("s2rmap host-side selftests");
MODULE_LICENSE("GPL");
