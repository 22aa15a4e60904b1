//! glibc malloc settings for batchinfer's allocations, made once at start-up.
//!
//! glibc serves a large request with its own `mmap` below a threshold that adapts:
//! freeing an mmapped block raises the threshold to that block's size. Which sizes
//! come first therefore decides whether a run's 1 MiB buffers stay in the heap or
//! are mapped, zeroed by the kernel and unmapped on every batch. `batchinfer bench`
//! on the 2×256 MLP with 1,024-row batches, run after 256-row batches, took 298k
//! page faults and scored 300k rows/s; alone, 15k faults and 494k rows/s. Fixed
//! thresholds make every size up to 32 MiB come from the heap, whatever came first,
//! and keep up to 8 MiB of freed heap for the next batches instead of handing it
//! back (README, "Speed").

/// Largest request served from the heap; larger ones are mapped.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of the heap kept for reuse rather than returned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 8 << 20;

/// Sets the thresholds (glibc only; other allocators are left as they are). Call
/// before any thread starts.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called once, from
    // main, before the program starts its threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
