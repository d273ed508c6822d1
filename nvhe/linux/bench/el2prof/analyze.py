#!/usr/bin/env python3
"""Symbolize EL2 PC traces (from el2prof_rsp.py / el2prof.py) against a vmlinux.

usage: analyze.py <vmlinux> <trace> [<trace> ...]   -> markdown on stdout
       env TOP=25 (rows per table)

Per trace: total instructions (HVC + every EL2 instruction through the ERET), self
counts (the function whose symbol contains the PC) and inclusive counts (call stack
tracked through bl/blr (push) and ret (pop); a branch into another symbol without a
call replaces the top frame, i.e. tail calls and asm fall-throughs), plus counts of
tlbi / dsb / isb and exclusive/atomic instructions.
"""
import bisect
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict

ALIAS_OF = {}
TOP = int(os.environ.get("TOP", "25"))
NM = "aarch64-linux-gnu-nm"
OBJDUMP = "aarch64-linux-gnu-objdump"


def load_symbols(vmlinux, lo, hi):
    out = subprocess.run([NM, "-n", "-S", vmlinux], capture_output=True, text=True,
                         check=True).stdout
    by_addr = {}
    global ALIASES
    ALIASES = defaultdict(list)
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4:
            a, size, t, n = f
            size = int(size, 16)
        elif len(f) == 3:
            a, t, n = f
            size = None
        else:
            continue
        if t not in "tTW":
            continue
        a = int(a, 16)
        if not (lo <= a < hi):
            continue
        if "$" in n[:13] and re.search(r"\$[xd](\.|$)", n) or "__hyp_section_" in n:
            continue
        # prefer a sized, __kvm_nvhe_-prefixed name for an address
        ALIASES[a].append(n)
        prev = by_addr.get(a)
        score = (size is not None, n.startswith("__kvm_nvhe_"), not n.endswith("_start"))
        if prev is None or score > prev[2]:
            by_addr[a] = (n, size, score)
    starts = sorted(by_addr)
    for a in starts:
        ALIAS_OF[by_addr[a][0]] = [x for x in ALIASES[a] if x != by_addr[a][0]]
    return starts, [by_addr[a][0] for a in starts], [by_addr[a][1] for a in starts]


def demangle_all(names):
    stripped = [n[len("__kvm_nvhe_"):] if n.startswith("__kvm_nvhe_") else n for n in names]
    p = subprocess.run(["c++filt"], input="\n".join(stripped) + "\n", capture_output=True,
                       text=True, check=True)
    res = {}
    for n, s, d in zip(names, stripped, p.stdout.splitlines()):
        d = re.sub(r"::h[0-9a-f]{16}$", "", d)
        rust = s.startswith("_ZN") or s.startswith("_R")
        res[n] = (d, rust)
    seen = Counter(d for d, _ in res.values())
    for n, (d, rust) in list(res.items()):
        if seen[d] > 1:
            hs = []
            for x in [n] + ALIAS_OF.get(n, []):
                h = re.search(r"17h([0-9a-f]{16})E", x)
                if h:
                    hs.append(h.group(1)[:4])
            res[n] = (d + " [" + ("=".join(hs) if hs else n[-6:]) + "]", rust)
    return res


def disassemble(vmlinux, lo, hi):
    out = subprocess.run([OBJDUMP, "-d", "--no-show-raw-insn",
                          "--start-address=%#x" % lo, "--stop-address=%#x" % hi, vmlinux],
                         capture_output=True, text=True, check=True).stdout
    mn = {}
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(\S+)", line)
        if m:
            mn[int(m.group(1), 16)] = m.group(2)
    return mn


C_AREAS = [
    ("C entry/exit+dispatch", r"^(__host_hvc|handle_bench_.*|__kvm_hyp_host_vector|__host_exit|__host_enter|__host_enter_restore_full|__host_enter_without_restoring|__host_enter_for_panic|handle_trap|handle_host_hcall|s2rmap_handle_hcall|handle___.*|__kvm_handle_.*)$"),
    ("C kvm_pgtable walker/map/unmap", r"(pgtable|walker|walk|kvm_pte|kvm_block_mapping|stage2_|hyp_map|hyp_unmap|kvm_granule|kvm_phys_is_valid|hyp_set_prot|kvm_tlb|__tlb|tlbi)"),
    ("C hyp page allocator/refcounts", r"(hyp_alloc_pages|hyp_get_page|hyp_put_page|hpool_|__hyp_attach_page|hyp_zalloc|__hyp_put_page|host_s2_zalloc|host_s2_get|host_s2_put|__find_buddy|page_remove_from_list|page_add_to_list|hyp_page_ref|__hyp_extract_page|hyp_split_page)"),
    ("C memset/memcpy", r"^__?(memset|memcpy|memmove|pi_memset|pi_memcpy)"),
    ("C s2rmap glue", r"^s2rmap_c_"),
    ("C mem_protect + misc", r"(share|donate|__pkvm_|host_|hyp_|check_|__check|do_|pkvm_|__host|__hyp|guest_|page_state|lock|unlock|ack_)"),
]


def area(name, d, rust):
    if rust:
        x = d.lstrip("<")
        return "Rust " + re.split(r"::|<| ", x)[0]
    n = name[len("__kvm_nvhe_"):] if name.startswith("__kvm_nvhe_") else name
    for a, rx in C_AREAS:
        if re.search(rx, n):
            return a
    return "C other"


# Phases: an instruction belongs to the outermost frame on the call stack that matches.
PHASES = [
    ("hyp stage-1 map (pkvm_create_mappings_locked / kvm_pgtable_hyp_map)",
     r"^(pkvm_create_mappings_locked|kvm_pgtable_hyp_map)$"),
    ("hyp stage-1 unmap (kvm_pgtable_hyp_unmap)", r"^kvm_pgtable_hyp_unmap$"),
    ("hyp-side state check (s2rmap_c_hyp_range_is)", r"^s2rmap_c_hyp_range_is$"),
    ("stock checks (check_share/unshare/donation)", r"^check_(share|unshare|donation)$"),
    ("stock host stage-2 update (host_stage2_idmap/set_owner_locked)",
     r"^host_stage2_(idmap|set_owner)_locked$"),
    ("Rust host-stage-2 commit (share::tracker::Host::{commit,lend_commit,return_commit,return_budget})",
     r"^share::tracker::Host<P>::(commit|lend_commit|return_commit|return_budget)\b"),
    ("Rust host-stage-2 prepare (ownership::HostStage2::prepare)", r"^ownership::HostStage2::prepare\b"),
]


def phase_of(stack_names, dem):
    for fn in stack_names:
        n = dem[fn][0]
        for label, rx in PHASES:
            if re.search(rx, n):
                return label
    if any(dem[fn][1] for fn in stack_names):
        return "Rust, outside the above (tracker closure, run lookups, dispatch)"
    return "entry/exit, dispatch, C glue (outside the above)"


def read_trace(path):
    meta, pcs = {}, []
    for line in open(path):
        if line.startswith("#"):
            k, _, v = line[2:].strip().partition(" ")
            meta[k] = v
        elif line.strip():
            pcs.append(int(line, 16))
    return meta, pcs


def print_self(selfc, incl, calls, dem, n, label):
    print("Top %d by self count (%s):\n" % (TOP, label))
    print("| # | self | % | incl | calls | function | lang |\n|---|---:|---:|---:|---:|---|---|")
    for j, (f, c) in enumerate(selfc.most_common(TOP)):
        print("| %d | %d | %.1f | %d | %d | `%s` | %s |"
              % (j + 1, c, 100.0 * c / n, incl[f], calls[f], dem[f][0],
                 "Rust" if dem[f][1] else "C/asm"))
    rest = sum(c for f, c in selfc.most_common()[TOP:])
    if rest:
        print("| | %d | %.1f | | | (%d other functions) | |"
              % (rest, 100.0 * rest / n, len(selfc) - TOP))
    print()


def main():
    vmlinux, traces = sys.argv[1], sys.argv[2:]
    smap = subprocess.run([NM, vmlinux], capture_output=True, text=True).stdout
    syms = {l.split()[2]: int(l.split()[0], 16) for l in smap.splitlines() if len(l.split()) == 3}
    lo, hi = syms["__hyp_text_start"], syms["__hyp_text_end"]
    starts, names, sizes = load_symbols(vmlinux, lo, hi)
    mn = disassemble(vmlinux, lo, hi)
    dem = demangle_all(sorted(set(names)))

    def func(kva):
        i = bisect.bisect_right(starts, kva) - 1
        if i < 0:
            return "?%x" % kva
        return names[i]

    for path in traces:
        meta, pcs = read_trace(path)
        delta = int(meta["kva_delta"], 16)
        kvas = [(p + delta) & (2**64 - 1) for p in pcs]
        fn_of = {}
        for k in set(kvas):
            fn_of[k] = func(k)
        selfc = Counter()
        incl = Counter()
        calls = Counter()
        kinds = Counter()
        kinds_by_fn = defaultdict(Counter)
        stack = [fn_of[kvas[0]]]
        estack = [None]
        phases = Counter()
        edge_incl = Counter()
        edge_calls = Counter()
        maxdepth = 1
        n = len(kvas)
        for i, k in enumerate(kvas):
            f = fn_of[k]
            if stack[-1] != f:
                stack[-1] = f
            selfc[f] += 1
            for g in set(stack):
                incl[g] += 1
            phases[phase_of(stack, dem)] += 1
            for e in set(estack[1:]):
                edge_incl[e] += 1
            m = mn.get(k, "?")
            for kind in ("tlbi", "dsb", "isb", "dmb", "eret"):
                if m == kind:
                    kinds[kind] += 1
                    kinds_by_fn[kind][f] += 1
            if m.startswith(("ldxr", "ldaxr", "stxr", "stlxr", "cas", "ldadd", "swp", "stadd",
                             "ldclr", "ldset")):
                kinds["exclusive/LSE atomic"] += 1
            if i + 1 < n:
                nk = kvas[i + 1]
                if m in ("bl", "blr"):
                    stack.append(fn_of[nk])
                    estack.append((f, fn_of[nk]))
                    edge_calls[(f, fn_of[nk])] += 1
                    calls[fn_of[nk]] += 1
                    maxdepth = max(maxdepth, len(stack))
                elif m in ("ret", "retaa", "retab"):
                    if len(stack) > 1:
                        stack.pop()
                        estack.pop()
                    stack[-1] = fn_of[nk]
                else:
                    stack[-1] = fn_of[nk]
        total = n + 1
        label = meta.get("label", os.path.basename(path))
        print("#### %s  (x0=%s x1=%s x2=%s, occurrence %s)\n"
              % (label, meta.get("x0"), meta.get("x1"), meta.get("x2"), meta.get("occurrence")))
        print("- total HVC..ERET: **%d** instructions (1 HVC at EL1 + %d at EL2 incl. the ERET); "
              "returned x0=%s x1=%s" % (total, n, meta.get("ret_x0"), meta.get("ret_x1")))
        rust = sum(c for f, c in selfc.items() if dem[f][1])
        print("- self instructions in Rust functions: %d (%.1f%%); C/asm: %d (%.1f%%); "
              "distinct functions: %d; max call depth: %d"
              % (rust, 100.0 * rust / n, n - rust, 100.0 * (n - rust) / n, len(selfc), maxdepth))
        print("- special instructions: " + ", ".join(
            "%s %d" % (k, v) for k, v in sorted(kinds.items())))
        for kind in ("tlbi", "dsb", "isb"):
            if kinds_by_fn[kind]:
                print("  - %s in: %s" % (kind, ", ".join(
                    "%s %d" % (dem[f][0], c) for f, c in kinds_by_fn[kind].most_common(6))))
        print()
        if not os.environ.get("SHORT"):
            print_self(selfc, incl, calls, dem, n, label)
        print("By phase (outermost matching frame on the call stack):\n")
        print("| phase | instructions | % |\n|---|---:|---:|")
        for a, c in phases.most_common():
            print("| %s | %d | %.1f |" % (a, c, 100.0 * c / n))
        print()
        if os.environ.get("PHASES_TSV"):
            with open(os.environ["PHASES_TSV"], "a") as f:
                for a, c in phases.items():
                    f.write("%s\t%s\t%d\t%d\n" % (path, a, c, n + 1))
        if os.environ.get("SHORT"):
            print_self(selfc, incl, calls, dem, n, label)
            continue
        ar = Counter()
        for f, c in selfc.items():
            ar[area(f, dem[f][0], dem[f][1])] += c
        print("By area (self):\n")
        print("| area | self | % |\n|---|---:|---:|")
        for a, c in ar.most_common():
            print("| %s | %d | %.1f |" % (a, c, 100.0 * c / n))
        print()
        hot = Counter(kvas)
        print("Hottest loops (most-executed PC of the top self functions):\n")
        for f, c in selfc.most_common(6):
            k, hc = max(((k, hc) for k, hc in hot.items() if fn_of[k] == f), key=lambda t: t[1])
            i = bisect.bisect_right(starts, k) - 1
            print("- `%s`: hottest PC +%#x executed %d times" % (dem[f][0], k - starts[i], hc))
        print()
        print("Top inclusive:\n")
        print("| incl | % | self | function |\n|---:|---:|---:|---|")
        for f, c in incl.most_common(TOP):
            print("| %d | %.1f | %d | `%s` |" % (c, 100.0 * c / n, selfc[f], dem[f][0]))
        print()
        print("Top call edges (bl/blr) by inclusive instructions of the callee under that caller:\n")
        print("| incl | calls | caller -> callee |\n|---:|---:|---|")
        for (a, b), c in edge_incl.most_common(TOP):
            print("| %d | %d | `%s` -> `%s` |" % (c, edge_calls[(a, b)], dem[a][0], dem[b][0]))
        print()


if __name__ == "__main__":
    main()
