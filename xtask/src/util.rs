//! Small helpers: paths, running commands, hashing, progress lines.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

/// What every subcommand returns on failure: a message for the user.
pub type Result<T = ()> = std::result::Result<T, String>;

/// Builds an error message; `bail!(...)` returns it.
macro_rules! bail {
    ($($arg:tt)*) => { return Err(format!($($arg)*)) };
}
pub(crate) use bail;

/// The workspace root (the parent of `xtask/`).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().expect("xtask lives in the workspace root").to_path_buf()
}

/// `target/` of the workspace.
pub fn target_dir() -> PathBuf {
    repo_root().join("target")
}

/// `../shared` relative to the repository root.
pub fn shared_dir() -> PathBuf {
    repo_root().parent().map(|p| p.join("shared")).unwrap_or_else(|| PathBuf::from("../shared"))
}

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Starts the clock that progress lines show.
pub fn init_clock() {
    let _ = start();
}

/// Seconds since xtask started.
pub fn elapsed() -> f64 {
    start().elapsed().as_secs_f64()
}

/// Prints one progress line, prefixed with the elapsed time.
pub fn step(msg: impl AsRef<str>) {
    println!("[{:>7.1}s] {}", elapsed(), msg.as_ref());
}

/// Renders a command for messages.
pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.contains(' ') {
            let _ = write!(s, " '{a}'");
        } else {
            let _ = write!(s, " {a}");
        }
    }
    s
}

/// Runs a command with inherited stdio; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result {
    let status = cmd.status().map_err(|e| format!("cannot run `{}`: {e}", show(cmd)))?;
    check_status(cmd, status)
}

/// Runs a command and returns its stdout; fails unless it exits 0.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", show(cmd)))?;
    check_status(cmd, out.status)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check_status(cmd: &Command, status: ExitStatus) -> Result {
    if status.success() { Ok(()) } else { bail!("`{}` failed: {status}", show(cmd)) }
}

/// Runs a long command and summarises its output instead of printing all of it.
///
/// Lines that look like kbuild progress (`  CC      kernel/fork.o`) are counted, and every
/// `every`-th one is printed with the count. Anything else (warnings, errors, make's own
/// messages) is printed in full. On failure the last lines are printed again, so the
/// error is at the bottom.
pub fn run_summarised(cmd: &mut Command, label: &str, every: usize) -> Result {
    run_filtered(cmd, label, every, |_| true)
}

/// As [`run_summarised`], but prints only the other lines that `keep` accepts.
pub fn run_filtered(
    cmd: &mut Command,
    label: &str,
    every: usize,
    keep: impl Fn(&str) -> bool,
) -> Result {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", show(cmd)))?;
    let (tx, rx) = std::sync::mpsc::channel::<(bool, String)>();
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let tx2 = tx.clone();
    let t1 = std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(std::result::Result::ok) {
            if tx.send((false, line)).is_err() {
                break;
            }
        }
    });
    let t2 = std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(std::result::Result::ok) {
            if tx2.send((true, line)).is_err() {
                break;
            }
        }
    });
    let mut count = 0usize;
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    for (is_err, line) in rx {
        if tail.len() == 40 {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        if !is_err && is_kbuild_progress(&line) {
            count += 1;
            if count.is_multiple_of(every) {
                step(format!("{label}: {count} steps, at {}", line.trim()));
            }
        } else if !is_noise(&line) && (is_err || keep(&line)) {
            println!("{}{line}", if is_err { "  ! " } else { "  | " });
        }
    }
    let _ = t1.join();
    let _ = t2.join();
    let status = child.wait().map_err(|e| e.to_string())?;
    step(format!("{label}: {count} steps, {status}"));
    if !status.success() {
        println!("---- last lines of `{}` ----", show(cmd));
        for l in &tail {
            println!("  {l}");
        }
        bail!("{label} failed: {status}");
    }
    Ok(())
}

/// `  CC      kernel/fork.o`: a short upper-case tag, then a path.
fn is_kbuild_progress(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("  ") else { return false };
    let tag: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    !tag.is_empty()
        && tag.len() <= 9
        && tag.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && rest.len() > tag.len()
}

fn is_noise(line: &str) -> bool {
    line.starts_with("make") && (line.contains("Entering directory") || line.contains("Leaving"))
}

/// FNV-1a, 64 bit: a stable hash for stamp files (std's hasher is not stable).
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Adds bytes, with their length so that concatenations differ.
    pub fn add(&mut self, bytes: &[u8]) -> &mut Self {
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    /// Adds a file's name and contents.
    pub fn add_file(&mut self, path: &Path) -> Result<&mut Self> {
        let data =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        self.add(path.file_name().unwrap_or_default().as_encoded_bytes());
        Ok(self.add(&data))
    }

    /// The hash as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// Reads a file to a string, with the path in the error.
pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Writes a file, creating its directory, with the path in the error.
pub fn write(path: &Path, data: impl AsRef<[u8]>) -> Result {
    if let Some(dir) = path.parent() {
        mkdir(dir)?;
    }
    std::fs::write(path, data).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `mkdir -p`.
pub fn mkdir(path: &Path) -> Result {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// `rm -rf`.
pub fn remove_dir(path: &Path) -> Result {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => bail!("cannot remove {}: {e}", path.display()),
    }
}

/// The sorted entries of a directory whose names end with `suffix` (none if it is missing).
pub fn list(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => bail!("cannot list {}: {e}", dir.display()),
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(suffix)))
        .collect();
    v.sort();
    Ok(v)
}

/// A lock file that allows one kernel build at a time on this machine.
#[derive(Debug)]
pub struct BuildLock(PathBuf);

impl BuildLock {
    /// Takes the lock, or fails naming the process that holds it.
    pub fn take(path: PathBuf) -> Result<Self> {
        if let Some(dir) = path.parent() {
            mkdir(dir)?;
        }
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    use std::io::Write as _;
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(BuildLock(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let pid = std::fs::read_to_string(&path).unwrap_or_default();
                    let pid = pid.trim();
                    if !pid.is_empty() && Path::new(&format!("/proc/{pid}")).exists() {
                        bail!(
                            "another kernel build (pid {pid}) holds {}; one build at a time",
                            path.display()
                        );
                    }
                    // Stale: its process is gone.
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => bail!("cannot create {}: {e}", path.display()),
            }
        }
        bail!("cannot take {}", path.display())
    }
}

impl Drop for BuildLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kbuild_progress_lines() {
        assert!(is_kbuild_progress("  CC      kernel/fork.o"));
        assert!(is_kbuild_progress("  LD [M]  foo.ko"));
        assert!(is_kbuild_progress("  HYPREL  arch/arm64/kvm/hyp/nvhe/hyp-reloc.S"));
        assert!(!is_kbuild_progress("arch/arm64/kvm/arm.c:12: warning: unused"));
        assert!(!is_kbuild_progress("  "));
    }

    #[test]
    fn fnv_is_stable_and_length_aware() {
        let mut a = Fnv::default();
        a.add(b"ab").add(b"c");
        let mut b = Fnv::default();
        b.add(b"a").add(b"bc");
        assert_ne!(a.hex(), b.hex());
        let mut c = Fnv::default();
        c.add(b"");
        assert_eq!(c.hex(), Fnv::default().add(b"").hex());
    }
}
