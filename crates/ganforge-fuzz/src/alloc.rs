//! A counting allocator: records, per thread, the largest single allocation, so the harness
//! can fail an input whose parser asked for more memory than its bound. Per thread, because
//! the test harness runs tests on parallel threads and one test's planted allocation must not
//! count against another's parser. Allocations made on threads a parser starts are not seen;
//! none of the fuzzed parsers starts one.
//!
//! The fuzz binary and test declare it with
//! `#[global_allocator] static A: ganforge_fuzz::alloc::Counting = ganforge_fuzz::alloc::Counting;`.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

use ganforge::alloc::MiMalloc;

/// Requests above this are refused outright (Rust then aborts with "memory allocation of N
/// bytes failed"): 8 GiB is a third of this machine's memory, so a runaway request ends the
/// run with a message instead of leaving the kernel to kill it, and anything under it is
/// only reserved (not touched) by a parser that is about to fail, so it is recorded and the
/// input is failed normally.
pub const HARD_CEILING: usize = 8 << 30;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// mimalloc (what ganforge's programs run on), counting.
pub struct Counting;

fn note(size: usize) -> bool {
    // try_with: a thread being torn down still allocates, after its locals are gone.
    let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
    size <= HARD_CEILING
}

// SAFETY: every call is forwarded unchanged to mimalloc; a refused request returns null,
// which GlobalAlloc allows.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size) {
            return std::ptr::null_mut();
        }
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns its result with the largest single allocation it made on this thread.
pub fn largest_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LARGEST.with(|c| c.replace(0));
    let out = f();
    let largest = LARGEST.with(|c| c.replace(before.max(c.get())));
    (out, largest)
}

/// Whether [`Counting`] is the global allocator: without it every bound would pass unseen.
pub fn installed() -> bool {
    let (v, largest) = largest_during(|| std::hint::black_box(vec![1u8; 4096]));
    drop(v);
    largest >= 4096
}
