//! Peak resident memory, read from procfs. Linux-only by nature; elsewhere the readers
//! return an error and the report shows no figure rather than a wrong one.

use std::{fs, io};

/// Peak resident set size (`VmHWM`) of process `pid`, in bytes.
pub fn peak_rss_bytes(pid: u32) -> io::Result<u64> {
    parse_vm_hwm(&fs::read_to_string(format!("/proc/{pid}/status"))?)
}

/// Peak resident set size of the current process, in bytes.
pub fn current_peak_rss_bytes() -> io::Result<u64> {
    parse_vm_hwm(&fs::read_to_string("/proc/self/status")?)
}

/// Resets the current process's peak RSS to its present RSS, so that several in-process
/// scenarios in one run each report their own peak instead of the run's running maximum.
pub fn reset_current_peak_rss() -> io::Result<()> {
    // "5" is the kernel's documented request to reset VmHWM (see proc(5), clear_refs).
    fs::write("/proc/self/clear_refs", "5")
}

fn parse_vm_hwm(status: &str) -> io::Result<u64> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmHWM line"))?;
    let kib = line
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(kib * 1024)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_vm_hwm_in_kib() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_vm_hwm(status).unwrap(), 2048 * 1024);
        assert!(parse_vm_hwm("Name:\tx\n").is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_own_peak() {
        assert!(current_peak_rss_bytes().unwrap() > 0);
        assert!(peak_rss_bytes(std::process::id()).unwrap() > 0);
    }
}
