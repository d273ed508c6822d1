// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * s2rmap initramfs /init: mounts the pseudo filesystems, runs the checks,
 * prints KTAP on the console, and powers the machine off.
 *
 * Built static by `cargo xtask initramfs`:
 *   aarch64-linux-gnu-gcc -static -Os -Wall -Wextra -Werror
 *
 * Tests:
 *   1 pkvm_protected_mode     the kernel log says pKVM initialised (hVHE or nVHE)
 *   2 s2rmap_el2_rust_check   the kernel log says the EL2 Rust check passed
 *                             (SKIP on a kernel without s2rmap)
 *   3.. insmod_<module>       every /lib/modules/ *.ko loads (selftest modules
 *                             report their own KTAP through the kernel log);
 *                             one SKIP result when there is none. Words
 *                             "<module>.<param>=<value>" of the kernel
 *                             command line become the module's parameters.
 *   then, after the modules:
 *   devmem_reads_host_page    a child maps one of init's own pages through
 *                             /dev/mem and reads back what init wrote there:
 *                             the /dev/mem path works on host memory
 *   devmem_hyp_page_sigbus    a child maps the page the selftest module
 *                             donated to the hypervisor (its physical address
 *                             is in /sys/kernel/debug/s2rmap/donated_pa) and
 *                             reads it: it must die of SIGBUS (BUS_OBJERR at
 *                             the mapped address, twice: the handler returns
 *                             and the access faults again), never read data
 *                             (SKIP without the selftest module)
 *   kernel_alive_after_sigbus the kernel logged no oops or panic and still
 *                             runs processes (SKIP with the previous one)
 *   kvm_vm_run_and_teardown   a child creates a KVM VM with one vCPU, runs
 *                             guest code until its first MMIO write, and
 *                             closes everything, twice: with pKVM this goes
 *                             through the hyp's VM set-up (shares, pins and
 *                             donations of host memory) and teardown (unpins,
 *                             donations back to the host)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define MODULE_DIR "/lib/modules"
#define DONATED_PA "/sys/kernel/debug/s2rmap/donated_pa"
#define DEVMEM_TESTS 3
#define KVM_TESTS 1
#define MAX_MODULES 32
#define KMSG_SIZE (256 * 1024)

static char kmsg[KMSG_SIZE];
static size_t kmsg_len;
static int test_no;

static void diag(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("# ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

static void result(int ok, const char *name, const char *directive)
{
	printf("%sok %d - %s%s%s\n", ok ? "" : "not ", ++test_no, name,
	       directive ? " # " : "", directive ? directive : "");
	fflush(stdout);
}

static void do_mount(const char *src, const char *dst, const char *type)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, 0, NULL) && errno != EBUSY)
		diag("mount %s on %s failed: %s", type, dst, strerror(errno));
}

/* Reads the whole kernel log so far (message text only) into kmsg[]. */
static void read_kmsg(void)
{
	char rec[8192];
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);

	kmsg_len = 0;
	if (fd < 0) {
		diag("open /dev/kmsg: %s", strerror(errno));
		return;
	}
	for (;;) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);
		char *msg;
		size_t len;

		if (n < 0 && errno == EPIPE)
			continue; /* a record was overwritten: go on */
		if (n <= 0)
			break;
		rec[n] = '\0';
		/* "prio,seq,usec,flags;message\n" plus continuation lines. */
		msg = strchr(rec, ';');
		msg = msg ? msg + 1 : rec;
		len = strcspn(msg, "\n");
		if (kmsg_len + len + 2 > sizeof(kmsg))
			break;
		memcpy(kmsg + kmsg_len, msg, len);
		kmsg_len += len;
		kmsg[kmsg_len++] = '\n';
	}
	kmsg[kmsg_len] = '\0';
	close(fd);
}

static const char *kmsg_find(const char *needle)
{
	return strstr(kmsg, needle);
}

static void test_pkvm(void)
{
	if (kmsg_find("Protected hVHE mode initialized successfully")) {
		diag("pKVM: protected hVHE");
		result(1, "pkvm_protected_mode", NULL);
	} else if (kmsg_find("Protected nVHE mode initialized successfully")) {
		diag("pKVM: protected nVHE");
		result(1, "pkvm_protected_mode", NULL);
	} else {
		diag("the kernel log has no pKVM initialisation line");
		result(0, "pkvm_protected_mode", NULL);
	}
}

static void test_rust_check(void)
{
	if (kmsg_find("s2rmap: EL2 Rust init check passed"))
		result(1, "s2rmap_el2_rust_check", NULL);
	else if (kmsg_find("s2rmap: EL2 Rust init check failed"))
		result(0, "s2rmap_el2_rust_check", NULL);
	else
		result(1, "s2rmap_el2_rust_check", "SKIP kernel without s2rmap");
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names of the .ko files in MODULE_DIR. */
static int list_modules(char **names)
{
	DIR *d = opendir(MODULE_DIR);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < MAX_MODULES) {
		size_t len = strlen(e->d_name);

		if (len > 3 && !strcmp(e->d_name + len - 3, ".ko"))
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp);
	return n;
}

/*
 * The parameters of module @mod from the kernel command line: each
 * "<mod>.<param>=<value>" word becomes "<param>=<value>", as modprobe does
 * (the kernel applies such words only to built-in code).
 */
static void module_args(const char *mod, char *args, size_t size)
{
	char cmdline[4096], *word, *save = NULL;
	size_t len = strlen(mod), used = 0;
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, cmdline, sizeof(cmdline) - 1);

	args[0] = '\0';
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return;
	cmdline[n] = '\0';
	for (word = strtok_r(cmdline, " \t\n", &save); word;
	     word = strtok_r(NULL, " \t\n", &save)) {
		int w;

		if (strncmp(word, mod, len) || word[len] != '.' || !word[len + 1])
			continue;
		w = snprintf(args + used, size - used, "%s%s", used ? " " : "", word + len + 1);
		if (w < 0 || (size_t)w >= size - used) {
			args[used] = '\0';
			break;
		}
		used += w;
	}
}

static void test_module(const char *name)
{
	char path[512], test[300], mod[256], args[1024];
	int fd, ret;

	snprintf(path, sizeof(path), MODULE_DIR "/%s", name);
	snprintf(test, sizeof(test), "insmod_%.*s", (int)(strlen(name) - 3), name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		diag("open %s: %s", path, strerror(errno));
		result(0, test, NULL);
		return;
	}
	snprintf(mod, sizeof(mod), "%.*s", (int)(strlen(name) - 3), name);
	module_args(mod, args, sizeof(args));
	if (args[0])
		diag("%s parameters: %s", mod, args);
	ret = syscall(SYS_finit_module, fd, args, 0);
	if (ret)
		diag("finit_module %s: %s", path, strerror(errno));
	close(fd);
	result(ret == 0, test, NULL);
}

/* The physical address of a page of ours, from /proc/self/pagemap. */
static int self_pa(const void *va, unsigned long long *pa)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t entry = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = pread(fd, &entry, sizeof(entry), ((uintptr_t)va / page) * sizeof(entry));
	close(fd);
	if (n != sizeof(entry) || !(entry & (1ULL << 63)))
		return -ENOENT;
	*pa = (entry & ((1ULL << 55) - 1)) * page + (uintptr_t)va % page;
	return 0;
}

/* Maps one page of /dev/mem at @pa, read-only; NULL on failure. */
static volatile const unsigned char *map_devmem(unsigned long long pa)
{
	long page = sysconf(_SC_PAGESIZE);
	int fd = open("/dev/mem", O_RDONLY);
	void *p;

	if (fd < 0)
		return NULL;
	p = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, (off_t)pa);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

/* What the child's SIGBUS handler saw, sent to the parent through a pipe. */
struct bus_report {
	int code;
	uintptr_t addr;
};

static int report_fd = -1;

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	struct bus_report r = { si->si_code, (uintptr_t)si->si_addr };

	(void)ctx;
	if (write(report_fd, &r, sizeof(r)) != sizeof(r))
		_exit(5);
	/* Return to the faulting load with the default action: it faults again. */
	signal(sig, SIG_DFL);
}

/* Exit codes of the devmem children that did not die of a signal. */
enum { CHILD_READ = 0, CHILD_NO_DEVMEM = 2, CHILD_MISMATCH = 3 };

static const char *child_status(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_READ)
		snprintf(buf, len, "read the page and exited normally");
	else if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_NO_DEVMEM)
		snprintf(buf, len, "could not map /dev/mem");
	else if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_MISMATCH)
		snprintf(buf, len, "read other data than was written");
	else
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	return buf;
}

static void test_devmem_host_page(void)
{
	static unsigned char page[65536] __attribute__((aligned(65536)));
	static const char magic[] = "s2rmap: a page the host owns";
	unsigned long long pa = 0;
	char why[80];
	int status, err;
	pid_t pid;

	memcpy(page, magic, sizeof(magic));
	if (mlock(page, sizeof(page)))
		diag("mlock: %s", strerror(errno));
	err = self_pa(page, &pa);
	if (err) {
		diag("no physical address for our page: %s", strerror(-err));
		result(0, "devmem_reads_host_page", NULL);
		return;
	}
	diag("reading init's own page at PA 0x%llx through /dev/mem", pa);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		volatile const unsigned char *p = map_devmem(pa);
		size_t i;

		if (!p)
			_exit(CHILD_NO_DEVMEM);
		for (i = 0; i < sizeof(magic); i++)
			if (p[i] != (unsigned char)magic[i])
				_exit(CHILD_MISMATCH);
		_exit(CHILD_READ);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid) {
		diag("fork/wait: %s", strerror(errno));
		result(0, "devmem_reads_host_page", NULL);
		return;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != CHILD_READ)
		diag("the child %s", child_status(status, why, sizeof(why)));
	result(WIFEXITED(status) && WEXITSTATUS(status) == CHILD_READ,
	       "devmem_reads_host_page", NULL);
}

/* Reads DONATED_PA; 0, -ENOENT without the selftest module, or an error. */
static int donated_pa(unsigned long long *pa)
{
	char buf[64], *end;
	int fd = open(DONATED_PA, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	errno = 0;
	*pa = strtoull(buf, &end, 0);
	if (errno || end == buf || !*pa)
		return -EINVAL;
	return 0;
}

/* Returns whether the SIGBUS test ran (whatever its outcome). */
static int test_devmem_hyp_page(void)
{
	const char *name = "devmem_hyp_page_sigbus";
	struct bus_report reports[2];
	unsigned long long pa = 0;
	int status, pipefd[2], ok, err;
	ssize_t got = 0, n;
	uintptr_t mapped;
	char why[80];
	pid_t pid;

	err = donated_pa(&pa);
	if (err == -ENOENT) {
		result(1, name, "SKIP no " DONATED_PA " (selftest module not loaded)");
		return 0;
	}
	if (err) {
		diag("%s: %s", DONATED_PA, strerror(-err));
		result(0, name, NULL);
		return 0;
	}
	if (pipe(pipefd)) {
		diag("pipe: %s", strerror(errno));
		result(0, name, NULL);
		return 0;
	}
	diag("reading the page donated to the hypervisor, PA 0x%llx, through /dev/mem", pa);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
		volatile const unsigned char *p;

		close(pipefd[0]);
		report_fd = pipefd[1];
		p = map_devmem(pa);
		if (!p)
			_exit(CHILD_NO_DEVMEM);
		mapped = (uintptr_t)p;
		if (write(report_fd, &mapped, sizeof(mapped)) != sizeof(mapped))
			_exit(CHILD_NO_DEVMEM);
		sigemptyset(&sa.sa_mask);
		sigaction(SIGBUS, &sa, NULL);
		(void)p[0];
		_exit(CHILD_READ);
	}
	close(pipefd[1]);
	if (pid < 0 || waitpid(pid, &status, 0) != pid) {
		diag("fork/wait: %s", strerror(errno));
		close(pipefd[0]);
		result(0, name, NULL);
		return 1;
	}
	mapped = 0;
	if (read(pipefd[0], &mapped, sizeof(mapped)) != sizeof(mapped))
		mapped = 0;
	while (got < (ssize_t)sizeof(reports) &&
	       (n = read(pipefd[0], (char *)reports + got, sizeof(reports) - got)) > 0)
		got += n;
	close(pipefd[0]);

	ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS;
	diag("the child %s", child_status(status, why, sizeof(why)));
	if (got < (ssize_t)sizeof(reports[0])) {
		diag("the child's SIGBUS handler did not run");
		ok = 0;
	} else if (reports[0].code != BUS_OBJERR || reports[0].addr != mapped) {
		diag("SIGBUS with si_code %d at %#lx, expected BUS_OBJERR (%d) at %#lx",
		     reports[0].code, (unsigned long)reports[0].addr, BUS_OBJERR,
		     (unsigned long)mapped);
		ok = 0;
	} else {
		diag("SIGBUS, BUS_OBJERR at the mapped address %#lx", (unsigned long)mapped);
	}
	result(ok, name, NULL);
	return 1;
}

static void test_kernel_alive(int ran)
{
	static const char *const bad[] = {
		"Internal error", "Unable to handle kernel", "Kernel panic",
		"Oops", "BUG:", "HYP panic", "nVHE hyp",
	};
	const char *name = "kernel_alive_after_sigbus";
	int status, ok = 1;
	size_t i;
	pid_t pid;

	if (!ran) {
		result(1, name, "SKIP the SIGBUS test did not run");
		return;
	}
	read_kmsg();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (kmsg_find(bad[i])) {
			diag("the kernel log has \"%s\"", bad[i]);
			ok = 0;
		}
	}
	pid = fork();
	if (pid == 0)
		_exit(42);
	if (pid < 0 || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status) != 42) {
		diag("a new process did not run to completion");
		ok = 0;
	}
	result(ok, name, NULL);
}

/*
 * The guest: with its MMU off, write 0x42 to 0x10000000, outside any
 * memslot, which exits to us as MMIO; then spin.
 */
#define GUEST_RAM	0x80000000ULL
#define GUEST_MMIO	0x10000000ULL
static const uint32_t guest_code[] = {
	0xd2a20000,	/* mov x0, #0x10000000 */
	0xd2800841,	/* mov x1, #0x42 */
	0xf9000001,	/* str x1, [x0] */
	0x14000000,	/* b . */
};

#define CORE_REG(field) (KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | \
			 (offsetof(struct kvm_regs, field) / sizeof(__u32)))

/* One VM with one vCPU, run to its MMIO exit; 0 or the failing step (diag printed). */
static int kvm_once(int kvm)
{
	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = GUEST_RAM, .memory_size = 0x10000,
	};
	struct kvm_vcpu_init init;
	struct kvm_one_reg reg;
	struct kvm_run *run = MAP_FAILED;
	uint64_t pc = GUEST_RAM;
	int vm = -1, vcpu = -1, ret = 1, mmap_size;
	void *ram;

	ram = mmap(NULL, region.memory_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED) {
		diag("kvm: mmap guest RAM: %s", strerror(errno));
		return ret;
	}
	memcpy(ram, guest_code, sizeof(guest_code));
	region.userspace_addr = (uintptr_t)ram;

	ret++;
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		diag("kvm: KVM_CREATE_VM: %s", strerror(errno));
		goto out;
	}
	ret++;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region)) {
		diag("kvm: KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
		goto out;
	}
	ret++;
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) {
		diag("kvm: KVM_CREATE_VCPU: %s", strerror(errno));
		goto out;
	}
	ret++;
	if (ioctl(vm, KVM_ARM_PREFERRED_TARGET, &init) ||
	    ioctl(vcpu, KVM_ARM_VCPU_INIT, &init)) {
		diag("kvm: vCPU init: %s", strerror(errno));
		goto out;
	}
	ret++;
	reg.id = CORE_REG(regs.pc);
	reg.addr = (uintptr_t)&pc;
	if (ioctl(vcpu, KVM_SET_ONE_REG, &reg)) {
		diag("kvm: set PC: %s", strerror(errno));
		goto out;
	}
	ret++;
	mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size > 0)
		run = mmap(NULL, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED) {
		diag("kvm: mmap kvm_run: %s", strerror(errno));
		goto out;
	}
	ret++;
	if (ioctl(vcpu, KVM_RUN, 0)) {
		diag("kvm: KVM_RUN: %s", strerror(errno));
		goto out;
	}
	ret++;
	if (run->exit_reason != KVM_EXIT_MMIO || run->mmio.phys_addr != GUEST_MMIO ||
	    !run->mmio.is_write || run->mmio.len != 8 || run->mmio.data[0] != 0x42) {
		diag("kvm: exit reason %u (MMIO is %u), address 0x%llx, write %u, len %u, data 0x%x",
		     run->exit_reason, KVM_EXIT_MMIO, (unsigned long long)run->mmio.phys_addr,
		     run->mmio.is_write, run->mmio.len, run->mmio.data[0]);
		goto out;
	}
	ret = 0;
out:
	if (run != MAP_FAILED)
		munmap(run, mmap_size);
	if (vcpu >= 0)
		close(vcpu);
	if (vm >= 0)
		close(vm);
	munmap(ram, region.memory_size);
	return ret;
}

static void test_kvm(void)
{
	const char *name = "kvm_vm_run_and_teardown";
	int status, i, ret = 0;
	pid_t pid;

	if (access("/dev/kvm", R_OK | W_OK)) {
		result(1, name, "SKIP no /dev/kvm");
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);

		alarm(30);
		if (kvm < 0) {
			diag("open /dev/kvm: %s", strerror(errno));
			_exit(1);
		}
		for (i = 0; i < 2 && !ret; i++) {
			ret = kvm_once(kvm);
			if (!ret)
				diag("kvm: VM %d ran to its MMIO write and was torn down", i + 1);
		}
		close(kvm);
		fflush(stdout);
		_exit(ret);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid) {
		diag("fork/wait: %s", strerror(errno));
		result(0, name, NULL);
		return;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		diag("the KVM child %s", WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) :
			 "failed (see above)");
	result(WIFEXITED(status) && !WEXITSTATUS(status), name, NULL);
}

int main(void)
{
	char *modules[MAX_MODULES];
	struct utsname u;
	int nmod, i;

	do_mount("proc", "/proc", "proc");
	do_mount("sysfs", "/sys", "sysfs");
	do_mount("devtmpfs", "/dev", "devtmpfs");
	do_mount("debugfs", "/sys/kernel/debug", "debugfs");

	nmod = list_modules(modules);

	printf("KTAP version 1\n");
	printf("1..%d\n", 2 + (nmod ? nmod : 1) + DEVMEM_TESTS + KVM_TESTS);
	if (!uname(&u))
		diag("s2rmap-init: %s %s %s", u.sysname, u.release, u.machine);
	fflush(stdout);

	read_kmsg();
	test_pkvm();
	test_rust_check();
	if (nmod) {
		for (i = 0; i < nmod; i++)
			test_module(modules[i]);
	} else {
		result(1, "selftests", "SKIP no selftest module in this initramfs");
	}
	test_devmem_host_page();
	test_kernel_alive(test_devmem_hyp_page());
	test_kvm();

	diag("s2rmap-init: powering off");
	sync();
	reboot(RB_POWER_OFF);
	diag("reboot: %s", strerror(errno));
	for (;;)
		pause();
}
