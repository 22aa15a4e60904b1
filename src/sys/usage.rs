//! What the operating system says this process used: CPU time, peak memory,
//! bytes read. The summary reports them; it does not probe the OS itself.

/// CPU seconds (user + system) and peak resident memory of this process so far.
pub fn process_usage() -> (f64, f64) {
    // SAFETY: getrusage only writes into the zeroed struct we pass it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage for getrusage to fill.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = secs(usage.ru_utime) + secs(usage.ru_stime);
    // Linux keeps ru_maxrss across exec, so a process started by a large parent
    // (an Airflow worker, `cargo run`) would report the parent's peak: the
    // high-water mark of this process's own memory comes first. Both in KiB.
    let peak_kib = high_water_mark_kib().unwrap_or(usage.ru_maxrss as u64);
    (cpu, peak_kib as f64 / 1024.0)
}

/// `VmHWM` of `/proc/self/status`: the peak resident set of this process image.
fn high_water_mark_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Bytes this process has read through read(2) and friends so far (Linux
/// `/proc/self/io` `rchar`; page-cache hits included, memory maps not).
pub fn bytes_read() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_memory_is_this_process_own() {
        let (cpu, peak) = process_usage();
        assert!(cpu > 0.0);
        // The test binary's own peak: more than a few MiB, far less than a GiB.
        assert!(peak > 1.0 && peak < 1024.0, "{peak} MiB");
        assert!(
            high_water_mark_kib().is_some(),
            "Linux has /proc/self/status"
        );
    }
}
