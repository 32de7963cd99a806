//! Zeroed byte storage at the memory plan's alignment, whose allocation failure is an error.
//!
//! The arena and every parameter live in a [`Storage`]: its start is aligned to
//! [`MemoryPlan::ALIGN`] by construction (the host matmul and the vector loops rely on it), and
//! asking for more memory than the system gives returns [`JitError::OutOfMemory`] rather than
//! aborting the process.
//!
//! [`Storage::guarded`] is the test-time variant (`Options::guard_pages`): the bytes are mapped
//! so that they end exactly at an inaccessible guard page and start right after another, so
//! generated code that reads or writes even one byte outside the buffer faults at once instead
//! of corrupting memory silently. Its start is then only as aligned as its length allows.

use crate::JitError;
use adjoint_opt::MemoryPlan;
use std::alloc::Layout;
use std::ptr::NonNull;

/// How a [`Storage`] was allocated (what `Drop` gives back).
enum Allocation {
    /// Nothing (length 0).
    Empty,
    /// `std::alloc` with this layout.
    Heap(Layout),
    /// An anonymous mapping: its start and length (guard pages included, for a guarded one).
    #[cfg(unix)]
    Mapped { base: *mut u8, len: usize },
}

/// An owned, zero-initialized byte buffer: aligned to [`MemoryPlan::ALIGN`], or placed between
/// guard pages ([`Storage::guarded`]).
pub struct Storage {
    ptr: NonNull<u8>,
    len: usize,
    allocation: Allocation,
}

// SAFETY: `Storage` owns its allocation exclusively (like a `Vec<u8>`); shared references only
// read it and mutation needs `&mut`.
unsafe impl Send for Storage {}
// SAFETY: as above: no interior mutability.
unsafe impl Sync for Storage {}

impl Storage {
    /// `len` zero bytes, or [`JitError::OutOfMemory`] naming `what` if the allocation fails.
    pub fn zeroed(len: usize, what: &str) -> Result<Storage, JitError> {
        let oom = || JitError::OutOfMemory {
            what: what.to_string(),
            bytes: len,
        };
        if len == 0 {
            return Ok(Storage::empty());
        }
        #[cfg(unix)]
        if len >= MAPPED_BYTES {
            let total = len.checked_next_multiple_of(page_size()).ok_or_else(oom)?;
            let base = map_anonymous(total).ok_or_else(oom)?;
            return Ok(Storage {
                ptr: NonNull::new(base).expect("a mapping"),
                len,
                allocation: Allocation::Mapped { base, len: total },
            });
        }
        let layout = Layout::from_size_align(len, MemoryPlan::ALIGN).map_err(|_| oom())?;
        // SAFETY: `layout` has a nonzero size (checked above).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(oom)?;
        Ok(Storage {
            ptr,
            len,
            allocation: Allocation::Heap(layout),
        })
    }

    /// A length-0 storage: a dangling pointer at the alignment, never dereferenced.
    fn empty() -> Storage {
        Storage {
            ptr: NonNull::new(MemoryPlan::ALIGN as *mut u8).expect("nonzero"),
            len: 0,
            allocation: Allocation::Empty,
        }
    }

    /// `len` zero bytes that end exactly at an inaccessible page and start right after
    /// another, so that any access outside them faults. Unix only; elsewhere the same as
    /// [`Storage::zeroed`].
    pub fn guarded(len: usize, what: &str) -> Result<Storage, JitError> {
        #[cfg(unix)]
        {
            let oom = || JitError::OutOfMemory {
                what: what.to_string(),
                bytes: len,
            };
            if len == 0 {
                return Ok(Storage::empty());
            }
            let page = page_size();
            let data = len.checked_next_multiple_of(page).ok_or_else(oom)?;
            let total = data.checked_add(2 * page).ok_or_else(oom)?;
            let base = map_anonymous(total).ok_or_else(oom)?;
            // SAFETY: both ranges are whole pages inside the mapping just made; `page + data`
            // is at most `total - page`.
            let protected = unsafe {
                libc::mprotect(base as *mut libc::c_void, page, libc::PROT_NONE) == 0
                    && libc::mprotect(
                        base.add(page + data) as *mut libc::c_void,
                        page,
                        libc::PROT_NONE,
                    ) == 0
            };
            if !protected {
                // SAFETY: the mapping made above, unmapped once.
                unsafe { libc::munmap(base as *mut libc::c_void, total) };
                return Err(oom());
            }
            // SAFETY: `page + data - len` lies inside the mapping (len <= data).
            let ptr = unsafe { base.add(page + data - len) };
            Ok(Storage {
                ptr: NonNull::new(ptr).expect("inside a mapping"),
                len,
                allocation: Allocation::Mapped { base, len: total },
            })
        }
        #[cfg(not(unix))]
        {
            Storage::zeroed(len, what)
        }
    }

    /// [`Storage::zeroed`] or, with `guard`, [`Storage::guarded`].
    pub fn new(len: usize, guard: bool, what: &str) -> Result<Storage, JitError> {
        if guard {
            Storage::guarded(len, what)
        } else {
            Storage::zeroed(len, what)
        }
    }

    /// A copy of `bytes` ([`Storage::new`]), or [`JitError::OutOfMemory`] naming `what`.
    pub fn from_bytes(bytes: &[u8], guard: bool, what: &str) -> Result<Storage, JitError> {
        let mut s = Storage::new(bytes.len(), guard, what)?;
        s.as_mut_slice().copy_from_slice(bytes);
        Ok(s)
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no byte is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` initialized (zeroed, then written) bytes owned by
        // `self`, or dangling and aligned with `len == 0`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The start of the bytes, for native code.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

/// From this many bytes, [`Storage::zeroed`] maps pages from the kernel rather than asking the
/// allocator. The allocator zeroes a block at [`MemoryPlan::ALIGN`] (stricter than `calloc`
/// guarantees) with a `memset`, touching every page: W2's 6.3 MB arena took 3–5 ms of its
/// compile that way (Sapphire Rapids under KVM). The kernel's zero pages are mapped on first
/// use instead, by the step that writes them.
#[cfg(unix)]
const MAPPED_BYTES: usize = 1 << 20;

/// The size of a page.
#[cfg(unix)]
fn page_size() -> usize {
    // SAFETY: `sysconf` has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .ok()
        .filter(|&p| p > 0)
        .unwrap_or(4096)
}

/// A new private anonymous mapping of `total` bytes (a multiple of the page size), readable,
/// writable and zero; `None` if the kernel refuses it.
#[cfg(unix)]
fn map_anonymous(total: usize) -> Option<*mut u8> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    (base != libc::MAP_FAILED).then_some(base as *mut u8)
}

impl Drop for Storage {
    fn drop(&mut self) {
        match self.allocation {
            Allocation::Empty => {}
            // SAFETY: `ptr` was returned by `alloc_zeroed` with this layout; freed once.
            Allocation::Heap(layout) => unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) },
            // SAFETY: the mapping made in `zeroed` or `guarded`, unmapped once.
            #[cfg(unix)]
            Allocation::Mapped { base, len } => unsafe {
                libc::munmap(base as *mut libc::c_void, len);
            },
        }
    }
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({} bytes)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_zeroed_and_aligned() {
        // Below and above the size from which pages are mapped.
        for len in [100, 3 << 20] {
            let mut s = Storage::zeroed(len, "test").unwrap();
            assert_eq!(s.len(), len);
            assert!(s.as_slice().iter().all(|&b| b == 0));
            assert_eq!(s.as_mut_ptr() as usize % MemoryPlan::ALIGN, 0);
            s.as_mut_slice().fill(7);
            assert!(s.as_slice().iter().all(|&b| b == 7));
        }
        let e = Storage::zeroed(0, "empty").unwrap();
        assert!(e.is_empty());
    }

    #[test]
    fn impossible_sizes_are_errors() {
        let err = Storage::zeroed(usize::MAX - 10, "the arena").unwrap_err();
        assert!(matches!(err, JitError::OutOfMemory { .. }), "{err}");
        // More than any machine has (overcommit may grant up to RAM + swap, not this).
        assert!(Storage::zeroed(1 << 50, "the arena").is_err());
        assert!(Storage::guarded(1 << 50, "the arena").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn guarded_storage_ends_at_a_page_boundary() {
        for len in [1, 12, 4096, 5000] {
            let mut s = Storage::guarded(len, "test").unwrap();
            assert!(s.as_slice().iter().all(|&b| b == 0));
            s.as_mut_slice().fill(7);
            assert_eq!(s.as_slice().len(), len);
            assert_eq!((s.as_mut_ptr() as usize + len) % 4096, 0, "len {len}");
        }
        let copy = Storage::from_bytes(&[1, 2, 3], true, "test").unwrap();
        assert_eq!(copy.as_slice(), &[1, 2, 3]);
    }
}
