//! `cargo xtask bench`: stock pKVM and s2rmap side by side, in instructions.
//!
//! - Kernels: `stock-bench` (Linux 6.12 plus the bench-only patch
//!   `nvhe/linux/patches-stock-bench/`, which gives stock s2rmap's donate/reclaim/counters
//!   hypercall numbers) and `s2rmap`, both built by `cargo xtask kernel` into their own
//!   build directories and reused on the next run.
//! - The module `nvhe/linux/bench/s2rmap_bench.c` is built against each (from a copy
//!   under `target/bench/module/<variant>/`; the source directory has no `Kbuild`, so
//!   `cargo xtask module` and the selftest initramfs never see it) and packed with the
//!   tiny `/init` of `nvhe/linux/bench/init.c` into `target/bench/initramfs-<variant>.cpio`.
//! - Each kernel boots in QEMU with `-icount shift=0,align=off -smp 1`, so guest time
//!   counts instructions (1 ns each) whatever the host is doing; the two boots run at the
//!   same time. The module prints `BENCH <metric> <value>` lines.
//! - The table (stock, s2rmap, s2rmap/stock, the target) is printed and written
//!   to `target/bench/results.json`.

use crate::boot::Cpu;
use crate::initramfs::Cpio;
use crate::kernel::{self, Variant};
use crate::util::{self, BuildLock, Result, bail, step};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The two kernels, in table order.
const KERNELS: [Variant; 2] = [Variant::StockBench, Variant::S2rmap];

/// What `--cpu` and `--timeout` asked for.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The QEMU CPUs to measure on (one table each).
    pub cpus: Vec<Cpu>,
    /// Hard limit for one boot.
    pub timeout: Duration,
}

/// `target/bench/`.
fn dir() -> PathBuf {
    util::target_dir().join("bench")
}

/// The whole `cargo xtask bench`.
pub fn run(opts: &BenchOptions) -> Result {
    let started = Instant::now();
    for v in KERNELS {
        build_kernel(v)?;
    }
    let init = build_init()?;
    let mut initrds = Vec::new();
    for v in KERNELS {
        let ko = build_module(v)?;
        initrds.push(build_initramfs(v, &init, &ko)?);
    }
    let mut runs = Vec::new();
    let mut problems = Vec::new();
    for &cpu in &opts.cpus {
        // Under icount the figures do not depend on the host's load: boot both at once.
        let results: Vec<Result<Boot>> = std::thread::scope(|s| {
            let handles: Vec<_> = KERNELS
                .iter()
                .zip(&initrds)
                .map(|(&v, initrd)| s.spawn(move || boot(cpu, v, initrd, opts.timeout)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("boot thread panicked".into())))
                .collect()
        });
        let mut boots = Vec::new();
        for (v, r) in KERNELS.iter().zip(results) {
            let b = r?;
            for p in &b.problems {
                problems.push(format!("{} {}: {p}", cpu.name(), v.name()));
            }
            boots.push(b);
        }
        let rows = rows(&boots[0].metrics, &boots[1].metrics);
        println!();
        println!(
            "cargo xtask bench: -cpu {} -smp 1 -icount shift=0,align=off, instructions per \
             operation (median of 9 rounds)",
            cpu.name()
        );
        print!("{}", render_table(&rows));
        runs.push((cpu, rows, boots));
    }
    let json = render_json(&runs);
    let out = dir().join("results.json");
    util::write(&out, json)?;
    step(format!("bench: wrote {} in {:.0}s", out.display(), started.elapsed().as_secs_f64()));
    if !problems.is_empty() {
        bail!("the figures above are incomplete:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

/// `cargo xtask kernel --variant v`, waiting while another build holds the lock.
fn build_kernel(v: Variant) -> Result {
    let until = Instant::now() + Duration::from_secs(1800);
    loop {
        match kernel::kernel(v) {
            Ok(_) => return Ok(()),
            Err(e) if e.contains("one build at a time") && Instant::now() < until => {
                step(format!("bench: {e}; waiting"));
                std::thread::sleep(Duration::from_secs(15));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Takes the build lock, waiting for another build to finish.
fn take_lock() -> Result<BuildLock> {
    let until = Instant::now() + Duration::from_secs(1800);
    loop {
        match BuildLock::take(util::target_dir().join("linux/build.lock")) {
            Ok(l) => return Ok(l),
            Err(e) if Instant::now() < until => {
                step(format!("bench: {e}; waiting"));
                std::thread::sleep(Duration::from_secs(15));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Compiles the bench `/init` (static).
fn build_init() -> Result<PathBuf> {
    let src = kernel::linux_dir().join("bench/init.c");
    let out = dir().join("init");
    util::mkdir(&dir())?;
    step(format!("bench: compiling {}", src.display()));
    util::run(
        Command::new("aarch64-linux-gnu-gcc")
            .args(["-static", "-Os", "-Wall", "-Wextra", "-Werror", "-s", "-o"])
            .arg(&out)
            .arg(&src),
    )?;
    Ok(out)
}

/// Builds `s2rmap_bench.ko` against `v`'s build directory; returns its path.
fn build_module(v: Variant) -> Result<PathBuf> {
    let build = v.build_dir();
    if !build.join("Module.symvers").exists() {
        bail!("{} has no Module.symvers", build.display());
    }
    let work = dir().join("module").join(v.name());
    util::mkdir(&work)?;
    let src = kernel::linux_dir().join("bench/s2rmap_bench.c");
    let include = util::repo_root().join("hypercalls/include");
    let kbuild = format!("obj-m := s2rmap_bench.o\nccflags-y := -I{}\n", include.display());
    for (name, data) in [
        ("s2rmap_bench.c", std::fs::read(&src).map_err(|e| format!("{}: {e}", src.display()))?),
        ("Kbuild", kbuild.into_bytes()),
    ] {
        let path = work.join(name);
        if std::fs::read(&path).ok().as_deref() != Some(&data[..]) {
            util::write(&path, &data)?;
        }
    }
    let tree = util::target_dir().join("linux/src").join(v.patchset());
    let _lock = take_lock()?;
    step(format!("bench: module s2rmap_bench against {}", build.display()));
    let mut cmd = kernel::make(&tree, &build);
    cmd.arg(format!("M={}", work.display())).args(["-j2", "modules"]);
    util::run_summarised(&mut cmd, "module s2rmap_bench", 50)?;
    let ko = work.join("s2rmap_bench.ko");
    if !ko.exists() {
        bail!("{} was not built", ko.display());
    }
    Ok(ko)
}

fn build_initramfs(v: Variant, init: &Path, ko: &Path) -> Result<PathBuf> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut cpio = Cpio::default();
    for d in ["dev", "proc", "sys", "lib", "lib/modules"] {
        cpio.dir(d);
    }
    cpio.char_dev("dev/console", 0o600, 5, 1);
    cpio.file("init", 0o755, &read(init)?);
    cpio.file("lib/modules/s2rmap_bench.ko", 0o644, &read(ko)?);
    let out = dir().join(format!("initramfs-{}.cpio", v.name()));
    util::write(&out, cpio.finish())?;
    step(format!("bench: {}", out.display()));
    Ok(out)
}

/// One boot's console, digested.
#[derive(Debug, Default, Clone)]
pub struct Boot {
    /// `BENCH <metric> <value>` lines.
    pub metrics: BTreeMap<String, u64>,
    /// `BENCH error ...` lines, a missing `BENCH done`, a panic, a time-out.
    pub problems: Vec<String>,
    /// The pKVM line the kernel printed.
    pub pkvm: Option<String>,
    /// Wall-clock seconds of the boot.
    pub seconds: f64,
}

/// Reads a console log (all lines) into a [`Boot`].
pub fn parse_console(text: &str) -> Boot {
    let mut b = Boot::default();
    let mut end = None;
    for line in text.lines() {
        if line.contains("Protected hVHE mode initialized successfully")
            || line.contains("Protected nVHE mode initialized successfully")
        {
            b.pkvm = Some(line.trim().to_string());
        }
        if line.contains("Kernel panic") || line.contains("BUG:") || line.contains("Oops") {
            b.problems.push(format!("console: {}", line.trim()));
        }
        let Some(rest) = line.split_once("BENCH ").map(|(_, r)| r) else { continue };
        let mut words = rest.split_whitespace();
        match (words.next(), words.next()) {
            (Some("done"), None) => end = Some(true),
            (Some("failed"), None) => end = Some(false),
            (Some("error"), _) => b.problems.push(format!("module: {}", rest.trim())),
            (Some(name), Some(value)) => match value.parse::<u64>() {
                Ok(v) => {
                    b.metrics.insert(name.to_string(), v);
                }
                Err(_) => b.problems.push(format!("unparsable line: {}", line.trim())),
            },
            _ => {}
        }
    }
    match end {
        Some(true) => {}
        Some(false) => b.problems.push("the module reported a failure (BENCH failed)".into()),
        None => b.problems.push("no `BENCH done` line".into()),
    }
    if b.pkvm.is_none() {
        b.problems.push("no \"Protected h/nVHE mode initialized successfully\" line".into());
    }
    b
}

/// Boots `v` on `cpu` under icount; the console goes to `target/bench/boot-<cpu>-<v>.log`.
fn boot(cpu: Cpu, v: Variant, initrd: &Path, timeout: Duration) -> Result<Boot> {
    let secs = timeout.as_secs().max(1);
    let qemu_cpu = match cpu {
        Cpu::Max => "max,lpa2=off",
        Cpu::CortexA72 => "cortex-a72",
    };
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=5", &secs.to_string(), "qemu-system-aarch64"])
        .args(["-M", "virt,virtualization=on,gic-version=3", "-cpu", qemu_cpu])
        .args(["-icount", "shift=0,align=off", "-smp", "1", "-m", "1G"])
        // No network device: nothing uses one, and its option ROM
        // (efi-virtio.rom) is not installed with QEMU everywhere.
        .args(["-nic", "none", "-nographic", "-no-reboot", "-kernel"])
        .arg(v.image())
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyAMA0 kvm-arm.mode=protected panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let log = dir().join(format!("boot-{}-{}.log", cpu.name(), v.name()));
    step(format!(
        "bench: boot {} on -cpu {qemu_cpu} (limit {secs}s) -> {}",
        v.name(),
        log.display()
    ));
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot run `{}`: {e}", util::show(&cmd)))?;
    let mut text = String::new();
    let mut logf = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let _ = writeln!(logf, "# {}", util::show(&cmd));
    let mut r = BufReader::new(child.stdout.take().expect("piped"));
    let mut buf = Vec::new();
    // `timeout` ends QEMU at the limit, which ends this loop at EOF.
    while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
        let line = String::from_utf8_lossy(&buf).replace('\r', "");
        let _ = logf.write_all(line.as_bytes());
        if line.contains("BENCH ") {
            step(format!("bench: {} {}: {}", cpu.name(), v.name(), line.trim()));
        }
        text.push_str(&line);
        buf.clear();
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let mut b = parse_console(&text);
    b.seconds = started.elapsed().as_secs_f64();
    step(format!("bench: {} {} ended ({status}) after {:.1}s", cpu.name(), v.name(), b.seconds));
    if status.code() == Some(124) || status.code() == Some(137) {
        b.problems.push(format!("time-out after {secs}s"));
    } else if !status.success() {
        b.problems.push(format!("QEMU exited with {status}"));
    }
    Ok(b)
}

/// What a row is held to (from issue 6).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// No target: context only.
    None,
    /// s2rmap / stock at most this.
    RatioAtMost(f64),
    /// The s2rmap figure at most this.
    S2rmapAtMost(f64),
    /// s2rmap no more than stock.
    NotAboveStock,
    /// s2rmap equal to s2rmap's value of the named metric.
    BackTo(&'static str),
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The metric's key (`BENCH` name, or a derived name).
    pub key: String,
    /// What the row means.
    pub label: String,
    /// The stock figure.
    pub stock: Option<f64>,
    /// The s2rmap figure.
    pub s2rmap: Option<f64>,
    /// The target.
    pub target: Target,
    /// Whether s2rmap met it (None: no target, or a figure is missing).
    pub met: Option<bool>,
    /// A quotient (shown with decimals) rather than a count.
    pub quotient: bool,
}

impl Row {
    /// s2rmap / stock.
    pub fn ratio(&self) -> Option<f64> {
        match (self.stock, self.s2rmap) {
            (Some(a), Some(b)) if a != 0.0 => Some(b / a),
            _ => None,
        }
    }
}

/// The rows of the table: the metrics of issue 6 in order, derived rows, then context.
pub fn rows(stock: &BTreeMap<String, u64>, s2rmap: &BTreeMap<String, u64>) -> Vec<Row> {
    let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).map(|&v| v as f64);
    let closeness = |m: &BTreeMap<String, u64>| match (get(m, "share_unshare"), get(m, "floor")) {
        (Some(b), Some(a)) if a > 0.0 => Some(b / (2.0 * a)),
        _ => None,
    };
    let calib =
        |m: &BTreeMap<String, u64>| match (get(m, "calib_measured"), get(m, "calib_expected")) {
            (Some(got), Some(want)) if want > 0.0 => Some(got / want),
            _ => None,
        };
    let plain: [(&str, &str, Target); 10] = [
        ("floor", "(a) floor: rejected hypercall round trip", Target::None),
        (
            "share_unshare",
            "(b) host_share_hyp + host_unshare_hyp, 1 page",
            Target::RatioAtMost(0.3),
        ),
        ("", "", Target::None), // (b)/(2a), filled in below
        (
            "donate_reclaim_1",
            "(c) host_donate_hyp + hyp_donate_host, 1 page",
            Target::RatioAtMost(0.7),
        ),
        ("donate_reclaim_512", "(d) the same, 512 pages 2 MiB-aligned", Target::RatioAtMost(0.1)),
        ("host_fault", "(e) host stage-2 fault, per fault", Target::RatioAtMost(1.0)),
        ("table_pages_after_boot", "(f) host s2 table pages after boot", Target::NotAboveStock),
        ("table_pages_after_storm", "(f) ... after 10,000 random shares", Target::None),
        (
            "table_pages_after_undo",
            "(f) ... after they are undone",
            Target::BackTo("table_pages_after_boot"),
        ),
        ("boot_host_faults", "(g) host stage-2 faults during boot", Target::NotAboveStock),
    ];
    let mut out = Vec::new();
    for (key, label, target) in plain {
        if key.is_empty() {
            out.push(Row {
                key: "share_unshare_over_pair_floor".into(),
                label: "(b) / (2 x a): closeness to the floor".into(),
                stock: closeness(stock),
                s2rmap: closeness(s2rmap),
                target: Target::S2rmapAtMost(6.0),
                met: None,
                quotient: true,
            });
            continue;
        }
        out.push(Row {
            key: key.into(),
            label: label.into(),
            stock: get(stock, key),
            s2rmap: get(s2rmap, key),
            target,
            met: None,
            quotient: false,
        });
    }
    let context = [
        ("loop_overhead", "measurement loop, empty op (in every figure)"),
        ("host_faults_per_round", "faults taken touching 64 reset pages"),
        ("ram_pages", "storm: RAM pages the pfns are drawn from"),
        ("storm_shared", "storm: pages shared"),
        ("storm_tries", "storm: random pfns tried"),
        ("cntfrq", "CNTFRQ_EL0 (Hz)"),
    ];
    for (key, label) in context {
        out.push(Row {
            key: key.into(),
            label: label.into(),
            stock: get(stock, key),
            s2rmap: get(s2rmap, key),
            target: Target::None,
            met: None,
            quotient: false,
        });
    }
    out.push(Row {
        key: "calibration".into(),
        label: "counter insns / known loop insns (2,000,000)".into(),
        stock: calib(stock),
        s2rmap: calib(s2rmap),
        target: Target::None,
        met: None,
        quotient: true,
    });
    for r in &mut out {
        r.met = match r.target {
            Target::None => None,
            Target::RatioAtMost(t) => r.ratio().map(|x| x <= t),
            Target::S2rmapAtMost(t) => r.s2rmap.map(|x| x <= t),
            Target::NotAboveStock => r.ratio().map(|x| x <= 1.0),
            Target::BackTo(k) => match (r.s2rmap, get(s2rmap, k)) {
                (Some(a), Some(b)) => Some(a == b),
                _ => None,
            },
        };
    }
    out
}

fn fmt_num(v: Option<f64>, quotient: bool) -> String {
    match v {
        None => "-".into(),
        Some(x) if quotient => format!("{x:.3}"),
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.3}"),
    }
}

fn fmt_target(t: Target) -> String {
    match t {
        Target::None => String::new(),
        Target::RatioAtMost(x) => format!("ratio <= {x}"),
        Target::S2rmapAtMost(x) => format!("s2rmap <= {x}"),
        Target::NotAboveStock => "<= stock".into(),
        Target::BackTo(_) => "= after boot".into(),
    }
}

/// The table as text.
pub fn render_table(rows: &[Row]) -> String {
    let w = rows.iter().map(|r| r.label.len()).max().unwrap_or(6).max(6);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<w$}  {:>12}  {:>12}  {:>8}  {:<16} met",
        "metric", "stock", "s2rmap", "ratio", "target"
    );
    let _ = writeln!(s, "{}", "-".repeat(w + 2 + 12 + 2 + 12 + 2 + 8 + 2 + 16 + 5));
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        let _ = writeln!(
            s,
            "{:<w$}  {:>12}  {:>12}  {:>8}  {:<16} {met}",
            r.label,
            fmt_num(r.stock, r.quotient),
            fmt_num(r.s2rmap, r.quotient),
            r.ratio().map_or("-".into(), |x| format!("{x:.3}")),
            fmt_target(r.target),
        );
    }
    s
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => {
            if x.fract() == 0.0 && x.abs() < 1e15 {
                format!("{}", x as i64)
            } else {
                format!("{x:.6}")
            }
        }
        _ => "null".into(),
    }
}

/// `target/bench/results.json`: per CPU, the rows and each kernel's problems.
pub fn render_json(runs: &[(Cpu, Vec<Row>, Vec<Boot>)]) -> String {
    let mut s = String::from("{\n  \"units\": \"instructions per operation (icount shift=0)\",\n");
    s.push_str("  \"runs\": [\n");
    for (i, (cpu, rows, boots)) in runs.iter().enumerate() {
        let _ = writeln!(s, "    {{\n      \"cpu\": {},", json_str(cpu.name()));
        s.push_str("      \"rows\": [\n");
        for (j, r) in rows.iter().enumerate() {
            let met = match r.met {
                Some(b) => b.to_string(),
                None => "null".into(),
            };
            let _ = write!(
                s,
                "        {{\"metric\": {}, \"label\": {}, \"stock\": {}, \"s2rmap\": {}, \
                 \"ratio\": {}, \"target\": {}, \"met\": {met}}}",
                json_str(&r.key),
                json_str(&r.label),
                json_num(r.stock),
                json_num(r.s2rmap),
                json_num(r.ratio()),
                json_str(&fmt_target(r.target)),
            );
            s.push_str(if j + 1 < rows.len() { ",\n" } else { "\n" });
        }
        s.push_str("      ],\n      \"problems\": {");
        let names = ["stock", "s2rmap"];
        for (k, b) in boots.iter().enumerate() {
            let list: Vec<String> = b.problems.iter().map(|p| json_str(p)).collect();
            let _ = write!(
                s,
                "{}{}: [{}]",
                if k > 0 { ", " } else { "" },
                json_str(names.get(k).copied().unwrap_or("?")),
                list.join(", ")
            );
        }
        s.push_str("}\n    }");
        s.push_str(if i + 1 < runs.len() { ",\n" } else { "\n" });
    }
    s.push_str("  ]\n}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const STOCK: &str = "\
[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x000f0510]
[    0.500000] kvm [1]: Protected hVHE mode initialized successfully
bench-init: loading /lib/modules/s2rmap_bench.ko
[    1.000000] BENCH boot_host_faults 900
[    1.000000] BENCH table_pages_after_boot 40
[    1.000000] BENCH calib_expected 2000000
[    1.000000] BENCH calib_measured 2000016
[    1.100000] BENCH floor 80
[    1.200000] BENCH share_unshare 4800
[    1.300000] BENCH donate_reclaim_1 3000
[    1.300000] BENCH donate_reclaim_512 300000
[    1.300000] BENCH host_fault 1000
[    1.300000] BENCH table_pages_after_storm 300
[    1.300000] BENCH table_pages_after_undo 300
[    1.400000] BENCH done
";

    fn s2rmap_text() -> String {
        STOCK
            .replace("share_unshare 4800", "share_unshare 800")
            .replace("after_undo 300", "after_undo 40")
            .replace("host_fault 1000", "host_fault 1200")
            .replace("BENCH done", "BENCH error share returned -1\nBENCH failed")
    }

    #[test]
    fn parses_bench_lines() {
        let b = parse_console(STOCK);
        assert!(b.problems.is_empty(), "{:?}", b.problems);
        assert_eq!(b.metrics["floor"], 80);
        assert_eq!(b.metrics["share_unshare"], 4800);
        assert_eq!(b.metrics.len(), 11);
        assert!(b.pkvm.is_some());
    }

    #[test]
    fn reports_failures_and_missing_lines() {
        let b = parse_console(&s2rmap_text());
        assert_eq!(b.problems.len(), 2, "{:?}", b.problems);
        assert!(b.problems[0].contains("error share returned -1"));
        assert!(b.problems[1].contains("BENCH failed"));
        let cut =
            parse_console("kvm [1]: Protected nVHE mode initialized successfully\nBENCH floor 9\n");
        assert_eq!(cut.metrics["floor"], 9);
        assert_eq!(cut.problems, vec!["no `BENCH done` line".to_string()]);
        let none = parse_console("Kernel panic - not syncing: x\nBENCH floor x\n");
        assert_eq!(none.problems.len(), 4, "{:?}", none.problems);
    }

    #[test]
    fn rows_ratios_and_targets() {
        let stock = parse_console(STOCK).metrics;
        let s2 = parse_console(&s2rmap_text()).metrics;
        let rows = rows(&stock, &s2);
        let row = |k: &str| rows.iter().find(|r| r.key == k).unwrap().clone();
        let b = row("share_unshare");
        assert_eq!(b.ratio(), Some(800.0 / 4800.0));
        assert_eq!(b.met, Some(true));
        let close = row("share_unshare_over_pair_floor");
        assert_eq!(close.stock, Some(4800.0 / 160.0));
        assert_eq!(close.s2rmap, Some(5.0));
        assert_eq!(close.met, Some(true));
        assert_eq!(row("host_fault").met, Some(false));
        assert_eq!(row("table_pages_after_undo").met, Some(true));
        assert_eq!(row("table_pages_after_boot").met, Some(true));
        assert_eq!(row("table_pages_after_storm").met, None);
        assert_eq!(row("calibration").stock, Some(2000016.0 / 2000000.0));
        // A metric one kernel did not print: no ratio, no verdict, still a row.
        assert_eq!(row("loop_overhead").stock, None);
        assert_eq!(row("loop_overhead").ratio(), None);
        assert_eq!(rows[0].key, "floor");
        assert_eq!(rows[2].key, "share_unshare_over_pair_floor");
    }

    #[test]
    fn table_and_json() {
        let stock = parse_console(STOCK).metrics;
        let s2 = parse_console(&s2rmap_text()).metrics;
        let rows = rows(&stock, &s2);
        let t = render_table(&rows);
        let line = t.lines().find(|l| l.starts_with("(e)")).unwrap();
        assert!(line.contains(" 1000 ") && line.contains(" 1200 "), "{line}");
        assert!(line.contains("1.200") && line.ends_with("NO"), "{line}");
        assert_eq!(t.lines().count(), rows.len() + 2);
        let boots = vec![parse_console(STOCK), parse_console(&s2rmap_text())];
        let j = render_json(&[(Cpu::Max, rows, boots)]);
        assert!(j.contains("\"cpu\": \"max\""));
        assert!(j.contains(
            "{\"metric\": \"floor\", \"label\": \"(a) floor: rejected hypercall round trip\", \
             \"stock\": 80, \"s2rmap\": 80, \"ratio\": 1, \"target\": \"\", \"met\": null}"
        ));
        assert!(j.contains("\"s2rmap\": [\"module: error share returned -1\""));
        assert!(j.contains("\"stock\": 4800, \"s2rmap\": 800, \"ratio\": 0.166667"));
        // Balanced braces and brackets: a cheap well-formedness check.
        assert_eq!(j.matches('{').count(), j.matches('}').count());
        assert_eq!(j.matches('[').count(), j.matches(']').count());
    }

    #[test]
    fn numbers() {
        assert_eq!(fmt_num(Some(83.0), false), "83");
        assert_eq!(fmt_num(Some(29.94), false), "29.940");
        assert_eq!(fmt_num(Some(1234.4), false), "1234");
        assert_eq!(fmt_num(Some(1.0), true), "1.000");
        assert_eq!(fmt_num(None, true), "-");
        assert_eq!(json_num(Some(f64::NAN)), "null");
        assert_eq!(json_str("a\"b\\\n"), "\"a\\\"b\\\\\\u000a\"");
    }
}
