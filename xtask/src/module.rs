//! `cargo xtask module`: out-of-tree kernel modules under `nvhe/linux/` (every directory
//! with a `Kbuild` file, e.g. `nvhe/linux/selftest/`), built against a variant's build
//! directory.
//!
//! Kbuild writes its objects next to the sources, so each module is built from a copy
//! under `target/linux/modules/<variant>/`, laid out like the repository (the other
//! top-level directories are symlinks), so relative include paths in `Kbuild` files, such
//! as `$(src)/../../../hypercalls/include`, still resolve. Files are copied only when
//! they changed, so rebuilds stay incremental. The `.ko` files end up in
//! `target/linux/modules/<variant>/ko/`, where `cargo xtask initramfs` picks them up.

use crate::kernel::{self, Variant, linux_dir};
use crate::util::{self, BuildLock, Result, bail, step};
use std::path::{Path, PathBuf};

/// `target/linux/modules/<variant>/`.
pub fn root(variant: Variant) -> PathBuf {
    util::target_dir().join("linux/modules").join(variant.name())
}

/// Where the built `.ko` files of a variant go.
pub fn ko_dir(variant: Variant) -> PathBuf {
    root(variant).join("ko")
}

/// The module source directories: `nvhe/linux/*/Kbuild`.
pub fn sources() -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(linux_dir())
        .map_err(|e| format!("{}: {e}", linux_dir().display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Kbuild").is_file())
        .collect();
    v.sort();
    Ok(v)
}

/// Copies `src`'s regular files into `dst` where they differ; returns how many changed.
fn sync_dir(src: &Path, dst: &Path) -> Result<usize> {
    util::mkdir(dst)?;
    let mut changed = 0;
    for entry in std::fs::read_dir(src).map_err(|e| format!("{}: {e}", src.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path.file_name().unwrap_or_default();
        if path.is_dir() {
            changed += sync_dir(&path, &dst.join(name))?;
        } else if path.is_file() {
            let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let target = dst.join(name);
            if std::fs::read(&target).ok().as_deref() != Some(&data[..]) {
                util::write(&target, &data)?;
                changed += 1;
            }
        }
    }
    Ok(changed)
}

/// Symlinks every top-level entry of the repository except `nvhe` and `target` into
/// `mirror`, so relative paths from `mirror/nvhe/linux/<module>` reach the real crates.
fn link_repo(mirror: &Path) -> Result {
    let repo = util::repo_root();
    for entry in std::fs::read_dir(&repo).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path.file_name().unwrap_or_default().to_owned();
        if name == "nvhe" || name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        let link = mirror.join(&name);
        if std::fs::read_link(&link).ok().as_deref() == Some(path.as_path()) {
            continue;
        }
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&path, &link)
            .map_err(|e| format!("cannot link {}: {e}", link.display()))?;
    }
    Ok(())
}

/// Builds every module for `variant`; returns the `.ko` files. The stock variant has no
/// s2rmap hypercalls, so it gets no modules.
pub fn build(variant: Variant) -> Result<Vec<PathBuf>> {
    let ko = ko_dir(variant);
    util::remove_dir(&ko)?;
    if !variant.selftests() {
        step(format!(
            "module: the {} variant has no test hypercalls and gets no s2rmap modules",
            variant.name()
        ));
        return Ok(Vec::new());
    }
    let build = variant.build_dir();
    if !build.join("Module.symvers").exists() {
        bail!(
            "{} has no Module.symvers: run `cargo xtask kernel --variant {}` first",
            build.display(),
            variant.name()
        );
    }
    let tree = util::target_dir().join("linux/src/s2rmap");
    let _lock = BuildLock::take(util::target_dir().join("linux/build.lock"))?;
    let mirror = root(variant).join("tree");
    util::mkdir(&mirror)?;
    link_repo(&mirror)?;
    let mut out = Vec::new();
    for src in sources()? {
        let name = src.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let copy = mirror.join("nvhe/linux").join(&name);
        let changed = sync_dir(&src, &copy)?;
        step(format!("module: {name} ({changed} file(s) changed) against {}", build.display()));
        let mut cmd = kernel::make(&tree, &build);
        cmd.arg(format!("M={}", copy.display())).args(["-j2", "modules"]);
        util::run_summarised(&mut cmd, &format!("module {name}"), 50)?;
        for k in util::list(&copy, ".ko")? {
            let dst = ko.join(k.file_name().unwrap_or_default());
            util::mkdir(&ko)?;
            std::fs::copy(&k, &dst).map_err(|e| format!("cannot copy {}: {e}", k.display()))?;
            step(format!("module: {}", dst.display()));
            out.push(dst);
        }
    }
    Ok(out)
}
