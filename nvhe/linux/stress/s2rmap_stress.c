// SPDX-License-Identifier: GPL-2.0-only
/*
 * s2rmap reliability tests, run at EL2 from the host (issue 5).
 *
 * 1. Allocation-failure injection: share, donate, guest create, guest
 *    donate and a host fault, with the n-th allocation point armed to fail
 *    for n = 1, 2, ... until the call succeeds. Every failed call must
 *    return -ENOMEM and leave every touched page (PAGE_QUERY) and the
 *    ownership totals (OWNERSHIP_QUERY) exactly as they were.
 * 2. SMP stress: one kthread per online CPU runs share/unshare/donate/
 *    reclaim/pin/unpin over one shared set of pages, with a fixed seed and
 *    a time limit; afterwards the hyp's page count must equal the count
 *    before plus the successful donations minus the successful reclaims,
 *    and after undoing what is left every page and every total is back.
 * 3. Hostile input: a seeded fuzzer issues s2rmap calls with arguments
 *    biased to edges (pfn 0, the last RAM page, just past RAM, MMIO,
 *    U64_MAX, pfn + nr overflow, unaligned addresses, live, dead and made-up
 *    guest handles, unassigned function numbers); RAM it may move is its
 *    own pool, so the host kernel never loses a page it uses. At the end it
 *    tears its guests down, undoes what is left, and compares the totals.
 *
 * Prints KTAP through the kernel log like s2rmap_selftest; loading fails
 * if any test fails.
 */
#define pr_fmt(fmt) fmt

#include <linux/arm-smccc.h>
#include <linux/bitmap.h>
#include <linux/completion.h>
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/gfp.h>
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

#include "s2rmap_abi.h"

#define UART_PFN	0x9000UL	/* QEMU virt's PL011: MMIO */
#define GUEST_IPA_BITS	40
#define GUEST_TOP_GFN	(1UL << (GUEST_IPA_BITS - 1 - PAGE_SHIFT))
#define GUEST_POOL_ORDER	6	/* 64 pages of stage-2 tables */
#define MAX_INJECT	64		/* allocation points tried per call */

static unsigned long smp_ops = 200000;
module_param(smp_ops, ulong, 0444);
MODULE_PARM_DESC(smp_ops, "SMP stress: operations in all");
static unsigned int smp_limit_s = 120;
module_param(smp_limit_s, uint, 0444);
MODULE_PARM_DESC(smp_limit_s, "SMP stress: time limit (s of guest time)");
static unsigned long fuzz_calls = 250000;
module_param(fuzz_calls, ulong, 0444);
MODULE_PARM_DESC(fuzz_calls, "fuzzer: calls to issue at most");
static unsigned int fuzz_budget_s = 90;
module_param(fuzz_budget_s, uint, 0444);
MODULE_PARM_DESC(fuzz_budget_s, "fuzzer: stop after this many s of guest time");
static u64 seed = 0x5eed5eed2026ULL;
module_param(seed, ullong, 0444);
MODULE_PARM_DESC(seed, "PRNG seed of the stress and fuzz tests");
static bool ghost_sabotage;
module_param(ghost_sabotage, bool, 0444);
MODULE_PARM_DESC(ghost_sabotage,
		 "only make the ghost checker see a wrong state: the hyp must panic");

static int tests_run, tests_failed;

/* Issues an s2rmap hypercall; returns 0, a negative errno, or -EOPNOTSUPP. */
static long s2_call_regs(u32 fn, u64 a1, u64 a2, u64 a3, u64 a4,
			 struct arm_smccc_1_2_regs *out)
{
	struct arm_smccc_1_2_regs args = {
		.a0 = S2RMAP_FN_ID(fn), .a1 = a1, .a2 = a2, .a3 = a3, .a4 = a4,
	};
	struct arm_smccc_1_2_regs res;

	arm_smccc_1_2_hvc(&args, &res);
	if (out)
		*out = res;
	if (res.a0 == SMCCC_RET_NOT_SUPPORTED)
		return -EOPNOTSUPP;
	return (long)res.a1;
}

static long s2_call(u32 fn, u64 a1, u64 a2, u64 a3, u64 a4)
{
	return s2_call_regs(fn, a1, a2, a3, a4, NULL);
}

static int page_state(u64 pa, struct s2rmap_page_report *r)
{
	struct arm_smccc_1_2_regs ret;
	u64 regs[2];
	long err = s2_call_regs(S2RMAP_FN_PAGE_QUERY, pa, 0, 0, 0, &ret);

	memset(r, 0xff, sizeof(*r));
	if (err)
		return err;
	regs[0] = ret.a2;
	regs[1] = ret.a3;
	memcpy(r, regs, sizeof(*r));
	return 0;
}

/* Pages of RAM by owner: host, host-and-lent, hyp, guests, lent-to-host. */
struct totals {
	u64 v[5];
};

static const char *const total_names[5] = {
	"host", "host_lent", "hyp", "guests", "borrowed"
};

static int totals(struct totals *t)
{
	struct arm_smccc_1_2_regs ret;
	long err = s2_call_regs(S2RMAP_FN_OWNERSHIP_QUERY, 0, 0, 0, 0, &ret);

	t->v[0] = ret.a2;
	t->v[1] = ret.a3;
	t->v[2] = ret.a4;
	t->v[3] = ret.a5;
	t->v[4] = ret.a6;
	return err;
}

static int counters(struct s2rmap_counters *c)
{
	struct arm_smccc_1_2_regs ret;
	long err = s2_call_regs(S2RMAP_FN_COUNTERS_QUERY, 0, 0, 0, 0, &ret);

	c->table_pages = ret.a2;
	c->leaves[0] = ret.a3;
	c->leaves[1] = ret.a4;
	c->leaves[2] = ret.a5;
	c->leaves[3] = ret.a6;
	c->host_faults = ret.a7;
	return err;
}

/* Returns the index of the first total that differs, or -1. */
static int totals_differ(const struct totals *a, const struct totals *b)
{
	int i;

	for (i = 0; i < 5; i++)
		if (a->v[i] != b->v[i])
			return i;
	return -1;
}

static void result(bool ok, const char *name, const char *fmt, ...)
{
	va_list ap;
	char msg[200];

	tests_run++;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		pr_info("    # %s: %s\n", name, msg);
	}
	if (!ok)
		tests_failed++;
	pr_info("    %sok %d - %s\n", ok ? "" : "not ", tests_run, name);
}

static bool state_is(u64 pa, u32 owner, u8 host, u8 hyp)
{
	struct s2rmap_page_report r;

	return !page_state(pa, &r) && r.owner == owner &&
	       r.host_state == host && r.hyp_state == hyp && !r.pins;
}

static bool host_owned(u64 pa)
{
	return state_is(pa, S2RMAP_OWNER_HOST, S2RMAP_STATE_OWNED, S2RMAP_STATE_NOPAGE);
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

/* xorshift64*: the same sequence for the same seed, on every run. */
static u64 rnd(u64 *s)
{
	u64 x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static u64 rnd_below(u64 *s, u64 n)
{
	return n ? rnd(s) % n : 0;
}

/* ---------------------------------------------------------------------- */
/* 1. Allocation-failure injection                                         */
/* ---------------------------------------------------------------------- */

#define SNAP_PAGES 4

struct snapshot {
	struct s2rmap_page_report page[SNAP_PAGES];
	struct totals t;
};

static void snap(struct snapshot *s, const u64 *pa, int n)
{
	int i;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < n; i++)
		page_state(pa[i], &s->page[i]);
	totals(&s->t);
}

static int arm_failure(u64 nth)
{
	return s2_call(S2RMAP_FN_FAIL_ALLOCATION, nth, 0, 0, 0);
}

/* The call under test, and the pages it touches. */
struct inject_case {
	const char *name;
	long (*call)(struct inject_case *c);
	u64 pa[SNAP_PAGES];
	int npages;
	u64 handle;	/* a guest handle, for the guest cases */
	u64 pool_pfn;
};

static unsigned long injected_total;

/*
 * Arms the n-th allocation point for n = 1, 2, ... and runs the call until
 * it succeeds; every failure must be -ENOMEM with nothing changed.
 */
static void inject_until_success(struct inject_case *c)
{
	struct snapshot before, after;
	unsigned long injected = 0;
	long ret = -ENOMEM;
	int n, bad = -1;

	for (n = 1; n <= MAX_INJECT; n++) {
		snap(&before, c->pa, c->npages);
		if (arm_failure(n)) {
			result(false, c->name, "FAIL_ALLOCATION refused");
			return;
		}
		ret = c->call(c);
		arm_failure(0);
		if (!ret)
			break;
		if (ret != -ENOMEM) {
			result(false, c->name, "n=%d: returned %ld, expected -ENOMEM", n, ret);
			return;
		}
		injected++;
		snap(&after, c->pa, c->npages);
		if (memcmp(&before.page, &after.page, sizeof(before.page))) {
			int i;

			for (i = 0; i < c->npages; i++)
				if (memcmp(&before.page[i], &after.page[i], sizeof(after.page[i])))
					break;
			result(false, c->name,
			       "n=%d: page %d changed: owner %u/%u host %u/%u hyp %u/%u pins %u/%u",
			       n, i, before.page[i].owner, after.page[i].owner,
			       before.page[i].host_state, after.page[i].host_state,
			       before.page[i].hyp_state, after.page[i].hyp_state,
			       before.page[i].pins, after.page[i].pins);
			return;
		}
		bad = totals_differ(&before.t, &after.t);
		if (bad >= 0) {
			result(false, c->name, "n=%d: %s total %llu -> %llu", n,
			       total_names[bad], before.t.v[bad], after.t.v[bad]);
			return;
		}
	}
	injected_total += injected;
	result(!ret, c->name, "%lu allocation failure(s) injected, each -ENOMEM with "
	       "state unchanged; succeeded at n=%d", injected, n);
}

static long call_share(struct inject_case *c)
{
	return s2_call(S2RMAP_FN_HOST_SHARE_HYP, PHYS_PFN(c->pa[0]), 0, 0, 0);
}

static long call_share_range(struct inject_case *c)
{
	return s2_call(S2RMAP_FN_HOST_SHARE_HYP_RANGE, PHYS_PFN(c->pa[0]), 3, 0, 0);
}

static long call_donate(struct inject_case *c)
{
	return s2_call(S2RMAP_FN_HOST_DONATE_HYP, PHYS_PFN(c->pa[0]), 1, 0, 0);
}

static long call_guest_create(struct inject_case *c)
{
	struct arm_smccc_1_2_regs ret;
	long err = s2_call_regs(S2RMAP_FN_GUEST_CREATE, GUEST_IPA_BITS, c->pool_pfn,
				1UL << GUEST_POOL_ORDER, 0, &ret);

	if (!err)
		c->handle = ret.a2;
	return err;
}

static long call_guest_donate(struct inject_case *c)
{
	/* A gfn far from the others: its stage-2 tables are not there yet. */
	return s2_call(S2RMAP_FN_HOST_DONATE_GUEST, c->handle, PHYS_PFN(c->pa[0]),
		       0x12345, 1);
}

static long call_guest_share(struct inject_case *c)
{
	return s2_call(S2RMAP_FN_HOST_SHARE_GUEST, c->handle, PHYS_PFN(c->pa[0]),
		       GUEST_TOP_GFN + 0x4321, 1);
}

/*
 * Host fault: a page donated and reclaimed has an invalid host entry (owner
 * host, not mapped); touching it faults to EL2, which maps it. With an
 * allocation armed the access must still complete (retried if need be),
 * with no SIGBUS or oops; once disarmed the page is mapped.
 */
static void inject_host_fault(u64 *block, const char *name)
{
	struct s2rmap_counters c0, c1;
	struct s2rmap_page_report r;
	u64 pa = page_to_phys(virt_to_page(block)) + 5 * PAGE_SIZE;
	u64 *p = phys_to_virt(pa);
	long err;
	u64 v;
	int n, faults = 0, allocs = 0;

	for (n = 1; n <= 4; n++) {
		err = s2_call(S2RMAP_FN_HOST_DONATE_HYP, PHYS_PFN(pa), 1, 0, 0);
		if (!err)
			err = s2_call(S2RMAP_FN_HYP_DONATE_HOST, PHYS_PFN(pa), 1, 0, 0);
		if (err || page_state(pa, &r) || r.mapped || r.owner != S2RMAP_OWNER_HOST) {
			result(false, name, "donate+reclaim: %ld, mapped %u owner %u",
			       err, r.mapped, r.owner);
			return;
		}
		counters(&c0);
		if (arm_failure(n)) {
			result(false, name, "FAIL_ALLOCATION refused");
			return;
		}
		v = READ_ONCE(*p);	/* faults to EL2 */
		WRITE_ONCE(*p, v + 1);
		arm_failure(0);
		counters(&c1);
		faults += c1.host_faults - c0.host_faults;
		allocs += c1.table_pages - c0.table_pages;
		if (page_state(pa, &r) || !r.mapped || r.owner != S2RMAP_OWNER_HOST ||
		    r.host_state != S2RMAP_STATE_OWNED) {
			result(false, name, "n=%d: after the access: mapped %u owner %u state %u",
			       n, r.mapped, r.owner, r.host_state);
			return;
		}
	}
	/*
	 * Mapping a page the host owns back in place writes one entry into a
	 * table that is already there: no allocation point is reached, so the
	 * armed failure never fires here (the counters show it).
	 */
	result(faults >= 4, name, "4 host faults with n=1..4 armed: %d fault(s) handled, "
	       "%d table page(s) allocated, access completed each time", faults, allocs);
}

static void run_injection_tests(void)
{
	struct page *blk[4];
	struct page *pool = NULL;
	struct inject_case c;
	int i;
	long err;

	for (i = 0; i < 4; i++)
		blk[i] = alloc_pages(GFP_KERNEL | __GFP_ZERO, 9);
	pool = alloc_pages(GFP_KERNEL | __GFP_ZERO, GUEST_POOL_ORDER);
	if (!blk[0] || !blk[1] || !blk[2] || !blk[3] || !pool) {
		result(false, "inject_allocate", "out of memory");
		goto out;
	}

	/* Share of a page in the middle of a 2 MiB block. */
	memset(&c, 0, sizeof(c));
	c.name = "inject_share_hyp";
	c.call = call_share;
	c.pa[0] = page_to_phys(blk[0]) + 17 * PAGE_SIZE;
	c.pa[1] = c.pa[0] + PAGE_SIZE;
	c.npages = 2;
	inject_until_success(&c);
	err = s2_call(S2RMAP_FN_HOST_UNSHARE_HYP, PHYS_PFN(c.pa[0]), 0, 0, 0);
	result(!err && host_owned(c.pa[0]), "inject_share_hyp_undo", "unshare: %ld", err);

	memset(&c, 0, sizeof(c));
	c.name = "inject_share_hyp_range";
	c.call = call_share_range;
	c.pa[0] = page_to_phys(blk[3]) + 511 * PAGE_SIZE - 2 * PAGE_SIZE;
	c.pa[1] = c.pa[0] + PAGE_SIZE;
	c.pa[2] = c.pa[0] + 2 * PAGE_SIZE;
	c.npages = 3;
	inject_until_success(&c);
	err = s2_call(S2RMAP_FN_HOST_UNSHARE_HYP_RANGE, PHYS_PFN(c.pa[0]), 3, 0, 0);
	result(!err && host_owned(c.pa[0]) && host_owned(c.pa[2]),
	       "inject_share_hyp_range_undo", "unshare: %ld", err);

	memset(&c, 0, sizeof(c));
	c.name = "inject_donate_hyp";
	c.call = call_donate;
	c.pa[0] = page_to_phys(blk[1]) + 33 * PAGE_SIZE;
	c.pa[1] = c.pa[0] - PAGE_SIZE;
	c.npages = 2;
	inject_until_success(&c);
	err = s2_call(S2RMAP_FN_HYP_DONATE_HOST, PHYS_PFN(c.pa[0]), 1, 0, 0);
	result(!err && host_owned(c.pa[0]), "inject_donate_hyp_undo", "reclaim: %ld", err);

	memset(&c, 0, sizeof(c));
	c.name = "inject_guest_create";
	c.call = call_guest_create;
	c.pool_pfn = page_to_pfn(pool);
	c.pa[0] = page_to_phys(pool);
	c.pa[1] = page_to_phys(pool) + ((1UL << GUEST_POOL_ORDER) - 1) * PAGE_SIZE;
	c.npages = 2;
	inject_until_success(&c);
	if (!c.handle)
		goto out;

	c.name = "inject_guest_donate";
	c.call = call_guest_donate;
	c.pa[0] = page_to_phys(blk[2]) + 65 * PAGE_SIZE;
	c.pa[1] = page_to_phys(pool);
	c.npages = 2;
	inject_until_success(&c);

	c.name = "inject_guest_share";
	c.call = call_guest_share;
	c.pa[0] = page_to_phys(blk[2]) + 66 * PAGE_SIZE;
	inject_until_success(&c);

	err = s2_call(S2RMAP_FN_GUEST_TEARDOWN, c.handle, 0, 0, 0);
	result(!err && host_owned(page_to_phys(pool)) &&
	       host_owned(page_to_phys(blk[2]) + 65 * PAGE_SIZE) &&
	       host_owned(page_to_phys(blk[2]) + 66 * PAGE_SIZE),
	       "inject_guest_teardown", "teardown: %ld", err);

	inject_host_fault(page_address(blk[1]), "inject_host_fault");
	pr_info("    # inject: %lu allocation failures injected in all\n", injected_total);
out:
	for (i = 0; i < 4; i++)
		if (blk[i])
			__free_pages(blk[i], 9);
	if (pool)
		__free_pages(pool, GUEST_POOL_ORDER);
}

/* ---------------------------------------------------------------------- */
/* 2. SMP stress                                                           */
/* ---------------------------------------------------------------------- */

#define STRESS_PAGES	48

enum { OP_SHARE, OP_UNSHARE, OP_DONATE, OP_RECLAIM, OP_PIN, OP_UNPIN, NR_OPS };

static const char *const op_names[NR_OPS] = {
	"share", "unshare", "donate", "reclaim", "pin", "unpin"
};

struct stress_thread {
	struct task_struct *task;
	unsigned int cpu;
	u64 state;
	unsigned long ops;
	unsigned long done;
	unsigned long ok[NR_OPS];
	unsigned long unexpected;
	long first_bad;
	int first_bad_op;
	bool timed_out;
};

static u64 stress_pfn[STRESS_PAGES];
static atomic_t stress_ready, stress_running;
static ktime_t stress_deadline;
static DECLARE_COMPLETION(stress_done);

static int stress_fn(void *data)
{
	struct stress_thread *t = data;
	unsigned long i;

	atomic_inc(&stress_ready);
	while (atomic_read(&stress_ready) < atomic_read(&stress_running))
		cpu_relax();
	for (i = 0; i < t->ops; i++) {
		u64 r = rnd(&t->state);
		u64 pfn = stress_pfn[r % STRESS_PAGES];
		int op = (r >> 32) % NR_OPS;
		long ret;

		switch (op) {
		case OP_SHARE:
			ret = s2_call(S2RMAP_FN_HOST_SHARE_HYP, pfn, 0, 0, 0);
			break;
		case OP_UNSHARE:
			ret = s2_call(S2RMAP_FN_HOST_UNSHARE_HYP, pfn, 0, 0, 0);
			break;
		case OP_DONATE:
			ret = s2_call(S2RMAP_FN_HOST_DONATE_HYP, pfn, 1, 0, 0);
			break;
		case OP_RECLAIM:
			ret = s2_call(S2RMAP_FN_HYP_DONATE_HOST, pfn, 1, 0, 0);
			break;
		case OP_PIN:
			ret = s2_call(S2RMAP_FN_HYP_PIN, pfn, 1, 0, 0);
			break;
		default:
			ret = s2_call(S2RMAP_FN_HYP_UNPIN, pfn, 1, 0, 0);
			break;
		}
		if (!ret) {
			t->ok[op]++;
		} else if (ret != -EPERM && ret != -EBUSY) {
			if (!t->unexpected++) {
				t->first_bad = ret;
				t->first_bad_op = op;
			}
		}
		t->done++;
		if (!(i & 255)) {
			if (ktime_after(ktime_get(), stress_deadline)) {
				t->timed_out = true;
				break;
			}
			cond_resched();
		}
	}
	if (atomic_dec_and_test(&stress_running))
		complete(&stress_done);
	return 0;
}

/* Undoes what a page has left: pins, a share, a donation. Returns reclaims. */
static int undo_page(u64 pfn, int *bad)
{
	struct s2rmap_page_report r;
	int reclaimed = 0, guard = 0;

	while (!page_state(PFN_PHYS(pfn), &r) && r.pins && guard++ < 1000000)
		if (s2_call(S2RMAP_FN_HYP_UNPIN, pfn, 1, 0, 0))
			break;
	page_state(PFN_PHYS(pfn), &r);
	if (r.owner == S2RMAP_OWNER_HOST && r.host_state == S2RMAP_STATE_SHARED_OWNED &&
	    s2_call(S2RMAP_FN_HOST_UNSHARE_HYP, pfn, 0, 0, 0))
		(*bad)++;
	if (r.owner == S2RMAP_OWNER_HYP) {
		if (s2_call(S2RMAP_FN_HYP_DONATE_HOST, pfn, 1, 0, 0))
			(*bad)++;
		else
			reclaimed++;
	}
	return reclaimed;
}

static void run_smp_stress(void)
{
	unsigned int nthreads = num_online_cpus(), cpu, n = 0, i;
	struct stress_thread *threads;
	struct page *pages[STRESS_PAGES] = {};
	struct totals before, mid, after;
	unsigned long done = 0, ok[NR_OPS] = {}, unexpected = 0;
	long donated = 0, returned = 0, expect_hyp;
	bool timed_out = false, stuck = false;
	int bad = 0, unclean = 0, d;
	ktime_t start;
	s64 ms;

	threads = kcalloc(nthreads, sizeof(*threads), GFP_KERNEL);
	if (!threads) {
		result(false, "smp_stress", "out of memory");
		return;
	}
	for (i = 0; i < STRESS_PAGES; i++) {
		pages[i] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		if (!pages[i]) {
			result(false, "smp_stress", "out of memory");
			goto out;
		}
		stress_pfn[i] = page_to_pfn(pages[i]);
	}
	totals(&before);

	atomic_set(&stress_ready, 0);
	atomic_set(&stress_running, nthreads);
	reinit_completion(&stress_done);
	start = ktime_get();
	stress_deadline = ktime_add_ms(start, smp_limit_s * 1000ULL);
	for_each_online_cpu(cpu) {
		struct stress_thread *t = &threads[n];

		if (n >= nthreads)
			break;
		t->cpu = cpu;
		t->state = seed ^ (0x9e3779b97f4a7c15ULL * (n + 1));
		t->ops = smp_ops / nthreads + (n < smp_ops % nthreads);
		t->task = kthread_create(stress_fn, t, "s2rmap_stress/%u", cpu);
		if (IS_ERR(t->task)) {
			t->task = NULL;
			atomic_dec(&stress_running);
			continue;
		}
		kthread_bind(t->task, cpu);
		n++;
	}
	for (i = 0; i < n; i++)
		wake_up_process(threads[i].task);
	if (n < nthreads && atomic_read(&stress_running) == 0)
		complete(&stress_done);
	if (!wait_for_completion_timeout(&stress_done, (smp_limit_s + 30) * HZ)) {
		/* Threads stuck in the hyp: a lock-up. Do not touch anything. */
		stuck = true;
		result(false, "smp_stress", "lock-up: threads still running %us after the limit",
		       30);
		return;
	}
	ms = ktime_ms_delta(ktime_get(), start);
	totals(&mid);

	for (i = 0; i < n; i++) {
		struct stress_thread *t = &threads[i];
		int op;

		done += t->done;
		for (op = 0; op < NR_OPS; op++)
			ok[op] += t->ok[op];
		donated += t->ok[OP_DONATE];
		returned += t->ok[OP_RECLAIM];
		timed_out |= t->timed_out;
		if (t->unexpected) {
			pr_info("    # smp_stress: cpu %u: %lu unexpected result(s), first %ld from %s\n",
				t->cpu, t->unexpected, t->first_bad, op_names[t->first_bad_op]);
			unexpected += t->unexpected;
		}
	}
	pr_info("    # smp_stress: %u threads on %u CPUs, %lu operations in %lld ms (%lld ops/s)\n",
		n, nthreads, done, ms, ms ? (s64)done * 1000 / ms : 0);
	pr_info("    # smp_stress: succeeded: share %lu unshare %lu donate %lu reclaim %lu pin %lu unpin %lu\n",
		ok[OP_SHARE], ok[OP_UNSHARE], ok[OP_DONATE], ok[OP_RECLAIM], ok[OP_PIN], ok[OP_UNPIN]);
	result(!timed_out && done == smp_ops && n == nthreads, "smp_stress_completes",
	       "%lu of %lu operations within %us", done, smp_ops, smp_limit_s);
	result(!unexpected, "smp_stress_errnos", "%lu result(s) other than 0/-EPERM/-EBUSY",
	       unexpected);

	expect_hyp = before.v[2] + donated - returned;
	result(mid.v[2] == expect_hyp, "smp_stress_hyp_conservation",
	       "hyp pages %llu = %llu before + %ld donated - %ld reclaimed (expected %ld)",
	       mid.v[2], before.v[2], donated, returned, expect_hyp);

	for (i = 0; i < STRESS_PAGES; i++)
		undo_page(stress_pfn[i], &bad);
	for (i = 0; i < STRESS_PAGES; i++)
		if (!host_owned(PFN_PHYS(stress_pfn[i])))
			unclean++;
	totals(&after);
	d = totals_differ(&before, &after);
	if (d < 0)
		result(!bad && !unclean, "smp_stress_pages_restored",
		       "undo failures %d, pages not host-owned %d, ownership totals as at the start",
		       bad, unclean);
	else
		result(false, "smp_stress_pages_restored",
		       "undo failures %d, pages not host-owned %d, %s total %llu -> %llu", bad,
		       unclean, total_names[d], before.v[d], after.v[d]);
out:
	if (!stuck) {
		for (i = 0; i < STRESS_PAGES; i++)
			if (pages[i] && !unclean)
				__free_page(pages[i]);
		kfree(threads);
	}
}

/* ---------------------------------------------------------------------- */
/* 3. Hostile input                                                        */
/* ---------------------------------------------------------------------- */

#define FUZZ_POOL_ORDER	6	/* the RAM the fuzzer may move: 64 pages */
#define FUZZ_POOL_PAGES	(1UL << FUZZ_POOL_ORDER)
#define FUZZ_GUESTS	2
#define MAX_HANDLES	16
#define MAX_GUEST_ID	1024

/* A successful fuzz call, kept to explain a page left behind. */
struct fuzz_rec {
	u32 fn;
	u32 index;
	u64 a[4];
	u64 r2;
};

#define FUZZ_LOG	65536

struct fuzz {
	u64 s;
	struct fuzz_rec *log;
	unsigned long nlog;
	u64 pool;		/* first pfn of the fuzzer's own pages */
	u64 last;		/* last RAM pfn */
	u64 handles[MAX_HANDLES];	/* guest handles the fuzzer plays with */
	int nhandles;
	DECLARE_BITMAP(made, MAX_GUEST_ID);	/* every guest it created */
	unsigned long calls, ok, by_errno[8];
};

/* A pfn that is not host RAM in use: refused by every transition. */
static u64 edge_pfn(struct fuzz *f)
{
	switch (rnd_below(&f->s, 12)) {
	case 0:
		return 0;
	case 1:
		return f->last + 1;
	case 2:
		return f->last + 1 + rnd_below(&f->s, 1 << 20);
	case 3:
		return UART_PFN;
	case 4:
		return U64_MAX;
	case 5:
		return U64_MAX - rnd_below(&f->s, 4);
	case 6:
		return 1ULL << 52;
	case 7:
		return (1ULL << (64 - PAGE_SHIFT)) - 1;
	case 8:
		return f->pool | (1ULL << 63);
	case 9:
		return f->pool + (1ULL << 40);
	case 10:
		return rnd(&f->s) | (1ULL << 50);
	default:	/* QEMU virt's high PCIe MMIO window */
		return 0x8000000UL + rnd_below(&f->s, 0x1000);
	}
}

/* A pfn and a count such that the RAM it covers, if any, is the fuzzer's. */
static void pick_range(struct fuzz *f, u64 *pfn, u64 *nr)
{
	u64 k = rnd_below(&f->s, 16);

	if (k < 8) {
		*pfn = f->pool + rnd_below(&f->s, FUZZ_POOL_PAGES);
		*nr = 1 + rnd_below(&f->s, f->pool + FUZZ_POOL_PAGES - *pfn);
		if (k == 0)
			*nr = 1;
		return;
	}
	if (k < 12) {
		/* Counts that are refused whatever the pfn. */
		*pfn = k & 1 ? f->pool + rnd_below(&f->s, FUZZ_POOL_PAGES) : f->last;
		switch (rnd_below(&f->s, 5)) {
		case 0:
			*nr = 0;
			break;
		case 1:
			*nr = S2RMAP_MAX_PAGES_PER_CALL + 1 + rnd_below(&f->s, 100);
			break;
		case 2:
			*nr = U64_MAX;
			break;
		case 3:	/* pfn + nr wraps */
			*nr = U64_MAX - *pfn + 1 + rnd_below(&f->s, 3);
			break;
		default:
			*nr = 1ULL << 63;
			break;
		}
		/* From the last page, any count of 2 or more runs past RAM. */
		if (*pfn == f->last && *nr == 0)
			*nr = 2;
		return;
	}
	if (k == 12) {
		*pfn = f->last;
		*nr = 2 + rnd_below(&f->s, 1000);
		return;
	}
	*pfn = edge_pfn(f);
	*nr = rnd_below(&f->s, 4) ? 1 + rnd_below(&f->s, 4) : rnd(&f->s);
}

static u64 pick_handle(struct fuzz *f)
{
	switch (rnd_below(&f->s, 10)) {
	case 0:
		return 0;
	case 1:
		return 1;
	case 2:
		return 2 + rnd_below(&f->s, 64);
	case 3:
		return U32_MAX;
	case 4:
		return U64_MAX;
	case 5:
		return (1ULL << 32) | (f->nhandles ? f->handles[0] : 2);
	case 6:
		return rnd(&f->s);
	default:
		return f->nhandles ? f->handles[rnd_below(&f->s, f->nhandles)] : 2;
	}
}

static u64 pick_gfn(struct fuzz *f)
{
	switch (rnd_below(&f->s, 8)) {
	case 0:
		return 0;
	case 1:
		return GUEST_TOP_GFN - 1;
	case 2:
		return GUEST_TOP_GFN;
	case 3:
		return 2 * GUEST_TOP_GFN - 1;
	case 4:
		return 2 * GUEST_TOP_GFN;
	case 5:
		return U64_MAX - rnd_below(&f->s, 3);
	case 6:
		return rnd(&f->s);
	default:
		return rnd_below(&f->s, 64) + (rnd(&f->s) & 1 ? GUEST_TOP_GFN : 0);
	}
}

/* An address: page-aligned or not, in RAM, past it, MMIO or wild. */
static u64 pick_addr(struct fuzz *f)
{
	u64 pa;

	switch (rnd_below(&f->s, 6)) {
	case 0:
		pa = PFN_PHYS(f->pool + rnd_below(&f->s, FUZZ_POOL_PAGES));
		break;
	case 1:
		pa = PFN_PHYS(f->last);
		break;
	case 2:
		pa = PFN_PHYS(f->last + 1);
		break;
	case 3:
		pa = PFN_PHYS(UART_PFN);
		break;
	case 4:
		pa = U64_MAX;
		break;
	default:
		pa = rnd(&f->s);
		break;
	}
	if (rnd_below(&f->s, 3) == 0)
		pa += 1 + rnd_below(&f->s, PAGE_SIZE - 1);	/* unaligned */
	return pa;
}

static void note_guest(struct fuzz *f, u64 h)
{
	if (h < MAX_GUEST_ID)
		__set_bit(h, f->made);
	else
		pr_info("    # fuzz: guest handle %llu out of range\n", h);
	if (f->nhandles < MAX_HANDLES)
		f->handles[f->nhandles++] = h;
	else
		f->handles[rnd_below(&f->s, MAX_HANDLES)] = h;
}

static void fuzz_one(struct fuzz *f)
{
	static const u8 fns[] = {
		S2RMAP_FN_HOST_SHARE_HYP, S2RMAP_FN_HOST_UNSHARE_HYP,
		S2RMAP_FN_HOST_SHARE_HYP_RANGE, S2RMAP_FN_HOST_UNSHARE_HYP_RANGE,
		S2RMAP_FN_HOST_DONATE_HYP, S2RMAP_FN_HYP_DONATE_HOST,
		S2RMAP_FN_HYP_PIN, S2RMAP_FN_HYP_UNPIN,
		S2RMAP_FN_GUEST_CREATE, S2RMAP_FN_GUEST_TEARDOWN,
		S2RMAP_FN_GUEST_RUN, S2RMAP_FN_GUEST_INIT_RIPAS,
		S2RMAP_FN_HOST_DONATE_GUEST, S2RMAP_FN_HOST_SHARE_GUEST,
		S2RMAP_FN_HOST_UNSHARE_GUEST, S2RMAP_FN_GUEST_SHARE_HOST,
		S2RMAP_FN_GUEST_UNSHARE_HOST, S2RMAP_FN_GUEST_RELINQUISH,
		S2RMAP_FN_PAGE_QUERY, S2RMAP_FN_COUNTERS_QUERY,
		S2RMAP_FN_GUEST_PAGE_QUERY, S2RMAP_FN_OWNERSHIP_QUERY,
	};
	struct arm_smccc_1_2_regs ret;
	u64 a1 = 0, a2 = 0, a3 = 0, a4 = 0, pfn, nr;
	u32 fn;
	long err;

	if (rnd_below(&f->s, 32) == 0) {
		/*
		 * Numbers past s2rmap's last one (FAIL_ALLOCATION, which is
		 * never fuzzed: an armed failure would hit the next host
		 * fault) are nobody's: refused as not supported.
		 */
		fn = S2RMAP_FN_FAIL_ALLOCATION + 1 + rnd_below(&f->s, 0x40);
		a1 = rnd(&f->s);
		a2 = rnd(&f->s);
		a3 = rnd(&f->s);
		a4 = rnd(&f->s);
	} else {
		fn = fns[rnd_below(&f->s, ARRAY_SIZE(fns))];
		pick_range(f, &pfn, &nr);
		switch (fn) {
		case S2RMAP_FN_HOST_SHARE_HYP:
		case S2RMAP_FN_HOST_UNSHARE_HYP:
			/* One page: the pool, or a pfn that is not RAM. */
			a1 = nr == 1 && pfn != f->last ? pfn : edge_pfn(f);
			a2 = rnd(&f->s);	/* ignored */
			break;
		case S2RMAP_FN_GUEST_CREATE:
			a1 = rnd_below(&f->s, 4) ? GUEST_IPA_BITS - 4 + rnd_below(&f->s, 12)
						 : rnd(&f->s);
			a2 = pfn;
			a3 = nr;
			break;
		case S2RMAP_FN_GUEST_TEARDOWN:
			/* Rarely: the fuzzer's guests are the handles it plays with. */
			a1 = rnd_below(&f->s, 64) ? rnd(&f->s) | (1ULL << 33) : pick_handle(f);
			break;
		case S2RMAP_FN_GUEST_RUN:
			a1 = pick_handle(f);
			break;
		case S2RMAP_FN_GUEST_INIT_RIPAS:
			a1 = pick_handle(f);
			a2 = pick_addr(f);
			a3 = rnd_below(&f->s, 2) ? rnd_below(&f->s, 1 << 22) : rnd(&f->s);
			break;
		case S2RMAP_FN_HOST_DONATE_GUEST:
		case S2RMAP_FN_HOST_SHARE_GUEST:
			a1 = pick_handle(f);
			a2 = pfn;
			a3 = pick_gfn(f);
			a4 = nr;
			break;
		case S2RMAP_FN_HOST_UNSHARE_GUEST:
		case S2RMAP_FN_GUEST_SHARE_HOST:
		case S2RMAP_FN_GUEST_UNSHARE_HOST:
		case S2RMAP_FN_GUEST_RELINQUISH:
			a1 = pick_handle(f);
			a2 = pick_gfn(f);
			a3 = rnd_below(&f->s, 4) ? 1 + rnd_below(&f->s, 8) : rnd(&f->s);
			break;
		case S2RMAP_FN_PAGE_QUERY:
			a1 = pick_addr(f);
			break;
		case S2RMAP_FN_GUEST_PAGE_QUERY:
			a1 = pick_handle(f);
			a2 = pick_gfn(f);
			break;
		case S2RMAP_FN_COUNTERS_QUERY:
		case S2RMAP_FN_OWNERSHIP_QUERY:
			a1 = rnd(&f->s);
			break;
		default:	/* the range calls: pfn, nr */
			a1 = pfn;
			a2 = nr;
			break;
		}
	}
	err = s2_call_regs(fn, a1, a2, a3, a4, &ret);
	f->calls++;
	if (!err) {
		if (f->log && f->nlog < FUZZ_LOG)
			f->log[f->nlog++] = (struct fuzz_rec){
				.fn = fn, .index = f->calls, .a = { a1, a2, a3, a4 },
				.r2 = ret.a2,
			};
		f->ok++;
		if (fn == S2RMAP_FN_GUEST_CREATE)
			note_guest(f, ret.a2);
	}
	switch (err) {
	case 0:
		f->by_errno[0]++;
		break;
	case -EPERM:
		f->by_errno[1]++;
		break;
	case -EINVAL:
		f->by_errno[2]++;
		break;
	case -ENOENT:
		f->by_errno[3]++;
		break;
	case -EBUSY:
		f->by_errno[4]++;
		break;
	case -ENOMEM:
		f->by_errno[5]++;
		break;
	case -EOPNOTSUPP:
		f->by_errno[6]++;
		break;
	default:
		f->by_errno[7]++;
		break;
	}
}

/* The pfn range a logged call names, if it names one. */
static bool rec_range(const struct fuzz_rec *r, u64 *pfn, u64 *nr)
{
	switch (r->fn) {
	case S2RMAP_FN_HOST_SHARE_HYP:
	case S2RMAP_FN_HOST_UNSHARE_HYP:
		*pfn = r->a[0];
		*nr = 1;
		return true;
	case S2RMAP_FN_HOST_SHARE_HYP_RANGE:
	case S2RMAP_FN_HOST_UNSHARE_HYP_RANGE:
	case S2RMAP_FN_HOST_DONATE_HYP:
	case S2RMAP_FN_HYP_DONATE_HOST:
	case S2RMAP_FN_HYP_PIN:
	case S2RMAP_FN_HYP_UNPIN:
		*pfn = r->a[0];
		*nr = r->a[1];
		return true;
	case S2RMAP_FN_GUEST_CREATE:
		*pfn = r->a[1];
		*nr = r->a[2];
		return true;
	case S2RMAP_FN_HOST_DONATE_GUEST:
	case S2RMAP_FN_HOST_SHARE_GUEST:
		*pfn = r->a[1];
		*nr = r->a[3];
		return true;
	default:
		return false;
	}
}

/* Prints the last successful calls that named @pfn or a guest call. */
static void explain_page(struct fuzz *f, u64 pfn)
{
	unsigned long i, shown = 0;
	u64 p, n;

	if (!f->log)
		return;
	for (i = f->nlog; i-- > 0 && shown < 12;) {
		const struct fuzz_rec *r = &f->log[i];

		if (!rec_range(r, &p, &n) || pfn < p || pfn - p >= n)
			continue;
		shown++;
		pr_info("    #   call %u: fn %u (%#llx, %#llx, %#llx, %#llx) -> 0, x2 %#llx\n",
			r->index, r->fn, r->a[0], r->a[1], r->a[2], r->a[3], r->r2);
	}
}

/* 1 if the page at @pa is not the host's alone; prints the first few. */
static int report_unclean(struct fuzz *f, u64 pa, int seen)
{
	struct s2rmap_page_report r;

	if (host_owned(pa))
		return 0;
	if (seen < 4) {
		page_state(pa, &r);
		pr_info("    # page %#llx: owner %u host %u hyp %u mapped %u pins %u guest_shares %u\n",
			pa, r.owner, r.host_state, r.hyp_state, r.mapped, r.pins,
			r.guest_shares);
		explain_page(f, PHYS_PFN(pa));
	}
	return 1;
}

static void run_fuzz(void)
{
	struct page *pool = alloc_pages(GFP_KERNEL | __GFP_ZERO, FUZZ_POOL_ORDER);
	struct page *gpool[FUZZ_GUESTS] = {};
	struct totals before, after;
	struct fuzz *f = kzalloc(sizeof(*f), GFP_KERNEL);
	ktime_t start, deadline;
	int i, bad = 0, unclean = 0, d, torn = 0;
	s64 ms;
	long err;

	for (i = 0; i < FUZZ_GUESTS; i++)
		gpool[i] = alloc_pages(GFP_KERNEL | __GFP_ZERO, GUEST_POOL_ORDER);
	if (!pool || !f || !gpool[0] || !gpool[1]) {
		result(false, "fuzz", "out of memory");
		goto out;
	}
	f->s = seed ^ 0xf0220f0220ULL;
	f->log = vmalloc(FUZZ_LOG * sizeof(*f->log));
	f->pool = page_to_pfn(pool);
	f->last = last_ram_pfn(f->pool);
	totals(&before);

	for (i = 0; i < FUZZ_GUESTS; i++) {
		struct arm_smccc_1_2_regs ret;

		err = s2_call_regs(S2RMAP_FN_GUEST_CREATE, GUEST_IPA_BITS, page_to_pfn(gpool[i]),
				   1UL << GUEST_POOL_ORDER, 0, &ret);
		if (err) {
			result(false, "fuzz_guests_created", "guest_create: %ld", err);
			goto undo;
		}
		note_guest(f, ret.a2);
	}
	result(true, "fuzz_guests_created", "handles %llu and %llu", f->handles[0], f->handles[1]);

	start = ktime_get();
	deadline = ktime_add_ms(start, fuzz_budget_s * 1000ULL);
	while (f->calls < fuzz_calls) {
		fuzz_one(f);
		if (!(f->calls & 1023)) {
			if (ktime_after(ktime_get(), deadline))
				break;
			cond_resched();
		}
	}
	ms = ktime_ms_delta(ktime_get(), start);
	pr_info("    # fuzz: %lu calls in %lld ms of guest time (%lld calls/s), seed %#llx\n",
		f->calls, ms, ms ? (s64)f->calls * 1000 / ms : 0, seed);
	pr_info("    # fuzz: 0 %lu, EPERM %lu, EINVAL %lu, ENOENT %lu, EBUSY %lu, ENOMEM %lu, "
		"not supported %lu, other %lu\n", f->by_errno[0], f->by_errno[1],
		f->by_errno[2], f->by_errno[3], f->by_errno[4], f->by_errno[5],
		f->by_errno[6], f->by_errno[7]);
	result(!f->by_errno[7], "fuzz_calls", "%lu calls, %lu succeeded, %lu with an "
	       "unexpected return value", f->calls, f->ok, f->by_errno[7]);

undo:
	/* Tear every guest down (a handle already gone gives -ENOENT). */
	for_each_set_bit(i, f->made, MAX_GUEST_ID) {
		err = s2_call(S2RMAP_FN_GUEST_TEARDOWN, i, 0, 0, 0);
		if (!err)
			torn++;
		else if (err != -ENOENT)
			bad++;
	}
	pr_info("    # fuzz: %d guest(s) created, %d left to tear down at the end\n",
		bitmap_weight(f->made, MAX_GUEST_ID), torn);
	for (i = 0; i < FUZZ_POOL_PAGES; i++)
		undo_page(f->pool + i, &bad);
	if (bad)
		pr_info("    # fuzz: %d undo call(s) refused\n", bad);
	for (i = 0; i < FUZZ_POOL_PAGES; i++)
		unclean += report_unclean(f, PFN_PHYS(f->pool + i), unclean);
	for (i = 0; i < FUZZ_GUESTS; i++) {
		int j;

		for (j = 0; j < (1 << GUEST_POOL_ORDER); j++)
			unclean += report_unclean(f, page_to_phys(gpool[i]) + j * PAGE_SIZE,
						  unclean);
	}
	totals(&after);
	d = totals_differ(&before, &after);
	if (d >= 0)
		pr_info("    # fuzz: totals before %llu/%llu/%llu/%llu/%llu after %llu/%llu/%llu/%llu/%llu\n",
			before.v[0], before.v[1], before.v[2], before.v[3], before.v[4],
			after.v[0], after.v[1], after.v[2], after.v[3], after.v[4]);
	if (d < 0)
		result(!bad && !unclean, "fuzz_state_restored",
		       "undo failures %d, pages not host-owned %d, ownership totals as at the start",
		       bad, unclean);
	else
		result(false, "fuzz_state_restored",
		       "undo failures %d, pages not host-owned %d, %s total %llu -> %llu", bad,
		       unclean, total_names[d], before.v[d], after.v[d]);
	vfree(f->log);
	f->log = NULL;
	if (unclean)
		return;	/* leak rather than free pages the host does not own */
out:
	if (pool)
		__free_pages(pool, FUZZ_POOL_ORDER);
	for (i = 0; i < FUZZ_GUESTS; i++)
		if (gpool[i])
			__free_pages(gpool[i], GUEST_POOL_ORDER);
	kfree(f);
}

/*
 * The hyp remembers which donated pages it does not use (and so may give
 * back) in a set of at most 256 disjoint ranges. Donating more disjoint
 * pages than that must be refused with -ENOMEM, never accepted and then
 * lost: every accepted donation must come back.
 */
#define SCATTER_ORDER	10
#define SCATTER_PAGES	300

static void run_scattered_donations(void)
{
	struct page *blk;
	u64 pfn;
	int i, donated = 0, refused = 0, other = 0, stuck = 0;
	long err;
	bool ok[SCATTER_PAGES];

	blk = alloc_pages(GFP_KERNEL | __GFP_ZERO, SCATTER_ORDER);
	if (!blk) {
		result(false, "reclaim_scattered_donations", "out of memory");
		return;
	}
	pfn = page_to_pfn(blk);
	for (i = 0; i < SCATTER_PAGES; i++) {
		err = s2_call(S2RMAP_FN_HOST_DONATE_HYP, pfn + 2 * i, 1, 0, 0);
		ok[i] = !err;
		if (!err)
			donated++;
		else if (err == -ENOMEM)
			refused++;
		else
			other++;
	}
	for (i = 0; i < SCATTER_PAGES; i++)
		if (ok[i] && s2_call(S2RMAP_FN_HYP_DONATE_HOST, pfn + 2 * i, 1, 0, 0))
			stuck++;
	pr_info("    # reclaim_scattered_donations: %d donations accepted, %d refused with -ENOMEM, "
		"%d other errors, %d accepted page(s) not reclaimable\n", donated, refused, other, stuck);
	result(donated >= 200 && !other && !stuck, "reclaim_scattered_donations",
	       "%d accepted, %d refused, %d other errors, %d stuck", donated, refused, other, stuck);
	if (!stuck)
		__free_pages(blk, SCATTER_ORDER);
}

/*
 * The ghost checker (debug kernels) compares every transition with the
 * specification; after the tests above it must have compared some, and
 * found nothing wrong (a mismatch would have panicked the hyp).
 */
static void run_ghost_report(void)
{
	struct arm_smccc_1_2_regs ret;
	long err = s2_call_regs(S2RMAP_FN_GHOST_CHECK, 0, 0, 0, 0, &ret);

	if (err == -EOPNOTSUPP) {
		tests_run++;
		pr_info("    ok %d - ghost_checker_compared_calls # SKIP no ghost checker in this build\n",
			tests_run);
		return;
	}
	result(!err && ret.a2 > 0, "ghost_checker_compared_calls",
	       "%lu calls compared page by page with the specification, %lu refused on their arguments, %lu too big to compare, %lu on aliased guest frames (err %ld)",
	       ret.a2, ret.a3, ret.a4, ret.a5, err);
}

/*
 * Makes the ghost checker see a wrong state after one real share: the hyp
 * must panic with a message naming the call and the page. Returning at all
 * is the failure.
 */
static int run_ghost_sabotage(void)
{
	struct page *page = alloc_page(GFP_KERNEL | __GFP_ZERO);
	u64 pfn;
	long ret;

	if (!page)
		return -ENOMEM;
	pfn = page_to_pfn(page);
	ret = s2_call(S2RMAP_FN_GHOST_CHECK, 1, 0, 0, 0);
	if (ret) {
		result(false, "ghost_sabotage_panics", "arming the sabotage: %ld", ret);
		__free_page(page);
		return -EINVAL;
	}
	pr_info("    # ghost_sabotage: sharing pfn %#llx; the hyp must panic now\n", pfn);
	ret = s2_call(S2RMAP_FN_HOST_SHARE_HYP, pfn, 0, 0, 0);
	result(false, "ghost_sabotage_panics",
	       "the share returned %ld: a falsified comparison went unnoticed", ret);
	return -EINVAL;
}

static int __init s2rmap_stress_init(void)
{
	pr_info("    KTAP version 1\n");
	pr_info("    # Subtest: s2rmap_stress\n");
	if (ghost_sabotage)
		return run_ghost_sabotage();
	run_injection_tests();
	run_smp_stress();
	run_fuzz();
	run_scattered_donations();
	run_ghost_report();
	pr_info("    1..%d\n", tests_run);
	pr_info("# s2rmap_stress: %d passed, %d failed\n", tests_run - tests_failed,
		tests_failed);
	return tests_failed ? -EINVAL : 0;
}

static void __exit s2rmap_stress_exit(void)
{
}

module_init(s2rmap_stress_init);
module_exit(s2rmap_stress_exit);
MODULE_DESCRIPTION("s2rmap reliability tests: fault injection, SMP stress, hostile input");
MODULE_LICENSE("GPL");
