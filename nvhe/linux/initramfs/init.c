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
 *                             one SKIP result when there is none.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#define MODULE_DIR "/lib/modules"
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

static void test_module(const char *name)
{
	char path[512], test[300];
	int fd, ret;

	snprintf(path, sizeof(path), MODULE_DIR "/%s", name);
	snprintf(test, sizeof(test), "insmod_%.*s", (int)(strlen(name) - 3), name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		diag("open %s: %s", path, strerror(errno));
		result(0, test, NULL);
		return;
	}
	ret = syscall(SYS_finit_module, fd, "", 0);
	if (ret)
		diag("finit_module %s: %s", path, strerror(errno));
	close(fd);
	result(ret == 0, test, NULL);
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
	printf("1..%d\n", 2 + (nmod ? nmod : 1));
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

	diag("s2rmap-init: powering off");
	sync();
	reboot(RB_POWER_OFF);
	diag("reboot: %s", strerror(errno));
	for (;;)
		pause();
}
