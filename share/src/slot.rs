//! An `Option` whose empty value is all zero bytes.
//!
//! `Option<T>` stores `None` in a niche of `T` when it has one, which can
//! be a non-zero bit pattern; a `static` holding it then needs `.data`,
//! which EL2 does not map writable. `Slot` fixes the tag at 0 for
//! `Empty`, so an empty slot, and a tracker of them, is all zeros
//! (`.bss`).

/// Empty or full; see the module docs.
#[derive(Debug)]
#[repr(u8)]
pub(crate) enum Slot<T> {
    Empty = 0,
    Full(T),
}

impl<T> Slot<T> {
    pub(crate) const fn is_empty(&self) -> bool {
        matches!(self, Slot::Empty)
    }

    pub(crate) fn as_ref(&self) -> Option<&T> {
        match self {
            Slot::Full(t) => Some(t),
            Slot::Empty => None,
        }
    }

    pub(crate) fn as_mut(&mut self) -> Option<&mut T> {
        match self {
            Slot::Full(t) => Some(t),
            Slot::Empty => None,
        }
    }

    pub(crate) fn take(&mut self) -> Option<T> {
        match core::mem::replace(self, Slot::Empty) {
            Slot::Full(t) => Some(t),
            Slot::Empty => None,
        }
    }
}
