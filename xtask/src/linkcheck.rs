//! The link-time check of the Rust object inside `kvm_nvhe.o`.
//!
//! After the kernel build, with the link map that the patched nVHE Makefile writes
//! (`kvm_nvhe.tmp.map`), this checks that:
//! 1. every allocated, non-empty section that the link took from `libnvhe.a` landed in a
//!    `.hyp.*` output section (which `kvm_nvhe.o` keeps and `vmlinux.lds.S` places with
//!    the hypervisor), and not in an orphan section such as `.data`;
//! 2. no such section is writable initialised data (`.data`, `.data.*`), which EL2
//!    does not map;
//! 3. the disassembly of the Rust archive members that were linked uses no FP/SIMD
//!    register and no FP control register;
//! 4. the exported entry points are in `kvm_nvhe.o` with the `__kvm_nvhe_` prefix.

use crate::util::{self, Result, bail, step};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// The archive's file name, as `hyp.lds.S` matches it.
pub const LIB_NAME: &str = "libnvhe.a";

/// Symbols the C side calls; each must be in `kvm_nvhe.o` as `__kvm_nvhe_<name>`.
pub const ENTRY_POINTS: &[&str] = &[
    "s2rmap_init_check",
    "s2rmap_host_init",
    "s2rmap_host_root",
    "s2rmap_setup_hyp_range",
    "s2rmap_setup_done",
    "s2rmap_host_abort",
    "s2rmap_host_share_hyp",
    "s2rmap_host_unshare_hyp",
    "s2rmap_host_donate_hyp",
    "s2rmap_hyp_donate_host",
    "s2rmap_host_share_ffa",
    "s2rmap_host_unshare_ffa",
    "s2rmap_hyp_pin",
    "s2rmap_hyp_unpin",
    "s2rmap_handle_hcall",
];

/// One input section as the link map shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    /// The output section it went to (`.hyp.text`, or an orphan like `.data`).
    pub output: String,
    /// The input section's name.
    pub input: String,
    /// Its size in bytes.
    pub size: u64,
    /// The file it came from, e.g. `/x/libnvhe.a(nvhe-123.o)`.
    pub file: String,
}

/// What the link map says.
#[derive(Debug, Default)]
pub struct LinkMap {
    /// Members of [`LIB_NAME`] that the link pulled in.
    pub members: BTreeSet<String>,
    /// Input sections placed in output sections.
    pub entries: Vec<MapEntry>,
    /// Input sections discarded (`/DISCARD/` or unused), as `(section, file)`.
    pub discarded: Vec<(String, String)>,
}

/// `/path/libnvhe.a(member.o)` -> `member.o`.
fn member_of(file: &str) -> Option<&str> {
    let start = file.find(&format!("{LIB_NAME}("))? + LIB_NAME.len() + 1;
    let rest = &file[start..];
    Some(&rest[..rest.rfind(')')?])
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// Parses a GNU ld map file.
pub fn parse_map(text: &str) -> LinkMap {
    #[derive(PartialEq)]
    enum Part {
        Head,
        Archive,
        Discarded,
        Memory,
        Script,
    }
    let mut map = LinkMap::default();
    let mut part = Part::Head;
    let mut output = String::new();
    // An input section whose name was too long: its address, size and file follow on
    // the next line.
    let mut pending: Option<String> = None;
    for line in text.lines() {
        match line {
            "Archive member included to satisfy reference by file (symbol)" => {
                part = Part::Archive;
                continue;
            }
            "Discarded input sections" => {
                part = Part::Discarded;
                continue;
            }
            "Memory Configuration" => {
                part = Part::Memory;
                continue;
            }
            "Linker script and memory map" => {
                part = Part::Script;
                continue;
            }
            _ => {}
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        match part {
            Part::Head | Part::Memory => {}
            Part::Archive => {
                if !line.starts_with(' ')
                    && let Some(m) = tokens.first().and_then(|t| member_of(t))
                {
                    map.members.insert(m.to_string());
                }
            }
            Part::Discarded => {
                if line.starts_with(' ')
                    && !line.starts_with("  ")
                    && let Some(file) = tokens.get(3).or(tokens.get(1))
                {
                    map.discarded.push((tokens[0].to_string(), file.to_string()));
                }
            }
            Part::Script => {
                if line.is_empty() {
                    pending = None;
                    continue;
                }
                if !line.starts_with(' ') {
                    // An output section (or LOAD/OUTPUT lines, which have no input lines).
                    output = tokens[0].to_string();
                    pending = None;
                    continue;
                }
                if let Some(input) = pending.take() {
                    // Continuation: "                0xADDR 0xSIZE file".
                    if tokens.len() >= 3
                        && hex(tokens[0]).is_some()
                        && let Some(size) = hex(tokens[1])
                    {
                        map.entries.push(MapEntry {
                            output: output.clone(),
                            input,
                            size,
                            file: tokens[2..].join(" "),
                        });
                    }
                    continue;
                }
                // Input sections are indented by exactly one space; patterns start
                // with '*' and symbol lines with many spaces.
                if line.starts_with("  ") || line.starts_with(" *") {
                    continue;
                }
                match tokens.len() {
                    1 => pending = Some(tokens[0].to_string()),
                    n if n >= 4 => {
                        if let (Some(_), Some(size)) = (hex(tokens[1]), hex(tokens[2])) {
                            map.entries.push(MapEntry {
                                output: output.clone(),
                                input: tokens[0].to_string(),
                                size,
                                file: tokens[3..].join(" "),
                            });
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    map
}

/// Flags of each section of each archive member, from `readelf -S -W lib.a`:
/// member -> section -> flags (e.g. `AX`, `WA`, `A`, or empty).
pub fn parse_readelf_sections(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut all: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut member = String::new();
    for line in text.lines() {
        if let Some(f) = line.strip_prefix("File: ") {
            member = member_of(f.trim()).unwrap_or(f.trim()).to_string();
            all.entry(member.clone()).or_default();
            continue;
        }
        let t = line.trim_start();
        if !t.starts_with('[') {
            continue;
        }
        let Some((_, rest)) = t.split_once(']') else { continue };
        let toks: Vec<&str> = rest.split_whitespace().collect();
        // name type addr off size es [flags] lk inf al
        let flags = match toks.len() {
            10 => toks[6],
            9 => "",
            _ => continue,
        };
        if toks[0] == "Name" {
            continue;
        }
        all.entry(member.clone()).or_default().insert(toks[0].to_string(), flags.to_string());
    }
    all
}

/// Checks the sections the link took from the Rust archive. Returns the problems found.
pub fn check_sections(
    map: &LinkMap,
    flags: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for e in &map.entries {
        let Some(member) = member_of(&e.file) else { continue };
        let alloc = flags
            .get(member)
            .and_then(|m| m.get(&e.input))
            // Unknown flags: assume the worst for anything but debug/comment sections.
            .map_or(!is_non_alloc_name(&e.input), |f| f.contains('A'));
        if is_data(&e.input) && e.size > 0 {
            problems.push(format!(
                "Rust object has writable initialised data: {} ({} bytes) from {member}; \
                 EL2 maps no .data (make the static zero-initialised or constant)",
                e.input, e.size
            ));
            continue;
        }
        if alloc && e.size > 0 && (!e.output.starts_with(".hyp.") || e.output == ".hyp.s2rmap.data")
        {
            problems.push(format!(
                "Rust section {} ({} bytes) from {member} landed in {}, outside .hyp.*: \
                 EL2 will not map it",
                e.input, e.size, e.output
            ));
        }
    }
    problems
}

fn is_data(name: &str) -> bool {
    (name == ".data" || name.starts_with(".data.")) && !name.starts_with(".data.rel.ro")
}

fn is_non_alloc_name(name: &str) -> bool {
    name.starts_with(".debug")
        || name.starts_with(".comment")
        || name.starts_with(".note")
        || name.starts_with(".llvm")
        || name == ".symtab"
        || name == ".strtab"
}

/// Finds FP/SIMD use in `objdump -d --no-show-raw-insn` output. Returns offending lines
/// with the function they are in.
pub fn find_fp_simd(disasm: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut func = String::new();
    for line in disasm.lines() {
        if line.ends_with(">:") {
            func = line.to_string();
            continue;
        }
        // "   4:\tmov\tw8, #0xb75 // #2933"
        let mut fields = line.split('\t');
        let Some(addr) = fields.next() else { continue };
        if !addr.trim_end().ends_with(':') || addr.trim().len() < 2 {
            continue;
        }
        let Some(mnemonic) = fields.next().map(str::trim) else { continue };
        let operands = fields.collect::<Vec<_>>().join(" ");
        let operands = strip_comments(&operands);
        if uses_fp_simd(mnemonic, &operands) {
            found.push(format!("{func} {}", line.trim()));
        }
    }
    found
}

/// Drops `// ...`, `; ...` and `<symbol+off>` from an operand string, with the address
/// objdump prints before a `<symbol+off>` (`ldr x1, d0 <f+0xd0>`: `d0` is an address).
fn strip_comments(s: &str) -> String {
    let s = s.split("//").next().unwrap_or("");
    let s = s.split(';').next().unwrap_or("");
    let mut out = String::new();
    let mut depth = 0u32;
    for c in s.chars() {
        match c {
            '<' => {
                if depth == 0 {
                    let kept = out.trim_end().len();
                    let word = out[..kept].rfind([' ', ',', '\t']).map_or(0, |i| i + 1);
                    out.truncate(word);
                }
                depth += 1;
            }
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Instructions whose last operand may be a bare address (printed in hex).
fn takes_address(mnemonic: &str) -> bool {
    matches!(mnemonic, "b" | "bl" | "cbz" | "cbnz" | "tbz" | "tbnz" | "adr" | "adrp")
        || mnemonic.starts_with("b.")
}

fn uses_fp_simd(mnemonic: &str, operands: &str) -> bool {
    if mnemonic.starts_with(".inst") || mnemonic.starts_with(".word") {
        return false;
    }
    // Every scalar FP instruction starts with 'f' (fmov, fadd, fcvt, ...); no integer one
    // does.
    if mnemonic.starts_with('f') {
        return true;
    }
    let tokens: Vec<&str> = operands
        .split(|c: char| {
            c == ',' || c == '[' || c == ']' || c == '{' || c == '}' || c.is_whitespace()
        })
        .filter(|t| !t.is_empty())
        .collect();
    let last = tokens.len().saturating_sub(1);
    tokens.iter().enumerate().any(|(i, t)| {
        // `b d0`, `cbz w1, b4`: a branch target, not a register.
        if i == last && takes_address(mnemonic) && t.chars().all(|c| c.is_ascii_hexdigit()) {
            return false;
        }
        is_fp_register(t)
    })
}

/// `v0`..`v31` (with an arrangement), `q`/`d`/`s`/`h`/`b` scalars, SVE `z`, and the FP
/// control registers.
fn is_fp_register(token: &str) -> bool {
    let t = token.to_ascii_lowercase();
    if t.starts_with("fpcr") || t.starts_with("fpsr") || t.starts_with("fpexc") {
        return true;
    }
    let reg = t.split('.').next().unwrap_or("");
    let mut chars = reg.chars();
    let Some(kind) = chars.next() else { return false };
    let num: String = chars.collect();
    matches!(kind, 'v' | 'q' | 'd' | 's' | 'h' | 'b' | 'z')
        && !num.is_empty()
        && num.len() <= 2
        && num.chars().all(|c| c.is_ascii_digit())
        && num.parse::<u32>().is_ok_and(|n| n < 32)
}

/// Runs all checks on a finished build directory.
pub fn check_build(build: &Path, lib: &Path) -> Result {
    step("linkcheck: checking the Rust object in kvm_nvhe.o");
    let nvhe = build.join("arch/arm64/kvm/hyp/nvhe");
    let map_path = nvhe.join("kvm_nvhe.tmp.map");
    let map = parse_map(&util::read(&map_path)?);
    if map.members.is_empty() {
        bail!(
            "linkcheck: {} pulled no member of {LIB_NAME}: is the Rust entry point called?",
            map_path.display()
        );
    }
    let readelf =
        util::output(Command::new("aarch64-linux-gnu-readelf").args(["-S", "-W"]).arg(lib))?;
    let flags = parse_readelf_sections(&readelf);
    let mut problems = check_sections(&map, &flags);
    let rust_entries: Vec<&MapEntry> = map
        .entries
        .iter()
        .filter(|e| member_of(&e.file).is_some() && e.size > 0 && e.output.starts_with(".hyp."))
        .collect();
    let mut per_output: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for e in &rust_entries {
        let s = per_output.entry(e.output.as_str()).or_default();
        s.0 += 1;
        s.1 += e.size;
    }
    for (out, (n, size)) in &per_output {
        step(format!("linkcheck: {out}: {n} Rust input sections, {size} bytes"));
    }

    // FP/SIMD: disassemble the members that were linked.
    let tmp = util::target_dir().join("linux/linkcheck");
    util::remove_dir(&tmp)?;
    util::mkdir(&tmp)?;
    let members: Vec<&String> = map.members.iter().collect();
    util::run(
        Command::new("aarch64-linux-gnu-ar").current_dir(&tmp).arg("x").arg(lib).args(&members),
    )?;
    let mut insns = 0usize;
    for m in &members {
        let disasm = util::output(
            Command::new("aarch64-linux-gnu-objdump")
                .args(["-d", "--no-show-raw-insn"])
                .arg(tmp.join(m)),
        )?;
        insns += disasm.lines().filter(|l| l.contains(":\t")).count();
        for f in find_fp_simd(&disasm) {
            problems.push(format!("FP/SIMD in Rust code ({m}): {f}"));
        }
    }
    step(format!(
        "linkcheck: {} Rust members linked, {insns} instructions, no FP/SIMD: {}",
        members.len(),
        if problems.iter().any(|p| p.starts_with("FP/SIMD")) { "NO" } else { "yes" }
    ));

    // The entry points, prefixed, in .hyp.text of the final object.
    let syms = util::output(Command::new("aarch64-linux-gnu-nm").arg(nvhe.join("kvm_nvhe.o")))?;
    let sections = util::output(
        Command::new("aarch64-linux-gnu-readelf").args(["-S", "-W"]).arg(nvhe.join("kvm_nvhe.o")),
    )?;
    if sections.contains(".hyp.s2rmap.data") {
        problems.push("kvm_nvhe.o still has .hyp.s2rmap.data".into());
    }
    for ep in ENTRY_POINTS {
        let want = format!("__kvm_nvhe_{ep}");
        match syms.lines().find(|l| l.split_whitespace().nth(2) == Some(want.as_str())) {
            Some(l) if l.split_whitespace().nth(1) == Some("T") => {
                step(format!("linkcheck: {want} is in kvm_nvhe.o ({l})"))
            }
            Some(l) => problems.push(format!("{want} is not a text symbol: {l}")),
            None => problems.push(format!("{want} is missing from kvm_nvhe.o")),
        }
    }
    if !problems.is_empty() {
        bail!("linkcheck failed:\n  {}", problems.join("\n  "));
    }
    step("linkcheck: ok: Rust sections all in .hyp.*, no .data, no FP/SIMD");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "\
Archive member included to satisfy reference by file (symbol)

/w/target/aarch64-unknown-none-softfloat/release/libnvhe.a(nvhe-1.nvhe.cgu.0.rcgu.o)
                              arch/arm64/kvm/hyp/nvhe/setup.nvhe.o (s2rmap_init_check)

Discarded input sections

 .eh_frame      0x0000000000000000       0x28 /w/libnvhe.a(core-2.o)

Memory Configuration

Name             Origin             Length             Attributes
*default*        0x0000000000000000 0xffffffffffffffff

Linker script and memory map


.hyp.text       0x0000000000000000     0x9c40
 *(.text .text.*)
 .text          0x0000000000000000      0x3d8 arch/arm64/kvm/hyp/nvhe/timer-sr.nvhe.o
 .text.s2rmap_init_check
                0x0000000000009b00       0xf8 /w/target/aarch64-unknown-none-softfloat/release/libnvhe.a(nvhe-1.nvhe.cgu.0.rcgu.o)
                0x0000000000009b00                s2rmap_init_check

.hyp.rodata     0x0000000000009c40      0x100
 *(.rodata .rodata.*)
 .rodata.TABLE  0x0000000000009c40       0x40 /w/libnvhe.a(nvhe-1.nvhe.cgu.0.rcgu.o)

.hyp.bss        0x0000000000009d40        0x8
 .bss.SEED      0x0000000000009d40        0x8 /w/libnvhe.a(nvhe-1.nvhe.cgu.0.rcgu.o)

.data           0x0000000000000000        0x0
 .data          0x0000000000000000        0x0 arch/arm64/kvm/hyp/nvhe/setup.nvhe.o
 .data          0x0000000000000000        0x0 /w/libnvhe.a(nvhe-1.nvhe.cgu.0.rcgu.o)

.debug_info     0x0000000000000000      0x18e
 .debug_info    0x0000000000000000      0x18e /w/libnvhe.a(nvhe-1.nvhe.cgu.0.rcgu.o)
LOAD arch/arm64/kvm/hyp/nvhe/setup.nvhe.o
OUTPUT(arch/arm64/kvm/hyp/nvhe/kvm_nvhe.tmp.o elf64-littleaarch64)
";

    const READELF: &str = "
File: /w/libnvhe.a(nvhe-1.nvhe.cgu.0.rcgu.o)
Section Headers:
  [Nr] Name              Type            Address          Off    Size   ES Flg Lk Inf Al
  [ 0]                   NULL            0000000000000000 000000 000000 00      0   0  0
  [ 5] .text.s2rmap_init_check PROGBITS        0000000000000000 000044 0000f8 00  AX  0   0  4
  [ 7] .bss.SEED NOBITS          0000000000000000 000140 000008 00  WA  0   0  8
  [ 8] .rodata.TABLE PROGBITS        0000000000000000 000140 000040 00   A  0   0  8
  [ 9] .data             PROGBITS        0000000000000000 000180 000000 00  WA  0   0  1
  [10] .debug_info       PROGBITS        0000000000000000 000233 00018e 00      0   0  1
  [11] .data.COUNTER     PROGBITS        0000000000000000 000233 000008 00  WA  0   0  8
  [12] .text.orphan      PROGBITS        0000000000000000 000233 000008 00  AX  0   0  8
";

    #[test]
    fn parses_the_map() {
        let map = parse_map(MAP);
        assert_eq!(map.members.iter().collect::<Vec<_>>(), ["nvhe-1.nvhe.cgu.0.rcgu.o"]);
        assert_eq!(map.discarded, vec![(".eh_frame".into(), "/w/libnvhe.a(core-2.o)".into())]);
        let e = map.entries.iter().find(|e| e.input == ".text.s2rmap_init_check").unwrap();
        assert_eq!(e.output, ".hyp.text");
        assert_eq!(e.size, 0xf8);
        assert!(e.file.ends_with("libnvhe.a(nvhe-1.nvhe.cgu.0.rcgu.o)"));
        let bss = map.entries.iter().find(|e| e.input == ".bss.SEED").unwrap();
        assert_eq!(bss.output, ".hyp.bss");
        assert_eq!(map.entries.iter().filter(|e| e.output == ".data").count(), 2);
    }

    #[test]
    fn clean_link_passes() {
        let problems = check_sections(&parse_map(MAP), &parse_readelf_sections(READELF));
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn rust_data_fails() {
        let map = MAP.replace(
            ".data          0x0000000000000000        0x0 /w/libnvhe.a",
            ".data.COUNTER  0x0000000000000000        0x8 /w/libnvhe.a",
        );
        let problems = check_sections(&parse_map(&map), &parse_readelf_sections(READELF));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("writable initialised data: .data.COUNTER"));
    }

    #[test]
    fn rust_section_outside_hyp_fails() {
        let map = format!(
            "{MAP}\n.text.orphan    0x0 0x8\n .text.orphan   0x0000000000000000        0x8 \
             /w/libnvhe.a(nvhe-1.nvhe.cgu.0.rcgu.o)\n"
        );
        let problems = check_sections(&parse_map(&map), &parse_readelf_sections(READELF));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("landed in .text.orphan, outside .hyp.*"));
    }

    #[test]
    fn readelf_flags() {
        let f = parse_readelf_sections(READELF);
        let m = &f["nvhe-1.nvhe.cgu.0.rcgu.o"];
        assert_eq!(m[".text.s2rmap_init_check"], "AX");
        assert_eq!(m[".debug_info"], "");
        assert_eq!(m[".bss.SEED"], "WA");
    }

    const DISASM_OK: &str = "
0000000000000000 <s2rmap_init_check>:
   0:\tsub\tsp, sp, #0x10
   4:\tmov\tw8, #0xb75                 \t// #2933
   8:\tadrp\tx9, 0 <s2rmap_init_check>
  1c:\tmadd\tx11, x13, x12, x11
  20:\tldp\tx29, x30, [sp], #16
  24:\tbl\t0 <hyp_panic>
  28:\tb.ne\t40 <s2rmap_init_check+0x40>  // b.any
  2c:\tmrs\tx0, vttbr_el2
  30:\tstr\tx0, [x1, #0xd0]
  34:\tcsel\tx0, x1, x2, hs
  38:\tb\td0 <s2rmap_init_check+0xd0>
  3c:\tcbz\tw24, d4 <s2rmap_init_check+0xd4>
  40:\tb.cc\tb8 <s2rmap_init_check+0xb8>  // b.lo, b.ul, b.last
  44:\ttbnz\tw0, #3, b4 <s2rmap_init_check+0xb4>
  48:\tadr\tx0, d8
  4c:\tldr\tx1, 1d0 <s2rmap_init_check+0x1d0>
  50:\tldr\tx1, d0 <s2rmap_init_check+0xd0>
";

    #[test]
    fn integer_code_passes() {
        assert!(find_fp_simd(DISASM_OK).is_empty(), "{:?}", find_fp_simd(DISASM_OK));
    }

    #[test]
    fn fp_simd_is_found() {
        for bad in [
            "  38:\tfmov\td0, x1",
            "  38:\tmovi\tv0.2d, #0x0",
            "  38:\tstr\tq0, [x8]",
            "  38:\tldr\ts3, [x8, #4]",
            "  38:\tmrs\tx0, fpcr",
            "  38:\tmsr\tfpsr, x0",
            "  38:\tst1\t{v0.16b, v1.16b}, [x0]",
            "  38:\tdup\tv1.4s, w0",
            "  38:\tstp\tq0, q1, [sp, #32]",
            "  38:\tldr\td0, 1c0 <s2rmap_init_check+0x1c0>",
            "  38:\tfcvtzs\tw0, d0",
        ] {
            let text = format!("{DISASM_OK}{bad}\n");
            let found = find_fp_simd(&text);
            assert_eq!(found.len(), 1, "{bad}: {found:?}");
            assert!(found[0].contains("<s2rmap_init_check>"));
        }
    }
}
