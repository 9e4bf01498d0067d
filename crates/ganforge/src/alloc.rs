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

/// `mi_option_purge_delay` in mimalloc's `mi_option_e`: 15 in 2.x and in 3.x, which
/// libmimalloc-sys 0.1.49 builds by default (it exposes no constant for it).
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
    /// Setting an option and reading it back succeeds for any index, so that alone proves
    /// nothing: before setting, index 15 must hold purge_delay's default from mimalloc's
    /// options.c (libmimalloc-sys 0.1.49's c_src: 1000 ms in v3, which it builds by default, 10
    /// in v2), where its neighbours hold other defaults (14 eager_commit_delay = 1, 16
    /// use_numa_nodes = 0). No other test of this binary touches mimalloc's options.
    #[test]
    fn purge_delay_option_is_the_one_we_think() {
        use libmimalloc_sys as mi;
        assert!(std::env::var_os("MIMALLOC_PURGE_DELAY").is_none(), "the environment overrides the default");
        let k = super::MI_OPTION_PURGE_DELAY;
        // SAFETY: plain option and version getters of the C library.
        let (version, before, neighbours) =
            unsafe { (mi::mi_version(), mi::mi_option_get(k), (mi::mi_option_get(k - 1), mi::mi_option_get(k + 1))) };
        let default = match version / 10_000 {
            2 => 10,
            3 => 1000,
            _ => panic!("mimalloc {version}: check MI_OPTION_PURGE_DELAY against its mimalloc.h"),
        };
        assert_eq!((before, neighbours), (default, (1, 0)), "mimalloc's option indices changed: update MI_OPTION_PURGE_DELAY");
        assert!(super::keep_freed_memory());
        // SAFETY: as above.
        assert_eq!(unsafe { mi::mi_option_get(super::MI_OPTION_PURGE_DELAY) }, -1);
    }
}
