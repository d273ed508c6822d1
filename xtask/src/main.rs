//! `cargo xtask`: the Linux/QEMU pipeline of s2rmap.
//!
//! ```text
//! cargo xtask kernel    [--debug] [--variant stock|s2rmap|s2rmap-debug|s2rmap-prod]
//! cargo xtask check-link [--debug]
//! cargo xtask module    [--debug] [--variant V]
//! cargo xtask initramfs [--debug] [--variant V]
//! cargo xtask boot      [--cpu max|cortex-a72|both] [--debug] [--variant V]
//!                       [--timeout SECS] [--break-init-check | --ghost-sabotage]
//!                       [--append ARGS] [--smp N]
//! cargo xtask run       [--debug] [--variant V] [--timeout SECS] [--smp N]
//! cargo xtask test      [--debug] [--variant V] [--timeout SECS] [--smp N]
//! cargo xtask bench     [--cpu max|cortex-a72|both] [--timeout SECS]
//! ```

mod bench;
mod boot;
mod initramfs;
mod kernel;
mod ktap;
mod linkcheck;
mod module;
mod test;
mod util;

use kernel::Variant;
use util::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  kernel      unpack, patch, configure and build Linux 6.12 (Image + modules),
              then check the Rust object in kvm_nvhe.o
  check-link  only the link check of the Rust object, on an existing build
  module      build the kernel modules in nvhe/linux/*/Kbuild against the kernel
  initramfs   build target/initramfs/initramfs-<variant>.cpio (static /init printing
              KTAP, plus the variant's modules)
  boot        boot the kernel under QEMU and check the console
  run         kernel + modules + initramfs + boot on both CPUs (for s2rmap-debug, one
              more boot with --ghost-sabotage)
  test        scripts/test (host checks), then what run does; ends with
              \"N passed, M failed\" over the boots' KTAP results plus the host checks
  bench       stock (+ bench-only hypercalls) vs s2rmap under QEMU -icount, one vCPU:
              instructions per operation, printed and in target/bench/results.json

options:
  --variant V          stock | stock-bench | s2rmap (default) | s2rmap-debug | s2rmap-prod
  --debug              the s2rmap-debug variant (CONFIG_NVHE_EL2_DEBUG=y)
  --cpu C              max (hVHE) | cortex-a72 (nVHE) | both (default)
  --timeout SECS       hard limit for one boot (default 300)
  --break-init-check   boot with s2rmap.break_init_check and expect pKVM init to fail
  --ghost-sabotage     (s2rmap-debug) make the ghost checker see a wrong state and expect
                       the hyp panic, with the checker's message in the host log
  --append \"ARGS\"      more kernel command-line parameters (after ours, so they win)
  --smp N              vCPUs of each boot (default 4: the SMP stress test uses them all)
";

#[derive(Debug, Default)]
struct Args {
    debug: bool,
    variant: Option<String>,
    cpu: Option<String>,
    timeout: Option<u64>,
    break_init_check: bool,
    ghost_sabotage: bool,
    append: Option<String>,
    smp: Option<u32>,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next().cloned().ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--debug" => a.debug = true,
            "--variant" => a.variant = Some(value("--variant")?),
            "--cpu" => a.cpu = Some(value("--cpu")?),
            "--timeout" => {
                let v = value("--timeout")?;
                a.timeout = Some(v.parse().map_err(|_| format!("bad --timeout {v:?}"))?);
            }
            "--break-init-check" => a.break_init_check = true,
            "--ghost-sabotage" => a.ghost_sabotage = true,
            "--append" => a.append = Some(value("--append")?),
            "--smp" => {
                let v = value("--smp")?;
                a.smp = Some(
                    v.parse().ok().filter(|n| *n > 0).ok_or_else(|| format!("bad --smp {v:?}"))?,
                );
            }
            other => bail!("unknown option {other:?}\n\n{USAGE}"),
        }
    }
    Ok(a)
}

fn main() {
    util::init_clock();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        print!("{USAGE}");
        std::process::exit(2);
    };
    let result = parse_args(rest).and_then(|a| dispatch(cmd, &a));
    if let Err(e) = result {
        eprintln!("xtask {cmd}: error: {e}");
        std::process::exit(1);
    }
}

fn dispatch(cmd: &str, a: &Args) -> Result {
    if let Some(n) = a.smp {
        boot::set_smp(n);
    }
    let variant = || Variant::from_flags(a.debug, a.variant.as_deref());
    let opts = || -> Result<boot::BootOptions> {
        Ok(boot::BootOptions {
            variant: variant()?,
            timeout: std::time::Duration::from_secs(a.timeout.unwrap_or(300)),
            expect: match (a.break_init_check, a.ghost_sabotage) {
                (false, false) => boot::Expect::Pass,
                (true, false) => boot::Expect::BrokenInit,
                (false, true) => boot::Expect::GhostPanic,
                (true, true) => bail!("--break-init-check and --ghost-sabotage exclude each other"),
            },
            append: a.append.clone(),
        })
    };
    match cmd {
        "kernel" => kernel::kernel(variant()?).map(|_| ()),
        "check-link" => {
            let v = variant()?;
            if !v.patched() {
                bail!("the stock variant has no Rust object");
            }
            linkcheck::check_build(&v.build_dir(), &kernel::variant_rust_lib(v)?)
        }
        "module" => module::build(variant()?).map(|_| ()),
        "initramfs" => initramfs::build(variant()?).map(|_| ()),
        "boot" => boot::boot_cpus(&boot::cpus(a.cpu.as_deref())?, &opts()?),
        "run" => {
            let o = opts()?;
            kernel::kernel(o.variant)?;
            module::build(o.variant)?;
            initramfs::build(o.variant)?;
            let cpus = boot::cpus(a.cpu.as_deref())?;
            boot::boot_cpus(&cpus, &o)?;
            // The debug kernel checks every transition against the specification: show
            // once that a mismatch stops the hyp and its message reaches the host.
            if o.variant == Variant::S2rmapDebug && o.expect == boot::Expect::Pass {
                let sabotage = boot::BootOptions { expect: boot::Expect::GhostPanic, ..o };
                boot::boot_cpus(&cpus[..1], &sabotage)?;
            }
            Ok(())
        }
        "test" => test::run(&boot::cpus(a.cpu.as_deref())?, &opts()?),
        "bench" => bench::run(&bench::BenchOptions {
            cpus: boot::cpus(Some(a.cpu.as_deref().unwrap_or("max")))?,
            timeout: std::time::Duration::from_secs(a.timeout.unwrap_or(600)),
        }),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}
