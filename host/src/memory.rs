//! Handing freed memory back to the operating system after a burst, so a
//! server's resident memory returns to its idle figure once large results
//! are dropped (glibc's allocator keeps freed small blocks otherwise).

/// Returns the allocator's free memory to the OS, where the allocator
/// needs to be asked (glibc); elsewhere it does so by itself.
pub(crate) fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` is glibc's, takes a byte count and touches
        // only the allocator's own free lists; it is safe to call from any
        // thread at any time.
        #[allow(unsafe_code)]
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        #[allow(unsafe_code)]
        // SAFETY: see above.
        unsafe {
            malloc_trim(0);
        }
    }
}
