//! `cargo xtask initramfs`: a small cpio (newc) archive with a static `/init`.
//!
//! The archive is written here rather than by `cpio`, so it can hold `/dev/console`
//! (a device node, which would need root and `mknod` on disk): the kernel opens it as
//! init's stdin/stdout/stderr before devtmpfs is mounted.
//!
//! One archive per kernel variant, `target/initramfs/initramfs-<variant>.cpio`: the
//! variant's modules (`cargo xtask module`, `target/linux/modules/<variant>/ko/`) and any
//! `*.ko` dropped into `target/initramfs/modules/` go to `/lib/modules/`, where `/init`
//! loads them (`finit_module`) and reports one KTAP result each.

use crate::kernel::{Variant, linux_dir};
use crate::util::{self, Result, bail, step};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/initramfs/`.
pub fn dir() -> PathBuf {
    util::target_dir().join("initramfs")
}

/// The archive QEMU loads for a variant.
pub fn archive(variant: Variant) -> PathBuf {
    dir().join(format!("initramfs-{}.cpio", variant.name()))
}

/// Where extra `.ko` files can be dropped by hand, for every variant.
pub fn modules_dir() -> PathBuf {
    dir().join("modules")
}

/// Builds `/init` and the variant's archive; returns the archive's path.
pub fn build(variant: Variant) -> Result<PathBuf> {
    let src = linux_dir().join("initramfs/init.c");
    let init = dir().join("init");
    util::mkdir(&dir())?;
    step(format!("initramfs: compiling {} (static, -Os)", src.display()));
    util::run(
        Command::new("aarch64-linux-gnu-gcc")
            .args(["-static", "-Os", "-Wall", "-Wextra", "-Werror", "-s", "-o"])
            .arg(&init)
            .arg(&src),
    )?;
    let mut cpio = Cpio::default();
    for d in ["dev", "proc", "sys", "tmp", "lib", "lib/modules"] {
        cpio.dir(d);
    }
    cpio.char_dev("dev/console", 0o600, 5, 1);
    cpio.file("init", 0o755, &read_bytes(&init)?);
    let mut modules = util::list(&crate::module::ko_dir(variant), ".ko")?;
    modules.extend(util::list(&modules_dir(), ".ko")?);
    for m in &modules {
        let name = m.file_name().unwrap_or_default().to_string_lossy();
        cpio.file(&format!("lib/modules/{name}"), 0o644, &read_bytes(m)?);
    }
    let out = archive(variant);
    util::write(&out, cpio.finish())?;
    step(format!(
        "initramfs: {} ({} bytes, {} module(s))",
        out.display(),
        std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0),
        modules.len()
    ));
    Ok(out)
}

fn read_bytes(p: &Path) -> Result<Vec<u8>> {
    match std::fs::read(p) {
        Ok(b) => Ok(b),
        Err(e) => bail!("cannot read {}: {e}", p.display()),
    }
}

/// A cpio "newc" (SVR4, no CRC) writer, the format the kernel unpacks.
#[derive(Debug, Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let namesize = name.len() + 1;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: fixed, so the archive is reproducible
            u32::try_from(data.len()).expect("initramfs file larger than 4 GiB"),
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            u32::try_from(namesize).expect("name fits"),
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// Adds a directory.
    pub fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, 2, (0, 0), &[]);
    }

    /// Adds a regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, S_IFREG | perm, 1, (0, 0), data);
    }

    /// Adds a character device node.
    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | perm, 1, (major, minor), &[]);
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        // The kernel reads the archive in 512-byte blocks' worth; pad like cpio(1) does.
        while !self.out.len().is_multiple_of(512) {
            self.out.push(0);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout() {
        let mut c = Cpio::default();
        c.file("init", 0o755, b"abc");
        c.char_dev("dev/console", 0o600, 5, 1);
        let out = c.finish();
        assert_eq!(&out[..6], b"070701");
        // ino 1, mode 0100755, filesize 3, namesize 5 ("init\0").
        let hdr = std::str::from_utf8(&out[6..110]).unwrap();
        assert_eq!(&hdr[0..8], "00000001");
        assert_eq!(&hdr[8..16], format!("{:08x}", 0o100_755));
        assert_eq!(&hdr[48..56], "00000003");
        assert_eq!(&hdr[88..96], "00000005");
        // Name at 110, padded to 4: 110 + 5 = 115 -> 116; data "abc" -> 119 -> 120.
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(&out[116..119], b"abc");
        assert_eq!(&out[120..126], b"070701");
        let dev = std::str::from_utf8(&out[126..230]).unwrap();
        assert_eq!(&dev[72..80], "00000005"); // rdevmajor
        assert_eq!(&dev[80..88], "00000001"); // rdevminor
        assert_eq!(out.len() % 512, 0);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("TRAILER!!!"));
    }
}
