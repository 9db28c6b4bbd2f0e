//! Process figures read from `/proc/self` at scrape time: resident memory, open file
//! descriptors and their limit — what runs out first on a host holding many connections.

use std::path::Path;

/// One reading; `None` where `/proc` is not there (not Linux) or unreadable.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    pub resident_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// Reads `/proc/self`.
pub fn sample() -> ProcessSample {
    sample_from(Path::new("/proc/self"))
}

fn sample_from(proc_dir: &Path) -> ProcessSample {
    let status = std::fs::read_to_string(proc_dir.join("status")).unwrap_or_default();
    let limits = std::fs::read_to_string(proc_dir.join("limits")).unwrap_or_default();
    ProcessSample {
        resident_bytes: vm_rss_bytes(&status),
        open_fds: std::fs::read_dir(proc_dir.join("fd"))
            .ok()
            .map(|d| d.count() as u64),
        max_fds: soft_open_files_limit(&limits),
    }
}

/// `VmRSS:   12345 kB` in `/proc/self/status`.
fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The soft limit of `Max open files  1024  524288  files` in `/proc/self/limits`.
fn soft_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(
            vm_rss_bytes("Name:\tdiscodeit\nVmRSS:\t   2048 kB\nThreads: 4\n"),
            Some(2048 * 1024)
        );
        assert_eq!(vm_rss_bytes("Name: x\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            65536                524288               files\n";
        assert_eq!(soft_open_files_limit(limits), Some(65536));
        assert_eq!(
            soft_open_files_limit("Max open files  unlimited  unlimited  files\n"),
            None
        );
    }

    #[test]
    fn reads_this_process() {
        let files: Vec<_> = (0..16)
            .map(|_| std::fs::File::open("/proc/self/status").unwrap())
            .collect();
        let s = sample();
        assert!(s.resident_bytes.unwrap() > 1024 * 1024);
        // stdin/out/err, the files above, and the runtime's own.
        assert!(s.open_fds.unwrap() >= 3 + files.len() as u64, "{s:?}");
        assert!(s.max_fds.unwrap() >= s.open_fds.unwrap());
    }
}
