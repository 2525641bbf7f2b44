//! The one CPU hint the packet path needs: start loading a cache line
//! now, so it is there when the code gets to it. The only `unsafe` in this
//! crate: the intrinsic is marked unsafe because it needs SSE, which every
//! x86-64 CPU has; it never dereferences the address.
#![allow(unsafe_code)]

/// Asks the CPU to bring the cache line holding `r` into all cache
/// levels, without waiting for it. Only the address is used.
#[inline(always)]
pub fn prefetch<T: ?Sized>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults and reads nothing
    // into the program; SSE, which provides it, is in the x86-64 baseline.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(r).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
