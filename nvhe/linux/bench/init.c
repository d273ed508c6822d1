// SPDX-License-Identifier: GPL-2.0-only
/*
 * /init of the bench initramfs (cargo xtask bench): loads
 * /lib/modules/s2rmap_bench.ko, whose init function runs every
 * measurement and prints "BENCH ..." lines, then powers off. Nothing
 * else runs, so both kernels see the same work before and during the
 * measurements.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MODULE_PATH "/lib/modules/s2rmap_bench.ko"

int main(void)
{
	int fd = open(MODULE_PATH, O_RDONLY | O_CLOEXEC);

	printf("bench-init: loading %s\n", MODULE_PATH);
	fflush(stdout);
	if (fd < 0)
		printf("bench-init: open: %s\n", strerror(errno));
	else if (syscall(SYS_finit_module, fd, "", 0) != 0)
		printf("bench-init: finit_module: %s\n", strerror(errno));
	else
		printf("bench-init: module loaded\n");
	printf("bench-init: power off\n");
	fflush(stdout);
	sync();
	reboot(RB_POWER_OFF);
	return 1;
}
