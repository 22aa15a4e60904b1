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
    // ru_maxrss is in KiB on Linux.
    (cpu, usage.ru_maxrss as f64 / 1024.0)
}

/// Bytes this process has read through read(2) and friends so far (Linux
/// `/proc/self/io` `rchar`; page-cache hits included, memory maps not).
pub fn bytes_read() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
}
