//! Peak resident memory of the process (Linux `VmHWM`), the figure the trainer reports: the
//! high-water mark is reset when a run starts (`/proc/self/clear_refs`), so loading and
//! quantizing the model before it do not count.

/// Resets the process's peak resident set size to its current size; false where the platform
/// has no such control (the peak then covers the whole process).
pub fn reset_peak() -> bool {
    cfg!(target_os = "linux") && std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak resident set size in bytes since start or the last [`reset_peak`]
/// (`None` off Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_peak_drops_back_after_a_reset() {
        let big = vec![1u8; 256 << 20];
        std::hint::black_box(&big);
        let with = peak_rss_bytes().unwrap();
        drop(big);
        assert!(reset_peak());
        let after = peak_rss_bytes().unwrap();
        assert!(after + (128 << 20) < with, "peak {with} -> {after} after the reset");
    }
}
