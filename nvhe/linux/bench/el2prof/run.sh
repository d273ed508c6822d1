#!/bin/sh
# Exact per-function EL2 profile of single bench hypercalls (README.md here).
#
# Usage: nvhe/linux/bench/el2prof/run.sh <variant> [plan]
#   variant: stock-bench | s2rmap, as built by `cargo xtask bench` (kernel from
#            target/linux/build/<variant>, initramfs from target/bench/).
#   plan:    label:fn:x2:occ,... (see el2prof_rsp.py); default: the (b), (c)
#            and (d) pairs of the bench.
# Output: target/el2prof/<variant>/{trace-*.txt,profile.md,console.log}.
set -eu
V=$1
PLAN=${2:-share1:9:*:5,unshare1:10:*:5,donate1:28:1:5,reclaim1:29:1:5,donate512:28:512:3,reclaim512:29:512:3}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../../.." && pwd)
K=$ROOT/target/linux/build/$V
INITRD=$ROOT/target/bench/initramfs-$V.cpio
OUT=$ROOT/target/el2prof/$V
for f in "$K/vmlinux" "$K/System.map" "$K/arch/arm64/boot/Image" "$INITRD"; do
	[ -f "$f" ] || { echo "el2prof: $f missing: run cargo xtask bench first" >&2; exit 1; }
done
mkdir -p "$OUT"
# Freeze the kernel being traced: a rebuild during the run must not change
# the symbols the traces are read against.
cp "$K/vmlinux" "$K/System.map" "$OUT/"
echo "el2prof: booting $V under -icount with the gdbstub on :1234 (one vCPU)"
timeout --kill-after=5 "${QEMU_TIMEOUT:-2400}" qemu-system-aarch64 \
	-M virt,virtualization=on,gic-version=3 -cpu max,lpa2=off \
	-icount shift=0,align=off -smp 1 -m 1G -nic none -nographic -no-reboot \
	-kernel "$K/arch/arm64/boot/Image" -initrd "$INITRD" \
	-append 'console=ttyAMA0 kvm-arm.mode=protected panic=-1' -s -S \
	</dev/null >"$OUT/console.log" 2>&1 &
QPID=$!
sleep 1
timeout "${TRACE_TIMEOUT:-2400}" python3 "$HERE/el2prof_rsp.py" "$OUT/System.map" "$OUT" "$PLAN" \
	2>&1 | tee "$OUT/tracer.log"
wait $QPID || echo "el2prof: qemu exited with $?"
set -- "$OUT"/trace-*.txt
TOP=25 python3 "$HERE/analyze.py" "$OUT/vmlinux" "$@" >"$OUT/profile.md"
echo "el2prof: wrote $OUT/profile.md"
