#!/usr/bin/env python3
"""Trace every EL2 instruction of chosen host hypercalls over QEMU's gdbstub.

Same job and same output format as el2prof.py (the gdb-Python version), but speaks the
GDB remote serial protocol directly: one 's' and one 'p' (pc) round trip per
instruction, ~100x faster than gdb's stepi, so the 512-page calls are practical.

usage: el2prof_rsp.py <System.map> <outdir> <plan> [port]
  plan: comma-separated label:fn:x2:occ (x2 '*' = any): the occ-th hypercall (1-based,
        counted from the bench module's init, i.e. after do_init_module is reached)
        with host x0 == 0xc6000000|fn (and x2 matching) is traced, from the lower-EL
        AArch64 sync vector (VBAR_EL2 + 0x400) until the PC is back in EL1.
"""
import os
import re
import socket
import sys
import time

EL1_MIN = 0xFFFF000000000000
MAX_STEPS = 3_000_000
M64 = 2**64 - 1


class Rsp:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.ack = True
        self.s.sendall(b"+")
        r = self.cmd("QStartNoAckMode")
        if r == "OK":
            self.ack = False

    def _recv_packet(self):
        while True:
            # skip acks / noise until '$'
            i = self.buf.find(b"$")
            if i >= 0:
                j = self.buf.find(b"#", i)
                if j >= 0 and len(self.buf) >= j + 3:
                    data = self.buf[i + 1:j]
                    self.buf = self.buf[j + 3:]
                    if self.ack:
                        self.s.sendall(b"+")
                    return data.decode("latin1")
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("gdbstub closed the connection")
            self.buf += chunk

    def send(self, data):
        d = data.encode("latin1")
        cs = sum(d) & 0xFF
        self.s.sendall(b"$" + d + b"#%02x" % cs)

    def cmd(self, data):
        self.send(data)
        return self._recv_packet()

    def cmd_output(self, data):
        """A command answered by 'O' packets then OK (qRcmd)."""
        self.send(data)
        out = ""
        while True:
            r = self._recv_packet()
            if r.startswith("O") and r != "OK":
                out += bytes.fromhex(r[1:]).decode("latin1")
            else:
                return out, r


def le64(hexstr):
    return int.from_bytes(bytes.fromhex(hexstr), "little")


def main():
    smap, out, plan_s = sys.argv[1:4]
    port = int(sys.argv[4]) if len(sys.argv) > 4 else 1234
    plan = []
    for item in plan_s.split(","):
        label, fn, x2, occ = item.split(":")
        plan.append((label, int(fn, 0), None if x2 == "*" else int(x2, 0), int(occ)))
    syms = {}
    for line in open(smap):
        a, _, n = line.split()[:3]
        syms[n] = int(a, 16)
    os.makedirs(out, exist_ok=True)

    def log(msg):
        print("el2prof_rsp: " + msg, flush=True)

    r = None
    for _ in range(50):
        try:
            r = Rsp(port)
            break
        except OSError:
            time.sleep(0.2)
    if r is None:
        sys.exit("cannot connect to the gdbstub")

    # Register numbers from the target description.
    regnum = {}

    def read_xml(name):
        data, off = "", 0
        while True:
            p = r.cmd("qXfer:features:read:%s:%x,%x" % (name, off, 0x3000))
            if not p or p[0] not in "ml":
                raise RuntimeError("qXfer %s: %r" % (name, p))
            data += p[1:]
            off += len(p) - 1
            if p[0] == "l":
                return data

    nxt = [0]

    def walk(name):
        x = read_xml(name)
        for m in re.finditer(r"<xi:include href=\"([^\"]+)\"|<reg ([^>]*)>", x):
            if m.group(1):
                walk(m.group(1))
                continue
            attrs = dict(re.findall(r"(\w+)=\"([^\"]*)\"", m.group(2)))
            n = int(attrs["regnum"]) if "regnum" in attrs else nxt[0]
            regnum[attrs["name"]] = n
            nxt[0] = n + 1

    walk("target.xml")
    PC = "p%x" % regnum["pc"]

    def reg(name):
        return le64(r.cmd("p%x" % regnum[name]))

    def mem64(addr):
        return le64(r.cmd("m%x,8" % addr))

    def cont():
        return r.cmd("c")

    # 1. Run to do_init_module (EL1): protected KVM is up, the bench module about to run.
    dim = syms["do_init_module"]
    assert r.cmd("Z1,%x,4" % dim) == "OK"
    stop = cont()
    pc = reg("pc")
    log("stop %s at pc=%#x (do_init_module=%#x)" % (stop, pc, dim))
    assert pc == dim
    r.cmd("z1,%x,4" % dim)

    # 2. Hyp VA layout: hyp_va = pa - hyp_physvirt_offset, pa = kva - kimage_voffset.
    kimage_voffset = mem64(syms["kimage_voffset"])
    pa = (syms["__kvm_nvhe_hyp_physvirt_offset"] - kimage_voffset) & M64
    o, _ = r.cmd_output("qRcmd," + ("xp /1gx %#x" % pa).encode().hex())
    hpo = int(o.split(":")[1].split()[0], 16)
    vec_kva = syms["__kvm_nvhe___kvm_hyp_host_vector"]
    vec_hyp = (vec_kva - kimage_voffset - hpo) & M64
    vbar = reg("VBAR_EL2")
    log("kimage_voffset=%#x hyp_physvirt_offset=%#x" % (kimage_voffset, hpo))
    log("host vector kva=%#x -> hyp va (formula) %#x; VBAR_EL2=%#x: %s"
        % (vec_kva, vec_hyp, vbar, "OK" if vec_hyp == vbar else "MISMATCH"))
    kva_delta = (vec_kva - vbar) & M64
    with open(os.path.join(out, "meta.txt"), "w") as f:
        f.write("kimage_voffset %#x\nhyp_physvirt_offset %#x\nvbar_el2 %#x\n"
                "vector_kva %#x\nvector_hyp_formula %#x\nkva_delta %#x\n"
                % (kimage_voffset, hpo, vbar, vec_kva, vec_hyp, kva_delta))

    # 3. Stop at every lower-EL sync exception; trace the planned hypercalls.
    entry = vbar + 0x400
    assert r.cmd("Z1,%x,4" % entry) == "OK"
    counts = {}
    hits = 0
    while plan:
        label, pfn, px2, occ = plan[0]
        if hits:
            # QEMU re-reports a breakpoint at the current PC: step off it first.
            r.cmd("z1,%x,4" % entry)
            r.cmd("s")
            r.cmd("Z1,%x,4" % entry)
        stop = cont()
        pc = reg("pc")
        if pc != entry:
            log("unexpected stop %s at %#x; giving up" % (stop, pc))
            break
        hits += 1
        esr = reg("ESR_EL2")
        if esr >> 26 != 0x16:
            continue
        x0 = reg("x0")
        if x0 & 0xFFFF0000 != 0xC6000000:
            continue
        x2 = reg("x2")
        fn = x0 & 0xFFFF
        counts[(fn, None)] = counts.get((fn, None), 0) + 1
        counts[(fn, x2)] = counts.get((fn, x2), 0) + 1
        if not (fn == pfn and (px2 is None or px2 == x2) and counts[(fn, px2)] == occ):
            continue
        x1, elr, cpsr = reg("x1"), reg("ELR_EL2"), reg("cpsr")
        log("%s: hvc x0=%#x x1=%#x x2=%#x ELR_EL2=%#x ESR_EL2=%#x cpsr=%#x (vector hits %d)"
            % (label, x0, x1, x2, elr, esr, cpsr, hits))
        r.cmd("z1,%x,4" % entry)
        t0 = time.time()
        pcs = [pc]
        while True:
            r.cmd("s")
            pc = le64(r.cmd(PC))
            if pc >= EL1_MIN:
                break
            pcs.append(pc)
            if len(pcs) > MAX_STEPS:
                log("too many steps")
                break
        dt = time.time() - t0
        rx0, rx1, cpsr1 = reg("x0"), reg("x1"), reg("cpsr")
        log("%s: %d EL2 instructions (+1 hvc), back at %#x (ELR_EL2 was %#x, cpsr %#x), "
            "x0=%#x x1=%#x, %.1fs" % (label, len(pcs), pc, elr, cpsr1, rx0, rx1, dt))
        with open(os.path.join(out, "trace-%s.txt" % label), "w") as f:
            f.write("# label %s\n# fn %d\n# x0 %#x\n# x1 %#x\n# x2 %#x\n# occurrence %d\n"
                    "# elr_el2 %#x\n# returned_to %#x\n# ret_x0 %#x\n# ret_x1 %#x\n"
                    "# kva_delta %#x\n# el2_insns %d\n"
                    % (label, fn, x0, x1, x2, occ, elr, pc, rx0, rx1, kva_delta, len(pcs)))
            f.write("\n".join("%x" % p for p in pcs))
            f.write("\n")
        assert r.cmd("Z1,%x,4" % entry) == "OK"
        plan.pop(0)
    r.cmd("z1,%x,4" % entry)
    log("done (%d vector hits); detaching, the guest runs on" % hits)
    r.send("D")
    try:
        r._recv_packet()
    except EOFError:
        pass


if __name__ == "__main__":
    main()
