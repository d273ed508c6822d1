// SPDX-License-Identifier: GPL-2.0-only
/*
 * s2rmap benchmark module: the cost of host ownership transitions, in
 * instructions, for stock pKVM and s2rmap alike.
 *
 * Boot QEMU with -icount shift=0,align=off: guest time then advances one
 * nanosecond per instruction, so the virtual counter measures
 * instructions whatever the host machine is doing. Each figure is the
 * median of ROUNDS rounds of REPS operations.
 *
 * Both kernels must answer the same function numbers: Linux 6.12's
 * __pkvm_host_share_hyp (9) and __pkvm_host_unshare_hyp (10), and
 * s2rmap's host_donate_hyp (28), hyp_donate_host (29) and counters (43),
 * which the stock kernel gets from a bench-only debug patch.
 *
 * The conversion is checked first: a loop of a known number of
 * instructions is timed with interrupts off ("BENCH calib_expected" and
 * "BENCH calib_measured").
 *
 * Output: one "BENCH <metric> <value>" line per figure, then
 * "BENCH done" (or "BENCH failed" after a "BENCH error" line).
 */
#include <linux/arm-smccc.h>
#include <linux/gfp.h>
#include <linux/ioport.h>
#include <linux/irqflags.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/sort.h>
#include <asm/arch_timer.h>

#include "s2rmap_abi.h"

#define REJECTED_ID	0xffff	/* an ID every hyp refuses at once */
#define ROUNDS		9
#define REPS		200
#define STORM		10000
#define FAULT_PAGES	64	/* pages whose entries are reset, then touched, per round */
#define CALIB_ITERS	1000000	/* iterations of a two-instruction loop */

static u64 cntfrq;

static u64 median(u64 *v);

static u64 now(void)
{
	isb();
	return read_sysreg(cntvct_el0);
}

/* Counter ticks to nanoseconds, = instructions with icount shift=0. */
static u64 to_insns(u64 ticks)
{
	return div64_u64(ticks * NSEC_PER_SEC, cntfrq);
}

/* Exactly 2 * @n instructions (subs, b.ne), plus the call. */
static noinline void spin(u64 n)
{
	asm volatile("1:	subs	%0, %0, #1\n"
		     "	b.ne	1b\n"
		     : "+r"(n) : : "cc");
}

/* The known-length loop, timed with interrupts off; median of ROUNDS. */
static u64 calibrate(void)
{
	u64 rounds[ROUNDS];
	unsigned long flags;
	int r;

	for (r = 0; r < ROUNDS; r++) {
		u64 start;

		local_irq_save(flags);
		start = now();
		spin(CALIB_ITERS);
		rounds[r] = to_insns(now() - start);
		local_irq_restore(flags);
	}
	return median(rounds);
}

static unsigned long hvc(u32 fn, u64 a1, u64 a2, struct arm_smccc_res *res)
{
	arm_smccc_1_1_hvc(S2RMAP_FN_ID(fn), a1, a2, res);
	return res->a1;
}

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

static u64 median(u64 *v)
{
	sort(v, ROUNDS, sizeof(*v), cmp_u64, NULL);
	return v[ROUNDS / 2];
}

/* Instructions per call of @op(@arg), median over ROUNDS rounds. */
static u64 measure(void (*op)(u64 arg), u64 arg)
{
	u64 rounds[ROUNDS];
	int r, i;

	for (r = 0; r < ROUNDS; r++) {
		u64 start = now();

		for (i = 0; i < REPS; i++)
			op(arg);
		rounds[r] = to_insns(now() - start) / REPS;
	}
	return median(rounds);
}

static void op_empty(u64 unused)
{
}

static void op_floor(u64 unused)
{
	struct arm_smccc_res res;

	arm_smccc_1_1_hvc(S2RMAP_FN_ID(REJECTED_ID), 0, &res);
}

static bool failed;

static void check(unsigned long ret, const char *what)
{
	if (ret && !failed) {
		pr_err("BENCH error %s returned %ld\n", what, (long)ret);
		failed = true;
	}
}

static void op_share_unshare(u64 pfn)
{
	struct arm_smccc_res res;

	check(hvc(S2RMAP_FN_HOST_SHARE_HYP, pfn, 0, &res), "share");
	check(hvc(S2RMAP_FN_HOST_UNSHARE_HYP, pfn, 0, &res), "unshare");
}

static u64 donate_pages;

static void op_donate_reclaim(u64 pfn)
{
	struct arm_smccc_res res;

	check(hvc(S2RMAP_FN_HOST_DONATE_HYP, pfn, donate_pages, &res), "donate");
	check(hvc(S2RMAP_FN_HYP_DONATE_HOST, pfn, donate_pages, &res), "reclaim");
}

static void counters(u64 *table_pages, u64 *faults)
{
	struct arm_smccc_1_2_regs args = { .a0 = S2RMAP_FN_ID(S2RMAP_FN_COUNTERS_QUERY) };
	struct arm_smccc_1_2_regs res;

	arm_smccc_1_2_hvc(&args, &res);
	*table_pages = res.a1 ? 0 : res.a2;
	*faults = res.a1 ? 0 : res.a7;
}

/* Reads one word of each of the @n pages at @p; returns instructions taken. */
static u64 touch(u8 *p, int n)
{
	u64 start = now();
	int i;

	for (i = 0; i < n; i++)
		(void)READ_ONCE(*(u64 *)(p + i * PAGE_SIZE));
	return to_insns(now() - start);
}

/*
 * Host stage-2 faults: reset the entries of FAULT_PAGES pages (one
 * donate + reclaim each), then touch them. The faults this takes are
 * counted by the counters hypercall; the cost per fault is the time of the
 * touch loop, less the same loop over mapped pages, over the faults taken.
 * Median of ROUNDS rounds. @faults_taken: faults of the last round.
 */
static u64 host_fault(struct page *pages, u64 *faults_taken)
{
	u8 *p = page_address(pages);
	u64 rounds[ROUNDS], unused;
	int r, i;

	donate_pages = 1;
	for (r = 0; r < ROUNDS; r++) {
		u64 f0, f1, cold, warm;

		for (i = 0; i < FAULT_PAGES; i++)
			op_donate_reclaim(page_to_pfn(pages) + i);
		counters(&unused, &f0);
		cold = touch(p, FAULT_PAGES);
		counters(&unused, &f1);
		warm = touch(p, FAULT_PAGES);
		*faults_taken = f1 - f0;
		rounds[r] = f1 > f0 ? (cold - min(warm, cold)) / (f1 - f0) : 0;
	}
	return median(rounds);
}

/* A fixed xorshift64 sequence, so both kernels share the same storm. */
static u64 rng_state = 0x5eed5eed5eed5eedULL;

static u64 rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static u64 ram_first = ULLONG_MAX, ram_end;

/* The pfns from the first to the last top-level "System RAM" resource. */
static void ram_range(void)
{
	struct resource *r;

	for (r = iomem_resource.child; r; r = r->sibling) {
		if ((r->flags & IORESOURCE_SYSTEM_RAM) != IORESOURCE_SYSTEM_RAM)
			continue;
		ram_first = min_t(u64, ram_first, PFN_UP(r->start));
		ram_end = max_t(u64, ram_end, PFN_DOWN(r->end + 1));
	}
}

/*
 * Shares STORM distinct pages at random pfns of RAM with the hyp (pages
 * the host does not own, or already shared, are refused and skipped),
 * reads the table pages, unshares them all, reads again.
 */
static void storm(u64 *pages_storm, u64 *pages_after)
{
	u64 *pfns = vmalloc(array_size(STORM, sizeof(*pfns)));
	struct arm_smccc_res res;
	int shared = 0, tries = 0, i;
	u64 unused;

	ram_range();
	if (!pfns || ram_end <= ram_first) {
		pr_err("BENCH error storm: no memory\n");
		failed = true;
		return;
	}
	while (shared < STORM && tries++ < 20 * STORM) {
		u64 pfn = ram_first + rng() % (ram_end - ram_first);

		if (!pfn_valid(pfn))
			continue;
		if (!hvc(S2RMAP_FN_HOST_SHARE_HYP, pfn, 0, &res))
			pfns[shared++] = pfn;
	}
	pr_info("BENCH ram_pages %llu\n", ram_end - ram_first);
	pr_info("BENCH storm_shared %d\n", shared);
	pr_info("BENCH storm_tries %d\n", tries);
	if (shared < STORM) {
		pr_err("BENCH error storm shared only %d pages\n", shared);
		failed = true;
	}
	counters(pages_storm, &unused);
	for (i = 0; i < shared; i++)
		check(hvc(S2RMAP_FN_HOST_UNSHARE_HYP, pfns[i], 0, &res), "storm unshare");
	counters(pages_after, &unused);
	vfree(pfns);
}

static int __init s2rmap_bench_init(void)
{
	struct page *one = alloc_page(GFP_KERNEL);
	struct page *block = alloc_pages(GFP_KERNEL, 9);
	struct page *fault = alloc_pages(GFP_KERNEL, get_order(FAULT_PAGES * PAGE_SIZE));
	u64 pages_boot, pages_storm = 0, pages_after = 0, faults_boot, faults = 0;

	if (!one || !block || !fault) {
		pr_err("BENCH error: no memory\n");
		failed = true;
		goto out;
	}
	cntfrq = arch_timer_get_cntfrq();

	/* First, before anything of ours touches the host stage-2. */
	counters(&pages_boot, &faults_boot);
	pr_info("BENCH boot_host_faults %llu\n", faults_boot);
	pr_info("BENCH table_pages_after_boot %llu\n", pages_boot);

	pr_info("BENCH cntfrq %llu\n", cntfrq);
	pr_info("BENCH calib_expected %llu\n", 2ULL * CALIB_ITERS);
	pr_info("BENCH calib_measured %llu\n", calibrate());

	pr_info("BENCH loop_overhead %llu\n", measure(op_empty, 0));
	pr_info("BENCH floor %llu\n", measure(op_floor, 0));
	pr_info("BENCH share_unshare %llu\n", measure(op_share_unshare, page_to_pfn(one)));
	donate_pages = 1;
	pr_info("BENCH donate_reclaim_1 %llu\n", measure(op_donate_reclaim, page_to_pfn(one)));
	donate_pages = 512;
	pr_info("BENCH donate_reclaim_512 %llu\n", measure(op_donate_reclaim, page_to_pfn(block)));
	pr_info("BENCH host_fault %llu\n", host_fault(fault, &faults));
	pr_info("BENCH host_faults_per_round %llu\n", faults);

	storm(&pages_storm, &pages_after);
	pr_info("BENCH table_pages_after_storm %llu\n", pages_storm);
	pr_info("BENCH table_pages_after_undo %llu\n", pages_after);
	pr_info("BENCH %s\n", failed ? "failed" : "done");
out:
	if (fault)
		__free_pages(fault, get_order(FAULT_PAGES * PAGE_SIZE));
	if (block)
		__free_pages(block, 9);
	if (one)
		__free_page(one);
	return failed ? -EIO : 0;
}

static void __exit s2rmap_bench_exit(void)
{
}

module_init(s2rmap_bench_init);
module_exit(s2rmap_bench_exit);
MODULE_DESCRIPTION("s2rmap benchmarks, stock and s2rmap alike");
MODULE_LICENSE("GPL");
