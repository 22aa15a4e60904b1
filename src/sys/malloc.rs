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
//! back (docs/benchmarks.md, "Memory and thread scaling").

/// Largest request served from the heap; larger ones are mapped.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of the heap kept for reuse rather than returned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 8 << 20;

/// Sets the thresholds (glibc only; other allocators are left as they are), unless
/// the user tuned glibc's malloc through its environment. Call before any thread
/// starts.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !user_tuned(std::env::vars()) {
        // SAFETY: mallopt only changes allocator parameters; it is called once,
        // from main, before the program starts its threads.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}

/// Whether the environment sets either threshold itself (`MALLOC_MMAP_THRESHOLD_`,
/// `MALLOC_TRIM_THRESHOLD_` or their `GLIBC_TUNABLES`): the user's setting wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn user_tuned(mut vars: impl Iterator<Item = (String, String)>) -> bool {
    vars.any(|(k, v)| match k.as_str() {
        "MALLOC_MMAP_THRESHOLD_" | "MALLOC_TRIM_THRESHOLD_" => true,
        "GLIBC_TUNABLES" => {
            v.contains("glibc.malloc.mmap_threshold") || v.contains("glibc.malloc.trim_threshold")
        }
        _ => false,
    })
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn a_user_s_malloc_settings_are_left_alone() {
        let none = [("PATH", "/bin"), ("MALLOC_ARENA_MAX", "2")];
        assert!(!user_tuned(vars(&none)));
        assert!(user_tuned(vars(&[("MALLOC_MMAP_THRESHOLD_", "65536")])));
        assert!(user_tuned(vars(&[("MALLOC_TRIM_THRESHOLD_", "0")])));
        let trim = [("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576")];
        assert!(user_tuned(vars(&trim)));
        let other = [(
            "GLIBC_TUNABLES",
            "glibc.cpu.hwcaps=-AVX2:glibc.malloc.arena_max=2",
        )];
        assert!(!user_tuned(vars(&other)));
    }
}
