//! Zeroed byte storage at the memory plan's alignment, whose allocation failure is an error.
//!
//! The arena and every parameter live in a [`Storage`]: its start is aligned to
//! [`MemoryPlan::ALIGN`] by construction (the host matmul and the vector loops rely on it), and
//! asking for more memory than the system gives returns [`JitError::OutOfMemory`] rather than
//! aborting the process.

use crate::JitError;
use adjoint_opt::MemoryPlan;
use std::alloc::Layout;
use std::ptr::NonNull;

/// An owned, zero-initialized, [`MemoryPlan::ALIGN`]-aligned byte buffer.
pub struct Storage {
    ptr: NonNull<u8>,
    len: usize,
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
            // A dangling pointer at the alignment: never dereferenced for a length of 0.
            let ptr = NonNull::new(MemoryPlan::ALIGN as *mut u8).expect("nonzero");
            return Ok(Storage { ptr, len });
        }
        let layout = Layout::from_size_align(len, MemoryPlan::ALIGN).map_err(|_| oom())?;
        // SAFETY: `layout` has a nonzero size (checked above).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(oom)?;
        Ok(Storage { ptr, len })
    }

    /// A copy of `bytes`, or [`JitError::OutOfMemory`] naming `what`.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Storage, JitError> {
        let mut s = Storage::zeroed(bytes.len(), what)?;
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

impl Drop for Storage {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        let layout = Layout::from_size_align(self.len, MemoryPlan::ALIGN).expect("made in zeroed");
        // SAFETY: `ptr` was returned by `alloc_zeroed` with this same layout and is freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) };
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
        let mut s = Storage::zeroed(100, "test").unwrap();
        assert!(s.as_slice().iter().all(|&b| b == 0));
        assert_eq!(s.as_mut_ptr() as usize % MemoryPlan::ALIGN, 0);
        let e = Storage::zeroed(0, "empty").unwrap();
        assert!(e.is_empty());
    }

    #[test]
    fn impossible_sizes_are_errors() {
        let err = Storage::zeroed(usize::MAX - 10, "the arena").unwrap_err();
        assert!(matches!(err, JitError::OutOfMemory { .. }), "{err}");
        // More than any machine has (overcommit may grant up to RAM + swap, not this).
        assert!(Storage::zeroed(1 << 50, "the arena").is_err());
    }
}
