//! `cargo xtask boot`: boot the kernel under QEMU with a hard time limit and judge the
//! console.
//!
//! QEMU runs under `timeout(1)` as well, so it cannot outlive xtask by more than the
//! limit even if xtask itself is killed.

use crate::initramfs;
use crate::kernel::Variant;
use crate::ktap::{Console, Event};
use crate::util::{self, Result, bail, step};
use std::io::{BufRead, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// vCPUs of every boot (`-smp`) unless `--smp` says otherwise: 4, so that the
/// stress module's SMP test (one kthread per CPU) runs on four CPUs at once.
pub const DEFAULT_SMP: u32 = 4;

static SMP: AtomicU32 = AtomicU32::new(DEFAULT_SMP);

/// Sets the number of vCPUs of the boots that follow (`--smp`).
pub fn set_smp(n: u32) {
    SMP.store(n.max(1), Ordering::Relaxed);
}

/// The number of vCPUs a boot gets.
pub fn smp() -> u32 {
    SMP.load(Ordering::Relaxed)
}

/// How to boot.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// Which kernel.
    pub variant: Variant,
    /// Hard limit for one boot.
    pub timeout: Duration,
    /// What the boot must show.
    pub expect: Expect,
    /// More kernel command-line parameters (they come last, so they win).
    pub append: Option<String>,
}

/// What a boot is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// pKVM comes up and every KTAP test passes.
    Pass,
    /// With `s2rmap.break_init_check`: pKVM init must fail on the Rust check.
    BrokenInit,
    /// With `s2rmap_stress.ghost_sabotage=1` (a ghost-checking kernel): the ghost
    /// checker must stop the hyp, and the host must print its message.
    GhostPanic,
}

impl Expect {
    /// The kernel command-line parameter that sets the boot up.
    fn parameter(self) -> Option<&'static str> {
        match self {
            Expect::Pass => None,
            Expect::BrokenInit => Some("s2rmap.break_init_check"),
            Expect::GhostPanic => Some("s2rmap_stress.ghost_sabotage=1"),
        }
    }

    /// The suffix of the console log's name.
    fn log_suffix(self) -> &'static str {
        match self {
            Expect::Pass => "",
            Expect::BrokenInit => "-broken-init",
            Expect::GhostPanic => "-ghost-sabotage",
        }
    }

    /// What the summary says of the boot.
    fn describe(self) -> &'static str {
        match self {
            Expect::Pass => "",
            Expect::BrokenInit => ", with s2rmap.break_init_check (expect init to fail)",
            Expect::GhostPanic => {
                ", with s2rmap_stress.ghost_sabotage=1 (expect the ghost checker's hyp panic)"
            }
        }
    }
}

/// A QEMU CPU model, and the pKVM mode it gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpu {
    /// `-cpu max,lpa2=off`: has VHE, so protected mode runs as hVHE.
    Max,
    /// `-cpu cortex-a72`: no VHE, so protected mode runs as classic nVHE.
    CortexA72,
}

impl Cpu {
    /// The name on the command line and in log file names.
    pub fn name(self) -> &'static str {
        match self {
            Cpu::Max => "max",
            Cpu::CortexA72 => "cortex-a72",
        }
    }

    fn qemu_cpu(self) -> &'static str {
        match self {
            // The stock hypervisor panics with LPA2 on.
            Cpu::Max => "max,lpa2=off",
            Cpu::CortexA72 => "cortex-a72",
        }
    }

    /// The line the kernel prints when pKVM is up on this CPU.
    pub fn expected_pkvm(self) -> &'static str {
        match self {
            Cpu::Max => "Protected hVHE mode initialized successfully",
            Cpu::CortexA72 => "Protected nVHE mode initialized successfully",
        }
    }
}

/// Parses `--cpu` (default: both).
pub fn cpus(arg: Option<&str>) -> Result<Vec<Cpu>> {
    match arg.unwrap_or("both") {
        "max" => Ok(vec![Cpu::Max]),
        "cortex-a72" | "a72" => Ok(vec![Cpu::CortexA72]),
        "both" => Ok(vec![Cpu::Max, Cpu::CortexA72]),
        other => bail!("unknown --cpu {other:?} (expected max, cortex-a72 or both)"),
    }
}

/// The console log of one boot: `target/boot-<cpu>.log` for the default variant,
/// with the variant (and `-broken-init` or `-ghost-sabotage`) appended otherwise.
pub fn log_path(cpu: Cpu, opts: &BootOptions) -> PathBuf {
    let mut name = format!("boot-{}", cpu.name());
    if opts.variant != Variant::S2rmap {
        name.push('-');
        name.push_str(opts.variant.name());
    }
    name.push_str(opts.expect.log_suffix());
    util::target_dir().join(format!("{name}.log"))
}

/// How one boot went.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The CPU it ran on.
    pub cpu: Cpu,
    /// Why it failed; empty for a pass.
    pub problems: Vec<String>,
    /// One line for the summary.
    pub summary: String,
    /// KTAP results, top-level and subtests: `ok` (skips included) and `not ok`.
    pub ktap_ok: usize,
    /// Of `ktap_ok`, how many were skipped.
    pub ktap_skip: usize,
    /// `not ok` results.
    pub ktap_not_ok: usize,
}

/// Boots each CPU in turn (one QEMU at a time) and fails if any boot failed.
pub fn boot_cpus(cpus: &[Cpu], opts: &BootOptions) -> Result {
    let outcomes = boot_all(cpus, opts)?;
    let failed = outcomes.iter().filter(|o| !o.problems.is_empty()).count();
    if failed > 0 {
        bail!("{failed} of {} boot(s) failed", outcomes.len());
    }
    Ok(())
}

/// Boots each CPU in turn, prints the summary and returns every outcome, failed boots
/// included; an error only when a boot could not be attempted.
pub fn boot_all(cpus: &[Cpu], opts: &BootOptions) -> Result<Vec<Outcome>> {
    let image = opts.variant.image();
    if !image.exists() {
        bail!(
            "{} does not exist: run `cargo xtask kernel --variant {}` first",
            image.display(),
            opts.variant.name()
        );
    }
    let initrd = initramfs::archive(opts.variant);
    if !initrd.exists() {
        initramfs::build(opts.variant)?;
    }
    let mut outcomes = Vec::new();
    for &cpu in cpus {
        outcomes.push(boot_one(cpu, opts, &image, &initrd)?);
    }
    println!();
    println!("boot summary: variant {}{}", opts.variant.name(), opts.expect.describe());
    for o in &outcomes {
        let verdict = if o.problems.is_empty() { "PASS" } else { "FAIL" };
        println!(
            "  {:<11} {verdict}  {}  (log: {})",
            o.cpu.name(),
            o.summary,
            log_path(o.cpu, opts).display()
        );
        for p in &o.problems {
            println!("      - {p}");
        }
    }
    Ok(outcomes)
}

fn boot_one(
    cpu: Cpu,
    opts: &BootOptions,
    image: &std::path::Path,
    initrd: &std::path::Path,
) -> Result<Outcome> {
    let mut append = String::from("console=ttyAMA0 kvm-arm.mode=protected panic=-1");
    if let Some(parameter) = opts.expect.parameter() {
        append.push(' ');
        append.push_str(parameter);
    }
    if let Some(extra) = &opts.append {
        append.push(' ');
        append.push_str(extra);
    }
    let secs = opts.timeout.as_secs().max(1);
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=5", &format!("{}", secs + 10), "qemu-system-aarch64"])
        .args(["-M", "virt,virtualization=on,gic-version=3", "-cpu", cpu.qemu_cpu()])
        .args(["-smp", &smp().to_string(), "-m", "1G", "-nographic", "-no-reboot"])
        // No network device: nothing uses one, and its option ROM
        // (efi-virtio.rom) is not installed with QEMU everywhere.
        .args(["-nic", "none", "-kernel"])
        .arg(image)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(&append)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let log = log_path(cpu, opts);
    let mut logf = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let _ = writeln!(logf, "# {}", util::show(&cmd));
    step(format!(
        "boot {}: {} -cpu {} -smp {} (limit {secs}s), console -> {}",
        cpu.name(),
        opts.variant.name(),
        cpu.qemu_cpu(),
        smp(),
        log.display()
    ));
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot run `{}`: {e}", util::show(&cmd)))?;
    let (tx, rx) = mpsc::channel::<String>();
    let readers = [
        spawn_reader(child.stdout.take().expect("piped"), tx.clone(), ""),
        spawn_reader(child.stderr.take().expect("piped"), tx, "qemu: "),
    ];
    let mut console = Console::default();
    let mut timed_out = false;
    loop {
        let left = opts.timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            timed_out = true;
            step(format!("boot {}: TIME-OUT after {secs}s, killing QEMU", cpu.name()));
            kill(&mut child);
            break;
        }
        match rx.recv_timeout(left.min(Duration::from_secs(1))) {
            Ok(line) => {
                let _ = writeln!(logf, "{line}");
                if let Some(ev) = console.feed(&line) {
                    report(cpu, &ev);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // Drain what is left (after a kill the readers end at EOF).
    for r in readers {
        let _ = r.join();
    }
    while let Ok(line) = rx.try_recv() {
        let _ = writeln!(logf, "{line}");
        if let Some(ev) = console.feed(&line) {
            report(cpu, &ev);
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let took = started.elapsed().as_secs_f64();
    step(format!("boot {}: QEMU exited ({status}) after {took:.1}s", cpu.name()));
    let mut problems = match opts.expect {
        Expect::Pass => console.verdict(cpu.expected_pkvm(), opts.variant.patched(), timed_out),
        Expect::BrokenInit => console.verdict_broken_init(timed_out),
        Expect::GhostPanic => console.verdict_ghost_panic(timed_out),
    };
    if !timed_out && !status.success() {
        problems.push(format!("QEMU exited with {status}"));
    }
    let k = &console.ktap;
    let skipped = k.results.iter().filter(|r| r.skip).count();
    let passed = k.results.iter().filter(|r| r.ok && !r.skip).count();
    let summary = format!(
        "{}; KTAP {} ok, {} skip, {} not ok; {took:.1}s",
        console.pkvm_line().unwrap_or("no pKVM init line"),
        passed,
        skipped,
        k.results.len() - passed - skipped
    );
    let all = || k.results.iter().chain(&k.subtests);
    Ok(Outcome {
        cpu,
        problems,
        summary,
        ktap_ok: all().filter(|r| r.ok).count(),
        ktap_skip: all().filter(|r| r.ok && r.skip).count(),
        ktap_not_ok: all().filter(|r| !r.ok).count(),
    })
}

fn spawn_reader(
    src: impl std::io::Read + Send + 'static,
    tx: mpsc::Sender<String>,
    prefix: &'static str,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(src);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).replace('\r', "");
                    if tx.send(format!("{prefix}{line}")).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

fn report(cpu: Cpu, ev: &Event) {
    let c = cpu.name();
    match ev {
        Event::KernelStarted => step(format!("boot {c}: kernel started")),
        Event::PkvmInitialised(l) => step(format!("boot {c}: pKVM initialised: {l}")),
        Event::RustCheck(true) => step(format!("boot {c}: s2rmap EL2 Rust init check passed")),
        Event::RustCheck(false) => step(format!("boot {c}: s2rmap EL2 Rust init check FAILED")),
        Event::PkvmFailed(l) => step(format!("boot {c}: pKVM init failed: {l}")),
        Event::UserspaceStarted => step(format!("boot {c}: userspace started")),
        Event::Test(r) => step(format!(
            "boot {c}: {}{}ok {} - {}{}",
            "  ".repeat(r.depth),
            if r.ok { "" } else { "not " },
            r.number,
            r.name,
            if r.skip { " # SKIP" } else { "" }
        )),
        Event::Panic(l) => step(format!("boot {c}: PANIC/BUG: {l}")),
        Event::PowerOff => step(format!("boot {c}: power-off")),
    }
}

/// Stops `timeout` and QEMU under it: SIGTERM first (timeout passes it on), then SIGKILL
/// to both by pid.
fn kill(child: &mut Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for qemu in children.split_whitespace() {
        let _ = Command::new("kill").args(["-KILL", qemu]).status();
    }
    let _ = child.kill();
}
