//! `cargo xtask test`: the host checks (`scripts/test`), then everything `cargo xtask
//! run` does (kernel, modules, initramfs, a boot on each CPU), and one count over all.
//!
//! The count is the KTAP results of the boots, top-level and subtests (a skip counts
//! as passed), plus one for the host checks. A boot that failed without any `not ok`
//! line (a panic, a time-out, a missing power-off) counts as one failure, and so does a
//! build step that failed (the boots then do not run). The last line is
//! `N passed, M failed`; the exit status is non-zero if M is.

use crate::boot::{self, BootOptions, Outcome};
use crate::util::{self, Result, bail, step};
use crate::{initramfs, kernel, module};
use std::process::Command;

/// The tally.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Passed checks.
    pub passed: usize,
    /// Of `passed`, KTAP skips.
    pub skipped: usize,
    /// Failed checks.
    pub failed: usize,
}

impl Tally {
    /// Adds one check.
    pub fn check(&mut self, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
    }

    /// Adds a boot's KTAP results, and one failure for a failed boot with no `not ok`.
    pub fn boot(&mut self, o: &Outcome) {
        self.passed += o.ktap_ok;
        self.skipped += o.ktap_skip;
        self.failed += o.ktap_not_ok;
        if !o.problems.is_empty() && o.ktap_not_ok == 0 {
            self.failed += 1;
        }
    }

    /// The last line.
    pub fn line(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }
}

/// Runs the whole test suite; fails if anything failed.
pub fn run(cpus: &[boot::Cpu], opts: &BootOptions) -> Result {
    let mut tally = Tally::default();
    let mut failures: Vec<String> = Vec::new();

    step("test: host checks (scripts/test)");
    let script = util::repo_root().join("scripts/test");
    let host = util::run(Command::new(&script).current_dir(util::repo_root()));
    if let Err(e) = &host {
        failures.push(format!("host checks: {e}"));
    }
    tally.check(host.is_ok());
    step(format!("test: host checks {}", if host.is_ok() { "passed" } else { "FAILED" }));

    let built = kernel::kernel(opts.variant)
        .and_then(|_| module::build(opts.variant))
        .and_then(|_| initramfs::build(opts.variant));
    match built {
        Err(e) => {
            failures.push(format!("kernel/module/initramfs build: {e}"));
            tally.check(false);
        }
        Ok(_) => match boot::boot_all(cpus, opts) {
            Err(e) => {
                failures.push(format!("boot: {e}"));
                tally.check(false);
            }
            Ok(outcomes) => {
                for o in &outcomes {
                    tally.boot(o);
                    if !o.problems.is_empty() {
                        failures.push(format!("boot {}: {}", o.cpu.name(), o.problems.join("; ")));
                    }
                }
            }
        },
    }

    println!();
    println!("test summary (variant {}):", opts.variant.name());
    for f in &failures {
        println!("  FAIL {f}");
    }
    println!(
        "  host checks: 1, KTAP results of {} boot(s) (top-level and subtests), {} of them skipped",
        cpus.len(),
        tally.skipped
    );
    println!("{}", tally.line());
    if tally.failed > 0 {
        bail!("{}", tally.line());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ok: usize, skip: usize, not_ok: usize, problems: &[&str]) -> Outcome {
        Outcome {
            cpu: boot::Cpu::Max,
            problems: problems.iter().map(|p| p.to_string()).collect(),
            summary: String::new(),
            ktap_ok: ok,
            ktap_skip: skip,
            ktap_not_ok: not_ok,
        }
    }

    #[test]
    fn counting() {
        let mut t = Tally::default();
        t.check(true);
        t.boot(&outcome(43, 1, 0, &[]));
        assert_eq!(t.line(), "44 passed, 0 failed");
        assert_eq!(t.skipped, 1);
        // Not-ok results are the failures of a boot...
        t.boot(&outcome(40, 0, 3, &["not ok 1", "not ok 2", "not ok 3"]));
        assert_eq!(t.line(), "84 passed, 3 failed");
        // ...and a boot that failed with none (a panic) is one.
        t.boot(&outcome(2, 0, 0, &["panic: HYP panic"]));
        assert_eq!(t.line(), "86 passed, 4 failed");
        t.check(false);
        assert_eq!(t.line(), "86 passed, 5 failed");
    }
}
