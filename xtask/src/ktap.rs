//! Reading a boot console: KTAP results, pKVM init, panics, power-off.
//!
//! Pure functions over text, so that the verdict logic is unit-tested without QEMU.

/// One KTAP test result line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The test number.
    pub number: u32,
    /// The description after ` - `.
    pub name: String,
    /// `ok` (true) or `not ok` (false).
    pub ok: bool,
    /// `# SKIP ...` directive.
    pub skip: bool,
    /// Nesting depth: 0 for top-level results, 1+ for subtests (indented).
    pub depth: usize,
}

/// Parses one line as a KTAP result (`ok 1 - name # SKIP why`, `not ok 2 name`).
pub fn parse_result(line: &str) -> Option<TestResult> {
    let line = line.trim_end_matches(['\r', '\n']);
    let indent = line.len() - line.trim_start().len();
    let t = line.trim_start();
    let (ok, rest) = if let Some(r) = t.strip_prefix("ok ") {
        (true, r)
    } else if let Some(r) = t.strip_prefix("not ok ") {
        (false, r)
    } else {
        return None;
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let number: u32 = digits.parse().ok()?;
    let rest = &rest[digits.len()..];
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let rest = rest.trim_start();
    let rest = rest.strip_prefix("- ").unwrap_or(rest);
    let (name, directive) = match rest.split_once('#') {
        Some((n, d)) => (n.trim(), d.trim()),
        None => (rest.trim(), ""),
    };
    let skip = directive.to_ascii_uppercase().starts_with("SKIP");
    Some(TestResult { number, name: name.to_string(), ok, skip, depth: indent / 2 })
}

/// A KTAP document, as far as it was printed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ktap {
    /// `KTAP version 1` was seen.
    pub started: bool,
    /// `1..N` of the top level.
    pub plan: Option<u32>,
    /// Top-level results, in order.
    pub results: Vec<TestResult>,
    /// Subtest results (indented), in order.
    pub subtests: Vec<TestResult>,
}

impl Ktap {
    /// Feeds one console line; returns the result it carried, if any.
    pub fn feed(&mut self, line: &str) -> Option<TestResult> {
        let t = line.trim_end_matches(['\r', '\n']);
        if t.trim_start().starts_with("KTAP version") || t.trim_start().starts_with("TAP version") {
            if !t.starts_with(' ') {
                self.started = true;
            }
            return None;
        }
        if let Some(n) = t.strip_prefix("1..") {
            if self.plan.is_none() {
                self.plan = n.trim().parse().ok();
            }
            return None;
        }
        if !self.started {
            return None;
        }
        let r = parse_result(t)?;
        if r.depth == 0 {
            self.results.push(r.clone());
        } else {
            self.subtests.push(r.clone());
        }
        Some(r)
    }

    /// Why the run is not a pass; empty if it is.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !self.started {
            p.push("no KTAP output (no `KTAP version 1` line)".to_string());
            return p;
        }
        match self.plan {
            None => p.push("KTAP plan line `1..N` missing".to_string()),
            Some(n) if self.results.len() != n as usize => {
                p.push(format!("KTAP plan says {n} tests but {} reported", self.results.len()));
            }
            Some(_) => {}
        }
        for (i, r) in self.results.iter().enumerate() {
            if r.number as usize != i + 1 {
                p.push(format!("KTAP result {} is numbered {}", i + 1, r.number));
            }
        }
        for r in self.results.iter().chain(&self.subtests).filter(|r| !r.ok) {
            p.push(format!("not ok {} - {}", r.number, r.name));
        }
        p
    }
}

/// Console lines that mean the kernel or the hypervisor died or is broken.
pub const PANIC_PATTERNS: &[&str] = &[
    "Kernel panic",
    "HYP panic",
    "hyp panic",
    "nVHE hyp BUG",
    "BUG:",
    "kernel BUG at",
    "Internal error:",
    "Unable to handle kernel",
    "Oops",
    "WARNING: CPU:",
    "Call trace:",
    "SError Interrupt",
    "Bad mode in",
    // The message of a Rust panic at EL2, printed by the host (debug kernels).
    "s2rmap EL2 panic:",
];

/// Returns the panic pattern a line matches, if any.
pub fn panic_in(line: &str) -> Option<&'static str> {
    PANIC_PATTERNS.iter().copied().find(|p| line.contains(p))
}

/// What the console showed, in boot order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `Booting Linux on physical CPU`.
    KernelStarted,
    /// `Protected nVHE/hVHE mode initialized successfully` (the whole line).
    PkvmInitialised(String),
    /// `s2rmap: EL2 Rust init check passed` / `failed`.
    RustCheck(bool),
    /// `Failed to init hyp memory protection` or `error initializing Hyp mode`.
    PkvmFailed(String),
    /// `Run /init as init process`.
    UserspaceStarted,
    /// One KTAP result.
    Test(TestResult),
    /// A panic/BUG/oops line.
    Panic(String),
    /// `reboot: Power down`.
    PowerOff,
}

/// Follows a console line by line.
#[derive(Debug, Default, Clone)]
pub struct Console {
    /// KTAP state.
    pub ktap: Ktap,
    /// Every event, in order.
    pub events: Vec<Event>,
}

impl Console {
    /// Feeds one line; returns the event it produced.
    pub fn feed(&mut self, line: &str) -> Option<Event> {
        let ev = if line.contains("Booting Linux on physical CPU") {
            Some(Event::KernelStarted)
        } else if !line.starts_with('#')
            && (line.contains("Protected hVHE mode initialized successfully")
                || line.contains("Protected nVHE mode initialized successfully"))
        {
            Some(Event::PkvmInitialised(strip_timestamp(line)))
        } else if line.contains("s2rmap: EL2 Rust init check passed") {
            Some(Event::RustCheck(true))
        } else if line.contains("s2rmap: EL2 Rust init check failed") {
            Some(Event::RustCheck(false))
        } else if line.contains("Failed to init hyp memory protection")
            || line.contains("error initializing Hyp mode")
        {
            Some(Event::PkvmFailed(strip_timestamp(line)))
        } else if line.contains("Run /init as init process") {
            Some(Event::UserspaceStarted)
        } else if line.contains("reboot: Power down") {
            Some(Event::PowerOff)
        } else if let Some(r) = self.ktap.feed(line) {
            Some(Event::Test(r))
        } else {
            panic_in(line).map(|_| Event::Panic(strip_timestamp(line)))
        };
        if let Some(e) = &ev {
            self.events.push(e.clone());
        }
        ev
    }

    /// The pKVM init line, if any.
    pub fn pkvm_line(&self) -> Option<&str> {
        self.events.iter().find_map(|e| match e {
            Event::PkvmInitialised(l) => Some(l.as_str()),
            _ => None,
        })
    }

    /// The first panic lines (a panic prints several matching lines), as problems.
    fn panics(&self) -> Vec<String> {
        const SHOWN: usize = 4;
        let all: Vec<&String> = self
            .events
            .iter()
            .filter_map(|e| if let Event::Panic(l) = e { Some(l) } else { None })
            .collect();
        let mut p: Vec<String> = all.iter().take(SHOWN).map(|l| format!("panic: {l}")).collect();
        if all.len() > SHOWN {
            p.push(format!("panic: ... and {} more such lines", all.len() - SHOWN));
        }
        p
    }

    fn has(&self, f: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(f)
    }

    /// Checks a normal boot: `expected_pkvm` is the init line for this CPU, `rust_check`
    /// whether the s2rmap check line must appear. Returns the problems (empty = pass).
    pub fn verdict(&self, expected_pkvm: &str, rust_check: bool, timed_out: bool) -> Vec<String> {
        let mut p = Vec::new();
        if timed_out {
            p.push("timed out".to_string());
        }
        p.extend(self.panics());
        for e in &self.events {
            if let Event::PkvmFailed(l) = e {
                p.push(format!("pKVM init failed: {l}"));
            }
        }
        match self.pkvm_line() {
            Some(l) if l.contains(expected_pkvm) => {}
            Some(l) => p.push(format!("expected \"{expected_pkvm}\", got \"{l}\"")),
            None => p.push(format!("missing \"{expected_pkvm}\"")),
        }
        if rust_check && !self.has(|e| *e == Event::RustCheck(true)) {
            p.push("missing \"s2rmap: EL2 Rust init check passed\"".to_string());
        }
        p.extend(self.ktap.problems());
        if !self.has(|e| *e == Event::PowerOff) {
            p.push("no clean power-off (\"reboot: Power down\")".to_string());
        }
        p
    }

    /// Checks a boot with `s2rmap.break_init_check`: the Rust check must run and fail,
    /// pKVM must not come up, and the machine must still reach userspace and power off.
    pub fn verdict_broken_init(&self, timed_out: bool) -> Vec<String> {
        let mut p = Vec::new();
        if timed_out {
            p.push("timed out".to_string());
        }
        p.extend(self.panics());
        if !self.has(|e| *e == Event::RustCheck(false)) {
            p.push("missing \"s2rmap: EL2 Rust init check failed\"".to_string());
        }
        if !self.has(|e| matches!(e, Event::PkvmFailed(_))) {
            p.push("missing \"Failed to init hyp memory protection\"".to_string());
        }
        if let Some(l) = self.pkvm_line() {
            p.push(format!("pKVM came up although the check was broken: {l}"));
        }
        if !self.has(|e| *e == Event::PowerOff) {
            p.push("no clean power-off (\"reboot: Power down\")".to_string());
        }
        p
    }
}

impl Console {
    /// Checks a boot with `s2rmap_stress.ghost_sabotage=1`: pKVM comes up, the stress
    /// module arms the sabotage and shares a page, and the ghost checker must stop the
    /// hyp with its message (naming the call and the page) printed by the host, then the
    /// hyp panic report. Nothing else may have failed first.
    pub fn verdict_ghost_panic(&self, timed_out: bool) -> Vec<String> {
        let mut p = Vec::new();
        if timed_out {
            p.push("timed out".to_string());
        }
        if self.pkvm_line().is_none() {
            p.push("pKVM did not come up".to_string());
        }
        let message = self.panic_lines().position(|l| {
            l.contains("s2rmap EL2 panic: s2rmap ghost: HostShareHyp returned Ok(()); page 0x")
                && l.contains("spec says")
        });
        let hyp_panic = self.panic_lines().position(|l| l.contains("HYP panic"));
        match (message, hyp_panic) {
            (Some(m), Some(h)) if m < h => {}
            (Some(_), Some(_)) => p.push("the ghost message came after the panic".to_string()),
            (None, _) => p.push("no \"s2rmap ghost: HostShareHyp ...\" message".to_string()),
            (_, None) => p.push("no \"HYP panic\"".to_string()),
        }
        for e in &self.events {
            if let Event::Test(t) = e
                && !t.ok
                && t.name != "ghost_sabotage_panics"
            {
                p.push(format!("not ok before the sabotage: {}", t.name));
            }
        }
        p
    }

    fn panic_lines(&self) -> impl Iterator<Item = &String> + '_ {
        self.events.iter().filter_map(|e| if let Event::Panic(l) = e { Some(l) } else { None })
    }
}

/// `[    1.234] kvm [1]: foo` -> `kvm [1]: foo`.
pub fn strip_timestamp(line: &str) -> String {
    let t = line.trim();
    if t.starts_with('[')
        && let Some((_, rest)) = t.split_once("] ")
    {
        return rest.trim().to_string();
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NVHE: &str = "Protected nVHE mode initialized successfully";

    const GOOD: &str = "\
[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd083]
[    0.512000] kvm [1]: s2rmap: EL2 Rust init check passed
[    0.513000] kvm [1]: Protected nVHE mode initialized successfully
[    0.900000] Run /init as init process
KTAP version 1
1..3
ok 1 - pkvm_protected_mode
[    1.000000] random: crng init done
not ok 2 - something_else # TODO later
ok 3 - selftests # SKIP no module
# s2rmap-init: powering off
[    1.200000] reboot: Power down
";

    fn feed(text: &str) -> Console {
        let mut c = Console::default();
        for l in text.lines() {
            c.feed(l);
        }
        c
    }

    #[test]
    fn result_lines() {
        let r = parse_result("ok 3 - selftests # SKIP no module").unwrap();
        assert_eq!(
            (r.number, r.name.as_str(), r.ok, r.skip, r.depth),
            (3, "selftests", true, true, 0)
        );
        let r = parse_result("    not ok 12 share_twice").unwrap();
        assert_eq!((r.number, r.name.as_str(), r.ok, r.depth), (12, "share_twice", false, 2));
        assert!(parse_result("okay 1").is_none());
        assert!(parse_result("ok x - y").is_none());
        assert!(parse_result("ok 1x").is_none());
    }

    #[test]
    fn a_failing_test_fails_the_boot() {
        let c = feed(GOOD);
        assert_eq!(c.ktap.results.len(), 3);
        let p = c.verdict(NVHE, true, false);
        assert_eq!(p, vec!["not ok 2 - something_else".to_string()]);
    }

    #[test]
    fn a_clean_boot_passes() {
        let c = feed(&GOOD.replace("not ok 2 - something_else # TODO later", "ok 2 - x"));
        assert!(c.verdict(NVHE, true, false).is_empty(), "{:?}", c.verdict(NVHE, true, false));
        assert_eq!(c.pkvm_line(), Some("kvm [1]: Protected nVHE mode initialized successfully"));
        assert!(c.events.contains(&Event::UserspaceStarted));
        assert!(c.events.contains(&Event::KernelStarted));
    }

    #[test]
    fn wrong_pkvm_mode_and_missing_rust_check_fail() {
        let text = GOOD
            .replace("not ok 2 - something_else # TODO later", "ok 2 - x")
            .replace("nVHE", "hVHE")
            .replace("s2rmap: EL2 Rust init check passed", "hello");
        let p = feed(&text).verdict(NVHE, true, false);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("expected \"Protected nVHE"));
        assert!(p[1].contains("Rust init check passed"));
    }

    #[test]
    fn panics_missing_tests_and_timeouts_fail() {
        let text = "\
[    0.5] Booting Linux on physical CPU 0x0
[    0.6] kvm [1]: nVHE hyp panic at: [<ffff800080a0b1c4>] __kvm_nvhe_handle_host_mem_abort+0x1c4/0x1d0!
[    0.6] Kernel panic - not syncing: HYP panic:
KTAP version 1
1..2
ok 1 - a
";
        let c = feed(text);
        let p = c.verdict(NVHE, false, true);
        assert!(p.contains(&"timed out".to_string()), "{p:?}");
        assert!(p.iter().any(|l| l.starts_with("panic: kvm [1]: nVHE hyp panic")), "{p:?}");
        assert!(p.iter().any(|l| l.starts_with("panic: Kernel panic")), "{p:?}");
        assert!(p.iter().any(|l| l.contains("plan says 2 tests but 1")), "{p:?}");
        assert!(p.iter().any(|l| l.contains("missing \"Protected nVHE")), "{p:?}");
        assert!(p.iter().any(|l| l.contains("power-off")), "{p:?}");
    }

    #[test]
    fn no_ktap_at_all_fails() {
        let p = feed("[ 0.1] Booting Linux on physical CPU 0x0\n").verdict(NVHE, false, false);
        assert!(p.iter().any(|l| l.contains("no KTAP output")), "{p:?}");
    }

    #[test]
    fn ktap_diagnostics_are_not_kernel_lines() {
        let c = feed("# no \"Protected hVHE mode initialized successfully\" in the log\n");
        assert_eq!(c.pkvm_line(), None);
    }

    #[test]
    fn broken_init_check_verdict() {
        let text = "\
[    0.5] kvm [1]: s2rmap: EL2 Rust init check failed
[    0.5] kvm [1]: Failed to init hyp memory protection
[    0.5] kvm [1]: error initializing Hyp mode: -8
[    1.2] reboot: Power down
";
        assert!(feed(text).verdict_broken_init(false).is_empty());
        let p = feed(GOOD).verdict_broken_init(false);
        assert_eq!(p.len(), 3, "{p:?}");
    }

    #[test]
    fn ghost_sabotage_verdict() {
        let text = "\
[    0.513] kvm [1]: Protected nVHE mode initialized successfully
    # ghost_sabotage: sharing pfn 0x4a3b2; the hyp must panic now
[    9.1] kvm [1]: nVHE hyp panic at: [<ffff800080a0b1c4>] __kvm_nvhe_hyp_panic+0x0/0x8!
[    9.1] kvm [1]: s2rmap EL2 panic: s2rmap ghost: HostShareHyp returned Ok(()); page 0x4a3b2000: before [owner=host host=Owned hyp=NoPage used=0 pins=0 shares=0 ffa=0], spec says [owner=host host=SharedOwned hyp=SharedBorrowed used=0 pins=0 shares=0 ffa=0], found [owner=host host=SharedOwned hyp=SharedBorrowed used=0 pins=1 shares=0 ffa=0] (share/src/tracker/ghosted.rs:97)
[    9.2] Kernel panic - not syncing: HYP panic:
";
        let good = feed(text).verdict_ghost_panic(false);
        assert!(good.is_empty(), "{good:?}");
        // The share returned: the checker missed it.
        let missed = text.replace("s2rmap EL2 panic: s2rmap ghost", "kvm: something else");
        let p = feed(&missed).verdict_ghost_panic(false);
        assert!(p.iter().any(|l| l.contains("no \"s2rmap ghost")), "{p:?}");
        // A ghost mismatch is a panic line in an ordinary boot too.
        let p = feed(text).verdict(NVHE, false, false);
        assert!(p.iter().any(|l| l.contains("s2rmap ghost: HostShareHyp")), "{p:?}");
        assert!(!feed(GOOD).verdict_ghost_panic(false).is_empty());
    }
}
