//! `cargo xtask kernel`: packages, source tree, patches, configuration, build.
//!
//! Layout under `target/linux/`:
//! - `src/<patchset>/`: the unpacked `linux-source-6.12` tarball with a patch set applied
//!   (`vanilla`: none; `s2rmap`: `nvhe/linux/patches/*.patch`). Never built in: the tree
//!   stays clean so that several build directories can share it.
//! - `src/<patchset>.stamp`, `src/<patchset>.applied/`: what the tree was made from.
//! - `build/<variant>/`: the `O=` build directory of one variant, with `.s2rmap-stamp`.

use crate::util::{self, BuildLock, Fnv, Result, bail, step};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian packages the pipeline needs.
pub const PACKAGES: &[&str] = &[
    "qemu-system-arm",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "binutils-aarch64-linux-gnu",
    "linux-source-6.12",
    "bc",
    "flex",
    "bison",
    "libssl-dev",
    "libelf-dev",
    "cpio",
    "patch",
    "xz-utils",
    "make",
];

/// The kernel source tarball from `linux-source-6.12`.
pub const TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";

/// Every `make` in a kernel tree gets these: one call without them reconfigures the tree
/// for the host architecture.
pub const MAKE_ARCH: [&str; 2] = ["ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"];

/// The Rust target of the EL2 staticlib.
pub const RUST_TARGET: &str = "aarch64-unknown-none-softfloat";

/// A kernel flavour. Each has its own build directory, so all stay cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Unpatched Linux 6.12 with the same configuration: the baseline for benchmarks.
    Stock,
    /// `Stock` plus the bench-only debug patch (`nvhe/linux/patches-stock-bench/`): s2rmap's
    /// donate/reclaim/counters hypercall numbers, for `cargo xtask bench`.
    StockBench,
    /// Linux with the s2rmap patches and the Rust staticlib.
    S2rmap,
    /// As `S2rmap`, plus `CONFIG_NVHE_EL2_DEBUG=y`.
    S2rmapDebug,
    /// As `S2rmap` without the test hypercalls (`CONFIG_S2RMAP_TEST_CALLS` off): what a
    /// production kernel would run. It gets no selftest module.
    S2rmapProd,
}

impl Variant {
    /// All variants, for `--help`.
    pub const ALL: [Variant; 5] = [
        Variant::Stock,
        Variant::StockBench,
        Variant::S2rmap,
        Variant::S2rmapDebug,
        Variant::S2rmapProd,
    ];

    /// The name used on the command line and for directories.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Stock => "stock",
            Variant::StockBench => "stock-bench",
            Variant::S2rmap => "s2rmap",
            Variant::S2rmapDebug => "s2rmap-debug",
            Variant::S2rmapProd => "s2rmap-prod",
        }
    }

    /// Parses [`Variant::name`].
    pub fn parse(s: &str) -> Result<Variant> {
        match Variant::ALL.iter().find(|v| v.name() == s) {
            Some(v) => Ok(*v),
            None => {
                bail!(
                    "unknown variant {s:?} (expected stock, stock-bench, s2rmap, s2rmap-debug \
                     or s2rmap-prod)"
                )
            }
        }
    }

    /// The variant selected by `--debug` / `--variant`.
    pub fn from_flags(debug: bool, variant: Option<&str>) -> Result<Variant> {
        match (variant, debug) {
            (Some(v), false) => Variant::parse(v),
            (Some(v), true) => match Variant::parse(v)? {
                Variant::S2rmap | Variant::S2rmapDebug => Ok(Variant::S2rmapDebug),
                Variant::Stock | Variant::StockBench | Variant::S2rmapProd => {
                    bail!("--debug applies to the s2rmap and s2rmap-debug variants only")
                }
            },
            (None, true) => Ok(Variant::S2rmapDebug),
            (None, false) => Ok(Variant::S2rmap),
        }
    }

    /// Whether this variant carries the s2rmap patches and the Rust staticlib.
    pub fn patched(self) -> bool {
        !matches!(self, Variant::Stock | Variant::StockBench)
    }

    /// The source tree under `target/linux/src/` (one per patch set).
    pub fn patchset(self) -> &'static str {
        match self {
            Variant::Stock => "vanilla",
            Variant::StockBench => "stock-bench",
            _ => "s2rmap",
        }
    }

    /// The directory of the patches applied to [`Variant::patchset`], if any.
    fn patch_dir(self) -> Option<PathBuf> {
        match self {
            Variant::Stock => None,
            Variant::StockBench => Some(linux_dir().join("patches-stock-bench")),
            _ => Some(linux_dir().join("patches")),
        }
    }

    /// The patches of this variant's source tree, in order.
    fn patches(self) -> Result<Vec<PathBuf>> {
        match self.patch_dir() {
            Some(d) => util::list(&d, ".patch"),
            None => Ok(Vec::new()),
        }
    }

    /// Whether this variant is a selftest kernel: test hypercalls on, selftest modules.
    pub fn selftests(self) -> bool {
        matches!(self, Variant::S2rmap | Variant::S2rmapDebug)
    }

    /// The configuration fragments, merged in this order.
    pub fn fragments(self) -> Vec<PathBuf> {
        let linux = linux_dir();
        let mut v = vec![
            util::shared_dir().join("linux-6.12-pkvm-minimal.config"),
            linux.join("s2rmap.config"),
        ];
        if self.selftests() {
            v.push(linux.join("s2rmap-test.config"));
        }
        if self == Variant::S2rmapDebug {
            v.push(linux.join("s2rmap-debug.config"));
        }
        v
    }

    /// The Rust staticlib this variant links (`S2RMAP_LIB`): a copy of cargo's output
    /// for the variant's feature set, rewritten only when its content changes, so that
    /// switching between variants relinks only the ones whose archive differs.
    pub fn rust_lib(self) -> PathBuf {
        self.build_dir().join("s2rmap").join(crate::linkcheck::LIB_NAME)
    }

    /// The `O=` build directory.
    pub fn build_dir(self) -> PathBuf {
        util::target_dir().join("linux/build").join(self.name())
    }

    /// The kernel image QEMU boots.
    pub fn image(self) -> PathBuf {
        self.build_dir().join("arch/arm64/boot/Image")
    }
}

/// `nvhe/linux/`.
pub fn linux_dir() -> PathBuf {
    util::repo_root().join("nvhe/linux")
}

/// Makes sure the Debian packages are installed; installs the missing ones.
pub fn ensure_packages() -> Result {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", p]).output();
            !out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        step(format!("packages: all {} present", PACKAGES.len()));
        return Ok(());
    }
    step(format!("packages: installing {}", missing.join(" ")));
    let lists_empty = util::list(Path::new("/var/lib/apt/lists"), "Packages")?.is_empty()
        && util::list(Path::new("/var/lib/apt/lists"), "Packages.lz4")?.is_empty();
    if lists_empty {
        step("packages: apt lists are empty, running apt-get update");
        util::run(Command::new("apt-get").arg("update"))?;
    }
    let install = || {
        util::run(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    if install().is_err() {
        step("packages: install failed, running apt-get update and retrying");
        util::run(Command::new("apt-get").arg("update"))?;
        install()?;
    }
    Ok(())
}

/// The cargo features of the `nvhe` crate that a kernel `.config` asks for:
/// `test-calls` with `CONFIG_S2RMAP_TEST_CALLS=y`, `ghost` with
/// `CONFIG_S2RMAP_GHOST=y`.
pub fn rust_features(config: &str) -> Vec<&'static str> {
    let options = parse_fragment(config);
    let set =
        |name: &str| options.iter().any(|w| w.name == name && w.value.as_deref() == Some("y"));
    [("CONFIG_S2RMAP_TEST_CALLS", "test-calls"), ("CONFIG_S2RMAP_GHOST", "ghost")]
        .into_iter()
        .filter(|(option, _)| set(option))
        .map(|(_, feature)| feature)
        .collect()
}

/// Builds the `nvhe` crate as a staticlib for EL2 with `features` and returns the path of
/// cargo's archive.
///
/// The rustflags (static relocation model, no unwind tables, panic=abort) come from
/// `.cargo/config.toml`'s `[target.aarch64-unknown-none-softfloat]`, so host builds of
/// the workspace are untouched.
pub fn build_rust_lib(features: &[&str]) -> Result<PathBuf> {
    let shown = if features.is_empty() { "no features".into() } else { features.join(",") };
    step(format!("rust: building the nvhe staticlib for {RUST_TARGET} (release, {shown})"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(util::repo_root())
        .args(["rustc", "--quiet", "--package", "nvhe", "--release", "--target"])
        .arg(RUST_TARGET);
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    util::run(cmd.args(["--crate-type", "staticlib"]))?;
    let lib = util::target_dir().join(RUST_TARGET).join("release/libnvhe.a");
    if !lib.exists() {
        bail!("cargo did not produce {}", lib.display());
    }
    Ok(lib)
}

/// Builds the Rust staticlib for `variant` (features from its `.config`) and puts it at
/// [`Variant::rust_lib`]; returns that path.
pub fn variant_rust_lib(variant: Variant) -> Result<PathBuf> {
    let config = util::read(&variant.build_dir().join(".config"))?;
    let built = build_rust_lib(&rust_features(&config))?;
    let data = std::fs::read(&built).map_err(|e| format!("{}: {e}", built.display()))?;
    let lib = variant.rust_lib();
    if std::fs::read(&lib).ok().as_deref() != Some(&data[..]) {
        util::mkdir(lib.parent().unwrap_or(&variant.build_dir()))?;
        util::write(&lib, &data)?;
        step(format!("rust: {} updated", lib.display()));
    }
    Ok(lib)
}

/// Hash of what a source tree is made from: the tarball and the patches.
fn source_stamp(variant: Variant) -> Result<(String, String)> {
    let meta = std::fs::metadata(TARBALL).map_err(|e| format!("{TARBALL}: {e}"))?;
    let mut t = Fnv::default();
    t.add(TARBALL.as_bytes()).add(&meta.len().to_le_bytes());
    let mut p = Fnv::default();
    for f in variant.patches()? {
        p.add_file(&f)?;
    }
    Ok((t.hex(), p.hex()))
}

/// Files a patch touches (`+++ b/path`).
fn patched_files(patch: &str) -> Vec<String> {
    patch
        .lines()
        .filter_map(|l| l.strip_prefix("+++ b/"))
        .map(|p| p.split('\t').next().unwrap_or(p).trim().to_string())
        .collect()
}

fn apply(tree: &Path, patch: &Path, reverse: bool) -> Result {
    let mut cmd = Command::new("patch");
    cmd.current_dir(tree).args(["-p1", "--batch", "--silent", "--no-backup-if-mismatch", "-i"]);
    // `--forward` in both directions: a hunk that looks already applied (or, with -R,
    // not applied) is refused. Without it, `patch -R --batch` on a file edited since
    // applies such a hunk forward instead, and the tree is neither one state nor the other.
    cmd.arg(patch).arg("--forward");
    if reverse {
        cmd.arg("-R");
    }
    let mut dry = Command::new(cmd.get_program());
    dry.current_dir(tree).args(cmd.get_args()).arg("--dry-run");
    util::run(&mut dry).map_err(|e| format!("patch {} does not apply: {e}", patch.display()))?;
    util::run(&mut cmd)
}

/// Makes `target/linux/src/<patchset>` match the tarball and the patches; returns it.
///
/// A tree whose tarball is unchanged is updated in place: the old patches are reversed
/// and the new ones applied, which bumps the modification time of every touched file so
/// that `make` rebuilds exactly what changed.
fn prepare_source(variant: Variant) -> Result<(PathBuf, String, String)> {
    let src_root = util::target_dir().join("linux/src");
    let name = variant.patchset();
    let tree = src_root.join(name);
    let stamp_file = src_root.join(format!("{name}.stamp"));
    let applied_dir = src_root.join(format!("{name}.applied"));
    let (tar_hash, patch_hash) = source_stamp(variant)?;
    let stamp = format!("{tar_hash} {patch_hash}");
    let old = std::fs::read_to_string(&stamp_file).unwrap_or_default();
    let new_patches = variant.patches()?;

    if tree.join("Makefile").exists() && old.trim() == stamp {
        step(format!("source: reusing {} ({} patches)", tree.display(), new_patches.len()));
        return Ok((tree, tar_hash, patch_hash));
    }
    let old_applied = util::list(&applied_dir, ".patch")?;
    // Read now: applying the new patches replaces the copies in `applied_dir`.
    let mut old_files = Vec::new();
    for p in &old_applied {
        old_files.extend(patched_files(&util::read(p)?));
    }
    let same_tarball = old.split_whitespace().next() == Some(tar_hash.as_str());
    let mut in_place = tree.join("Makefile").exists() && same_tarball;
    if in_place {
        step(format!("source: patches changed, updating {} in place", tree.display()));
        let _ = std::fs::remove_file(&stamp_file);
        for p in old_applied.iter().rev() {
            step(format!("source: reversing {}", file_name(p)));
            if let Err(e) = apply(&tree, p, true) {
                step(format!("source: {e}; unpacking afresh"));
                in_place = false;
                break;
            }
        }
    }
    match apply_all(&tree, &applied_dir, &new_patches, &old_files, in_place) {
        Err(e) if in_place => {
            step(format!("source: {e}; unpacking afresh"));
            apply_all(&tree, &applied_dir, &new_patches, &old_files, false)?;
        }
        result => result?,
    }
    util::write(&stamp_file, format!("{stamp}\n"))?;
    Ok((tree, tar_hash, patch_hash))
}

/// Applies `new_patches` to `tree` (unpacked afresh unless `in_place`, where the old
/// ones were just reversed) and records them in `applied_dir`. `old_files` are the files
/// the patches applied before changed.
fn apply_all(
    tree: &Path,
    applied_dir: &Path,
    new_patches: &[PathBuf],
    old_files: &[String],
    in_place: bool,
) -> Result {
    if !in_place {
        let src_root = tree.parent().ok_or("the source tree has no parent directory")?;
        let name = file_name(tree);
        let tmp = src_root.join(format!("{name}.tmp"));
        util::remove_dir(&tmp)?;
        util::mkdir(&tmp)?;
        step(format!("source: unpacking {TARBALL} into {}", tree.display()));
        util::run(
            Command::new("tar").args(["-xf", TARBALL, "--strip-components=1", "-C"]).arg(&tmp),
        )?;
        // Files that an old patch changed now hold the tarball's content with an old
        // modification time: make them newer than the objects built from the old content.
        for f in old_files {
            let path = tmp.join(f);
            if path.exists() {
                util::run(Command::new("touch").arg(&path))?;
            }
        }
        util::remove_dir(tree)?;
        std::fs::rename(&tmp, tree).map_err(|e| format!("cannot rename {}: {e}", tmp.display()))?;
    }
    util::remove_dir(applied_dir)?;
    util::mkdir(applied_dir)?;
    for p in new_patches {
        step(format!("source: applying {}", file_name(p)));
        apply(tree, p, false)?;
        std::fs::copy(p, applied_dir.join(p.file_name().unwrap_or_default()))
            .map_err(|e| format!("cannot copy {}: {e}", p.display()))?;
    }
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap_or_default().to_string_lossy().into_owned()
}

/// `make -C <tree> O=<build> ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- ...`.
pub fn make(tree: &Path, build: &Path) -> Command {
    let mut cmd = Command::new("make");
    cmd.arg("-C").arg(tree).arg(format!("O={}", build.display())).args(MAKE_ARCH);
    cmd
}

/// One line of a configuration fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWant {
    /// `CONFIG_FOO`.
    pub name: String,
    /// `Some("y")` for `CONFIG_FOO=y`; `None` for `# CONFIG_FOO is not set`.
    pub value: Option<String>,
}

/// Parses a Kconfig fragment.
pub fn parse_fragment(text: &str) -> Vec<ConfigWant> {
    let mut v = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("# ") {
            if let Some(name) = rest.strip_suffix(" is not set")
                && name.starts_with("CONFIG_")
            {
                v.push(ConfigWant { name: name.to_string(), value: None });
            }
        } else if let Some((name, value)) = line.split_once('=')
            && name.starts_with("CONFIG_")
        {
            v.push(ConfigWant { name: name.to_string(), value: Some(value.to_string()) });
        }
    }
    v
}

/// Checks a final `.config` against the fragments; returns one message per mismatch.
pub fn verify_config(config: &str, wants: &[ConfigWant]) -> Vec<String> {
    let mut have = std::collections::HashMap::new();
    for w in parse_fragment(config) {
        have.insert(w.name, w.value);
    }
    let mut errors = Vec::new();
    for w in wants {
        let got = have.get(&w.name).cloned().flatten();
        match (&w.value, &got) {
            (Some(want), Some(got)) if want == got => {}
            (None, None) => {}
            (None, Some(got)) if got == "n" => {}
            (Some(want), _) => errors.push(format!(
                "{} should be {want} but is {}",
                w.name,
                got.as_deref().map_or("not set".to_string(), |g| g.to_string())
            )),
            (None, Some(got)) => errors.push(format!("{} should not be set but is {got}", w.name)),
        }
    }
    errors
}

/// Configures the build directory unless it already matches the fragments and the
/// patches (which may add Kconfig options).
fn configure(variant: Variant, tree: &Path, tar_hash: &str, patch_hash: &str) -> Result {
    let build = variant.build_dir();
    let stamp_file = build.join(".s2rmap-stamp");
    let mut h = Fnv::default();
    h.add(variant.name().as_bytes())
        .add(tree.as_os_str().as_encoded_bytes())
        .add(patch_hash.as_bytes());
    for f in variant.fragments() {
        h.add_file(&f)?;
    }
    let stamp = format!("{tar_hash} {}", h.hex());
    let old = std::fs::read_to_string(&stamp_file).unwrap_or_default();
    if !old.is_empty() && old.split_whitespace().next() != Some(tar_hash) {
        step(format!("config: kernel tarball changed, wiping {}", build.display()));
        util::remove_dir(&build)?;
    }
    if build.join(".config").exists() && old.trim() == stamp {
        step(format!("config: {} is up to date", build.join(".config").display()));
        return Ok(());
    }
    util::mkdir(&build)?;
    let _ = std::fs::remove_file(&stamp_file);
    step(format!("config: make allnoconfig ({})", variant.name()));
    util::run_summarised(make(tree, &build).arg("allnoconfig"), "allnoconfig", 1000)?;
    let frags = variant.fragments();
    step(format!(
        "config: merging {}",
        frags.iter().map(|f| file_name(f)).collect::<Vec<_>>().join(", ")
    ));
    // merge_config.sh reports every override at length; keep what matters.
    let keep =
        |l: &str| l.starts_with("Merging") || l.contains("WARNING") || l.contains("not in final");
    util::run_filtered(
        Command::new(tree.join("scripts/kconfig/merge_config.sh"))
            .current_dir(tree)
            .env("ARCH", "arm64")
            .env("CROSS_COMPILE", "aarch64-linux-gnu-")
            .arg("-m")
            .arg("-O")
            .arg(&build)
            .arg(build.join(".config"))
            .args(&frags),
        "merge_config",
        1000,
        keep,
    )?;
    step("config: make olddefconfig");
    util::run_summarised(make(tree, &build).arg("olddefconfig"), "olddefconfig", 1000)?;
    let config = util::read(&build.join(".config"))?;
    let mut errors = Vec::new();
    for f in &frags {
        for e in verify_config(&config, &parse_fragment(&util::read(f)?)) {
            errors.push(format!("{e} (asked by {})", f.display()));
        }
    }
    if !errors.is_empty() {
        bail!("the final .config does not match the fragments:\n  {}", errors.join("\n  "));
    }
    step("config: every fragment option is set as asked");
    util::write(&stamp_file, format!("{stamp}\n"))
}

/// The whole `cargo xtask kernel` for one variant. Returns the image path.
pub fn kernel(variant: Variant) -> Result<PathBuf> {
    step(format!("kernel: variant {}", variant.name()));
    ensure_packages()?;
    let _lock = BuildLock::take(util::target_dir().join("linux/build.lock"))?;
    let (tree, tar_hash, patch_hash) = prepare_source(variant)?;
    configure(variant, &tree, &tar_hash, &patch_hash)?;
    let build = variant.build_dir();
    let mut cmd = make(&tree, &build);
    cmd.args(["-j2", "Image", "modules"]);
    let lib = if variant.patched() {
        let lib = variant_rust_lib(variant)?;
        cmd.arg(format!("S2RMAP_LIB={}", lib.display()));
        Some(lib)
    } else {
        None
    };
    step(format!("build: make -j2 Image modules ({}); every 50th step is shown", variant.name()));
    let t = std::time::Instant::now();
    util::run_summarised(&mut cmd, "make", 50)?;
    step(format!(
        "build: done in {:.0}s: {}",
        t.elapsed().as_secs_f64(),
        variant.image().display()
    ));
    if let Some(lib) = lib {
        crate::linkcheck::check_build(&build, &lib)?;
    }
    Ok(variant.image())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reversing a patch that is not applied is refused and changes nothing (plain
    /// `patch -R --batch` would apply it forward instead); applying it twice is refused.
    #[test]
    fn a_patch_is_neither_reversed_nor_applied_twice_where_it_does_not_fit() {
        let dir = std::env::temp_dir().join(format!("xtask-apply-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f"), "one\ntwo\nthree\n").unwrap();
        let patch = dir.join("p.patch");
        let diff = "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n";
        std::fs::write(&patch, diff).unwrap();
        assert!(apply(&dir, &patch, true).is_err());
        assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "one\ntwo\nthree\n");
        apply(&dir, &patch, false).unwrap();
        assert!(apply(&dir, &patch, false).is_err());
        apply(&dir, &patch, true).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "one\ntwo\nthree\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fragment_parsing() {
        let f = "CONFIG_A=y\n# CONFIG_B is not set\n# comment\nCONFIG_C=\"x y\"\n\nCONFIG_D=0x10\n";
        let w = parse_fragment(f);
        assert_eq!(w.len(), 4);
        assert_eq!(w[1], ConfigWant { name: "CONFIG_B".into(), value: None });
        assert_eq!(w[2].value.as_deref(), Some("\"x y\""));
    }

    #[test]
    fn config_verification_names_the_option() {
        let wants = parse_fragment("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_D=m\n");
        let config = "CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\n";
        let errors = verify_config(config, &wants);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("CONFIG_B should not be set but is y"));
        assert!(errors[1].contains("CONFIG_C should be y but is not set"));
        assert!(errors[2].contains("CONFIG_D should be m but is not set"));
        assert!(verify_config("CONFIG_A=y\n", &parse_fragment("CONFIG_A=y\n")).is_empty());
    }

    #[test]
    fn variants() {
        assert_eq!(Variant::from_flags(false, None).unwrap(), Variant::S2rmap);
        assert_eq!(Variant::from_flags(true, None).unwrap(), Variant::S2rmapDebug);
        assert_eq!(Variant::from_flags(false, Some("stock")).unwrap(), Variant::Stock);
        assert!(Variant::from_flags(true, Some("stock")).is_err());
        assert!(Variant::parse("nope").is_err());
        assert!(!Variant::Stock.patched());
        assert!(!Variant::StockBench.patched());
        assert_eq!(Variant::parse("stock-bench").unwrap(), Variant::StockBench);
        assert_eq!(Variant::StockBench.fragments().len(), 2);
        assert_ne!(Variant::StockBench.patchset(), Variant::Stock.patchset());
        assert_eq!(Variant::S2rmapDebug.fragments().len(), 4);
        assert_eq!(Variant::S2rmap.fragments().len(), 3);
        assert_eq!(Variant::S2rmapProd.fragments().len(), 2);
        assert_eq!(Variant::parse("s2rmap-prod").unwrap(), Variant::S2rmapProd);
        assert!(Variant::from_flags(true, Some("s2rmap-prod")).is_err());
        assert!(Variant::S2rmapProd.patched() && !Variant::S2rmapProd.selftests());
    }

    #[test]
    fn features_follow_the_config() {
        assert_eq!(rust_features("CONFIG_KVM=y\nCONFIG_S2RMAP_TEST_CALLS=y\n"), ["test-calls"]);
        assert!(rust_features("# CONFIG_S2RMAP_TEST_CALLS is not set\n").is_empty());
        assert_eq!(
            rust_features("CONFIG_S2RMAP_GHOST=y\nCONFIG_S2RMAP_TEST_CALLS=y\n"),
            ["test-calls", "ghost"]
        );
        assert!(rust_features("CONFIG_KVM=y\n").is_empty());
    }

    #[test]
    fn patched_files_from_a_patch() {
        let p = "--- a/x/y.c\n+++ b/x/y.c\n@@\n--- /dev/null\n+++ b/new.h\t2020\n";
        assert_eq!(patched_files(p), vec!["x/y.c".to_string(), "new.h".to_string()]);
    }
}
