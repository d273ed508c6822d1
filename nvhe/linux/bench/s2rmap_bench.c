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
 * Output: one "BENCH <metric> <value>" line per figure, then
 * "BENCH done".
 */
#include <linux/arm-smccc.h>
#include <linux/gfp.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <asm/arch_timer.h>

#include "s2rmap_abi.h"

#define REJECTED_ID	0xffff	/* an ID every hyp refuses at once */
#define ROUNDS		9
#define REPS		200
#define STORM		10000

static u64 ticks_to_insns;	/* ns per counter tick, = instructions with icount shift=0 */

static u64 now(void)
{
	isb();
	return read_sysreg(cntvct_el0);
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
		rounds[r] = (now() - start) * ticks_to_insns / REPS;
	}
	return median(rounds);
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

/* Touch a page whose host stage-2 entry a donate + reclaim just reset. */
static u64 host_fault(struct page *page, u64 *faults_taken)
{
	u64 rounds[ROUNDS], t0, f0, f1, unused;
	volatile u64 *p = page_address(page);
	int r;

	donate_pages = 1;
	counters(&unused, &f0);
	for (r = 0; r < ROUNDS; r++) {
		u64 start;

		op_donate_reclaim(page_to_pfn(page));
		start = now();
		(void)*p;
		rounds[r] = (now() - start) * ticks_to_insns;
	}
	counters(&unused, &f1);
	*faults_taken = f1 - f0;
	/* The same access once mapped, to subtract. */
	t0 = now();
	(void)*p;
	t0 = (now() - t0) * ticks_to_insns;
	return median(rounds) - min(t0, median(rounds));
}

static int __init s2rmap_bench_init(void)
{
	struct page *one = alloc_page(GFP_KERNEL);
	struct page *block = alloc_pages(GFP_KERNEL, 9);
	struct page **storm = kcalloc(STORM, sizeof(*storm), GFP_KERNEL);
	u64 pages_boot, pages_storm, pages_after, faults_boot, faults;
	int i;

	if (!one || !block || !storm)
		goto out;
	ticks_to_insns = NSEC_PER_SEC / arch_timer_get_cntfrq();

	counters(&pages_boot, &faults_boot);
	pr_info("BENCH boot_host_faults %llu\n", faults_boot);
	pr_info("BENCH table_pages_after_boot %llu\n", pages_boot);

	pr_info("BENCH floor %llu\n", measure(op_floor, 0));
	pr_info("BENCH share_unshare %llu\n", measure(op_share_unshare, page_to_pfn(one)));
	donate_pages = 1;
	pr_info("BENCH donate_reclaim_1 %llu\n", measure(op_donate_reclaim, page_to_pfn(one)));
	donate_pages = 512;
	pr_info("BENCH donate_reclaim_512 %llu\n", measure(op_donate_reclaim, page_to_pfn(block)));
	pr_info("BENCH host_fault %llu\n", host_fault(one, &faults));
	pr_info("BENCH host_faults_counted %llu\n", faults);

	/* A storm of shares on random pages, then undo it all. */
	for (i = 0; i < STORM; i++) {
		struct arm_smccc_res res;

		storm[i] = alloc_page(GFP_KERNEL);
		if (storm[i])
			check(hvc(S2RMAP_FN_HOST_SHARE_HYP, page_to_pfn(storm[i]), 0, &res),
			      "storm share");
	}
	counters(&pages_storm, &faults);
	pr_info("BENCH table_pages_after_storm %llu\n", pages_storm);
	for (i = 0; i < STORM; i++) {
		struct arm_smccc_res res;

		if (!storm[i])
			continue;
		check(hvc(S2RMAP_FN_HOST_UNSHARE_HYP, page_to_pfn(storm[i]), 0, &res),
		      "storm unshare");
		__free_page(storm[i]);
	}
	counters(&pages_after, &faults);
	pr_info("BENCH table_pages_after_undo %llu\n", pages_after);
	pr_info("BENCH %s\n", failed ? "failed" : "done");
out:
	kfree(storm);
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
