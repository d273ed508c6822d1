//! The C header for the host side, generated from the Rust definitions so
//! that the two cannot drift: `include/s2rmap_abi.h` is checked against
//! [`write_header`] by a test, and compiled with its `_Static_assert`s.

use core::fmt::{self, Write};
use core::mem::{offset_of, size_of};

use crate::abi::*;

/// One field of a shared structure: C type, name, byte offset.
type Field = (&'static str, &'static str, usize);

/// Every structure shared with C: name, size, fields.
pub const STRUCTS: [(&str, usize, &[Field]); 3] = [
    (
        "s2rmap_page_report",
        size_of::<PageReport>(),
        &[
            ("__u32", "owner", offset_of!(PageReport, owner)),
            ("__u8", "host_state", offset_of!(PageReport, host_state)),
            ("__u8", "hyp_state", offset_of!(PageReport, hyp_state)),
            ("__u8", "mapped", offset_of!(PageReport, mapped)),
            ("__u8", "reserved", offset_of!(PageReport, reserved)),
            ("__u32", "pins", offset_of!(PageReport, pins)),
            ("__u32", "guest_shares", offset_of!(PageReport, guest_shares)),
        ],
    ),
    (
        "s2rmap_guest_page_report",
        size_of::<GuestPageReport>(),
        &[
            ("__u64", "pa", offset_of!(GuestPageReport, pa)),
            ("__u8", "state", offset_of!(GuestPageReport, state)),
            ("__u8", "ripas_ram", offset_of!(GuestPageReport, ripas_ram)),
            ("__u8", "running", offset_of!(GuestPageReport, running)),
            ("__u8", "reserved[5]", offset_of!(GuestPageReport, reserved)),
        ],
    ),
    (
        "s2rmap_counters",
        size_of::<Counters>(),
        &[
            ("__u64", "table_pages", offset_of!(Counters, table_pages)),
            ("__u64", "leaves[4]", offset_of!(Counters, leaves)),
            ("__u64", "host_faults", offset_of!(Counters, host_faults)),
        ],
    ),
];

/// Writes `include/s2rmap_abi.h`.
pub fn write_header(w: &mut impl Write) -> fmt::Result {
    writeln!(w, "/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */")?;
    writeln!(w, "/*")?;
    writeln!(w, " * s2rmap host hypercall ABI.")?;
    writeln!(w, " *")?;
    writeln!(w, " * Generated from hypercalls/src/abi.rs by")?;
    writeln!(w, " * `cargo run -p hypercalls --example gen-header`; do not edit.")?;
    writeln!(w, " */")?;
    writeln!(w, "#ifndef __S2RMAP_ABI_H__")?;
    writeln!(w, "#define __S2RMAP_ABI_H__")?;
    writeln!(w)?;
    writeln!(w, "#ifdef __KERNEL__")?;
    writeln!(w, "#include <linux/types.h>")?;
    writeln!(w, "#include <linux/stddef.h>")?;
    writeln!(w, "#else")?;
    writeln!(w, "#include <linux/types.h>")?;
    writeln!(w, "#include <stddef.h>")?;
    writeln!(w, "#endif")?;
    writeln!(w)?;
    writeln!(w, "#define S2RMAP_HOST_SMCCC_BASE\t{HOST_SMCCC_BASE:#x}UL")?;
    writeln!(w, "#define S2RMAP_FN_ID(fn)\t(S2RMAP_HOST_SMCCC_BASE | (fn))")?;
    writeln!(w, "#define S2RMAP_MAX_PAGES_PER_CALL\t{MAX_PAGES_PER_CALL}UL")?;
    writeln!(w, "#define S2RMAP_OWNER_HOST\t0U")?;
    writeln!(w, "#define S2RMAP_OWNER_HYP\t1U")?;
    writeln!(w, "#define S2RMAP_OWNER_LENDER\t{OWNER_LENDER:#x}U")?;
    writeln!(w)?;
    for f in Func::ALL {
        writeln!(w, "#define {}\t{}", f.c_name(), f as u32)?;
    }
    writeln!(w)?;
    for (name, value) in [
        ("OWNED", AbiPageState::Owned),
        ("SHARED_OWNED", AbiPageState::SharedOwned),
        ("SHARED_BORROWED", AbiPageState::SharedBorrowed),
        ("NOPAGE", AbiPageState::NoPage),
    ] {
        writeln!(w, "#define S2RMAP_STATE_{name}\t{}", value as u8)?;
    }
    for (name, size, fields) in STRUCTS {
        writeln!(w)?;
        writeln!(w, "struct {name} {{")?;
        for (ty, field, _) in fields {
            writeln!(w, "\t{ty} {field};")?;
        }
        writeln!(w, "}};")?;
        writeln!(w)?;
        writeln!(w, "_Static_assert(sizeof(struct {name}) == {size}, \"{name} size\");")?;
        for (_, field, offset) in fields {
            let field = field.split('[').next().unwrap_or(field);
            writeln!(
                w,
                "_Static_assert(offsetof(struct {name}, {field}) == {offset}, \"{name}.{field}\");"
            )?;
        }
    }
    writeln!(w)?;
    writeln!(w, "#endif /* __S2RMAP_ABI_H__ */")
}
