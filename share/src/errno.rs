//! Linux error numbers, as the hypercall ABI returns them.

/// Why a transition was refused. The values are Linux's errnos; the ABI
/// returns them negated, as Linux's `handle_host_hcall` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[repr(i32)]
pub enum Errno {
    /// A party's state forbids the call.
    #[error("EPERM: a page is not in a state that allows this call")]
    EPERM = 1,
    /// No such guest, or no such mapping.
    #[error("ENOENT: no such guest or mapping")]
    ENOENT = 2,
    /// Not enough table pages; nothing changed.
    #[error("ENOMEM: out of table pages")]
    ENOMEM = 12,
    /// The page is pinned, or a counter is saturated.
    #[error("EBUSY: page pinned or counter saturated")]
    EBUSY = 16,
    /// Malformed arguments.
    #[error("EINVAL: invalid argument")]
    EINVAL = 22,
}

impl Errno {
    /// The errno as a positive number.
    #[must_use]
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The errno from its positive number.
    #[must_use]
    pub const fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            1 => Self::EPERM,
            2 => Self::ENOENT,
            12 => Self::ENOMEM,
            16 => Self::EBUSY,
            22 => Self::EINVAL,
            _ => return None,
        })
    }

    /// The name, as scenario files spell it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::EPERM => "EPERM",
            Self::ENOENT => "ENOENT",
            Self::ENOMEM => "ENOMEM",
            Self::EBUSY => "EBUSY",
            Self::EINVAL => "EINVAL",
        }
    }
}

impl From<pgtable::Error> for Errno {
    fn from(e: pgtable::Error) -> Self {
        match e {
            pgtable::Error::NoMemory => Self::ENOMEM,
            _ => Self::EINVAL,
        }
    }
}

impl From<ownership::Error> for Errno {
    fn from(e: ownership::Error) -> Self {
        use ownership::Error as E;
        match e {
            E::NoMemory => Self::ENOMEM,
            E::NotRam(..) | E::Corrupt { .. } => Self::EPERM,
            E::BadRange(..) | E::NoPageState | E::HostOwnerAnnotation => Self::EINVAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Errno;

    const ALL: [(Errno, i32, &str); 5] = [
        (Errno::EPERM, 1, "EPERM"),
        (Errno::ENOENT, 2, "ENOENT"),
        (Errno::ENOMEM, 12, "ENOMEM"),
        (Errno::EBUSY, 16, "EBUSY"),
        (Errno::EINVAL, 22, "EINVAL"),
    ];

    #[test]
    fn codes_and_names_are_linuxs() {
        for (e, code, name) in ALL {
            assert_eq!(e.code(), code);
            assert_eq!(Errno::from_code(code), Some(e));
            assert_eq!(e.name(), name);
        }
        assert_eq!(Errno::from_code(0), None);
        assert_eq!(Errno::from_code(-12), None);
    }

    #[test]
    fn running_out_of_table_pages_is_enomem() {
        assert_eq!(Errno::from(pgtable::Error::NoMemory), Errno::ENOMEM);
        assert_eq!(Errno::from(ownership::Error::NoMemory), Errno::ENOMEM);
        assert_eq!(Errno::from(pgtable::Error::Misaligned(0x1001)), Errno::EINVAL);
    }
}
