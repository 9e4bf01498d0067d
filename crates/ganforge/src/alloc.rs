//! The memory allocator for ganforge's programs.
//!
//! A training step allocates and frees many tensors of several megabytes. With glibc's
//! malloc each is a fresh mmap: the kernel zeroes every page on first touch, which took 14%
//! of a CPU training step (perf, small32). mimalloc with purging turned off keeps freed
//! memory mapped and reuses it: the DCGAN-64 step went from 2.53 s to 1.96 s on 2 cores, for
//! ~10% more peak memory (benches/train_step.rs). Binaries opt in with
//! `#[global_allocator] static A: ganforge::alloc::MiMalloc = ganforge::alloc::MiMalloc;`
//! and call [`keep_freed_memory`] first thing in `main`.

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 2.x's `mi_option_e` (libmimalloc-sys exposes no
/// constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to return freed memory to the OS (purge delay -1). Returns whether the
/// option took (false would mean the option index differs in this mimalloc version).
pub fn keep_freed_memory() -> bool {
    // SAFETY: plain option setters of the C library; called before other threads start.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == -1
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn purge_delay_option_is_the_one_we_think() {
        assert!(super::keep_freed_memory(), "mimalloc's option index changed: update MI_OPTION_PURGE_DELAY");
    }
}
