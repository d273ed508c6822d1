//! Where table pages come from, and the one type through which their
//! contents are touched.
//!
//! Table pages are named by physical address, because that is what a
//! table descriptor holds. The allocator translates a physical address to
//! a pointer it can be reached at (an identity map on the host, the hyp's
//! linear map at EL2).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, PAGE_SIZE, PhysAddr, descriptor::Descriptor};

/// Descriptors in one 4 KiB table page.
pub const ENTRIES_PER_TABLE: usize = 512;

/// The storage of one table page. Descriptors are atomics because the
/// hardware walker (and other CPUs' walks) read them concurrently with our
/// writes: every access is a single-copy-atomic 64-bit load or store.
pub type RawTable = [AtomicU64; ENTRIES_PER_TABLE];

/// A source of zeroed 4 KiB table pages that reserves before it hands out.
///
/// A change to a table calls [`reserve`](Self::reserve) once with the
/// exact number of pages it may need, before it writes anything. After a
/// successful reservation the same number of [`take`](Self::take) calls
/// must succeed: that is what lets the commit step be infallible.
///
/// # Safety
///
/// Implementors promise that [`table`](Self::table) returns, for every
/// page they handed out (and for root pages the caller obtained from the
/// same memory), a pointer that is valid for reads and writes of
/// [`RawTable`], 4 KiB-aligned, and not used by anything but the table
/// that owns the page until that page is [`free`](Self::free)d.
pub unsafe trait TableAllocator {
    /// Sets aside `pages` pages for the calls to [`take`](Self::take) that
    /// follow. Fails with [`Error::NoMemory`] and sets nothing aside when
    /// they are not all available.
    fn reserve(&mut self, pages: usize) -> Result<(), Error>;

    /// Hands out one zeroed page from the reservation.
    ///
    /// # Panics
    ///
    /// If called more times than reserved: that is a bug in the caller's
    /// page count, never an out-of-memory condition.
    /// [`PageTable::commit_counted`](crate::PageTable::commit_counted)
    /// relies on it.
    fn take(&mut self) -> PhysAddr;

    /// Like [`take`](Self::take), for a page the caller overwrites whole
    /// before anything reads it: the pool may skip zeroing it.
    fn take_for_overwrite(&mut self) -> PhysAddr {
        self.take()
    }

    /// Returns `pages` reserved pages that were not taken.
    fn unreserve(&mut self, pages: usize);

    /// Returns a page. Its contents need not be zero.
    fn free(&mut self, page: PhysAddr);

    /// Where the page at `page` can be reached.
    fn table(&self, page: PhysAddr) -> NonNull<RawTable>;
}

/// A view of one table page: the only place a table's memory is read or
/// written.
#[derive(Clone, Copy)]
pub(crate) struct TablePage {
    pa: PhysAddr,
    entries: NonNull<RawTable>,
}

impl TablePage {
    /// The page at `pa`, reached through `alloc`.
    ///
    /// Callers only name pages that belong to a live table of theirs (the
    /// root, or a page reached through one of its table descriptors, or a
    /// page just taken from the allocator), and never touch a view after
    /// freeing its page. That is an internal invariant of
    /// [`crate::PageTable`].
    pub(crate) fn new<A: TableAllocator + ?Sized>(alloc: &A, pa: PhysAddr) -> Self {
        debug_assert_eq!(pa.0 % PAGE_SIZE, 0);
        Self { pa, entries: alloc.table(pa) }
    }

    fn entries(&self) -> &RawTable {
        // SAFETY: `TableAllocator` is an unsafe trait whose implementors
        // promise that `table()` returns a valid, aligned pointer to the
        // page for as long as it is allocated, and `new()`'s callers only
        // use views of pages that are allocated. We only ever create shared
        // references: every mutation goes through the atomics, so
        // concurrent readers (the hardware walker, lock-free lookups on
        // other CPUs) are sound.
        unsafe { self.entries.as_ref() }
    }

    pub(crate) fn pa(&self) -> PhysAddr {
        self.pa
    }

    /// The physical address of descriptor `index`, for diagnostics and the
    /// break-before-make checker.
    pub(crate) fn entry_pa(&self, index: usize) -> PhysAddr {
        PhysAddr(self.pa.0 + (index as u64) * 8)
    }

    // Inlined: a walk reads a descriptor per level and per entry visited,
    // and the call cost as much as the read (EL2 profile, `el2prof`).
    #[inline]
    pub(crate) fn get(&self, index: usize) -> Descriptor {
        Descriptor::from_bits(self.entries()[index].load(Ordering::Relaxed))
    }

    /// Writes one descriptor. Ordering against the walker is the caller's
    /// job (a DSB through [`crate::Tlb`]); Release orders the write after
    /// the initialisation of any table it points to.
    #[inline]
    pub(crate) fn set(&self, index: usize, desc: Descriptor) {
        self.entries()[index].store(desc.bits(), Ordering::Release);
    }

    /// Writes descriptor `i` as `first + i * step` for all 512 entries (a
    /// uniform or contiguous run, as a split produces).
    pub(crate) fn fill(&self, first: u64, step: u64) {
        let entries = self.entries();
        let mut value = first;
        for entry in entries {
            entry.store(value, Ordering::Relaxed);
            value = value.wrapping_add(step);
        }
    }

    /// The first index `i` whose descriptor is not `first + i * step`, or
    /// `None` when all 512 are: the table says what one leaf could.
    /// Compares eight entries per branch: this scan runs after every
    /// change that could fold a table.
    pub(crate) fn first_mismatch(&self, first: u64, step: u64) -> Option<usize> {
        let chunk_step = step.wrapping_mul(8);
        let mut chunk_first = first;
        for (c, chunk) in self.entries().chunks_exact(8).enumerate() {
            let mut differ = 0;
            let mut value = chunk_first;
            for entry in chunk {
                differ |= entry.load(Ordering::Relaxed) ^ value;
                value = value.wrapping_add(step);
            }
            if differ != 0 {
                let mut value = chunk_first;
                for (i, entry) in chunk.iter().enumerate() {
                    if entry.load(Ordering::Relaxed) != value {
                        return Some(c * 8 + i);
                    }
                    value = value.wrapping_add(step);
                }
            }
            chunk_first = chunk_first.wrapping_add(chunk_step);
        }
        None
    }
}
