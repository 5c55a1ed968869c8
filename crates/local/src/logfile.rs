//! A container's log file (its log stream) with a size limit: when the next line would take
//! it past [`LogLimits::max_bytes`], `00001.log` becomes `00001.log.1` (`.1` becomes `.2`, and
//! so on) and a new `00001.log` begins; only [`LogLimits::backups`] such files are kept, so
//! one container's log never takes more than `max_bytes × (backups + 1)` on disk, however long
//! the stack runs.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Size limit of a log file and how many rotated files are kept beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    pub max_bytes: u64,
    pub backups: usize,
}

/// 10 MiB per file.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Three rotated files.
pub const DEFAULT_LOG_BACKUPS: usize = 3;
/// The smallest size limit accepted: one Lambda `REPORT` line and some output.
pub const MIN_LOG_MAX_BYTES: u64 = 1024;

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_bytes: DEFAULT_LOG_MAX_BYTES,
            backups: DEFAULT_LOG_BACKUPS,
        }
    }
}

pub struct RotatingLog {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    limits: LogLimits,
}

impl RotatingLog {
    /// Opens (appends to) the log at `path`. A file that cannot be opened means no log, never a
    /// failed invocation.
    pub fn open(path: impl Into<PathBuf>, limits: LogLimits) -> Self {
        let path = path.into();
        let file = append(&path);
        let written = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        RotatingLog {
            path,
            file,
            written,
            limits,
        }
    }

    /// Writes one line, rotating first when it would not fit. A line longer than the limit
    /// still gets a file of its own.
    pub fn write_line(&mut self, line: &str) {
        let size = line.len() as u64 + 1;
        if self.written > 0 && self.written + size > self.limits.max_bytes {
            self.rotate();
        }
        if let Some(file) = self.file.as_mut()
            && writeln!(file, "{line}").is_ok()
        {
            self.written += size;
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let numbered = |n: usize| numbered(&self.path, n);
        if self.limits.backups == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = std::fs::remove_file(numbered(self.limits.backups));
            for n in (1..self.limits.backups).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            let _ = std::fs::rename(&self.path, numbered(1));
        }
        self.file = append(&self.path);
        self.written = 0;
    }
}

fn append(path: &Path) -> Option<File> {
    OpenOptions::new().create(true).append(true).open(path).ok()
}

/// `00001.log` → `00001.log.<n>`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_rotates_and_only_the_backups_are_kept() {
        let dir = std::env::temp_dir().join(format!("leasehold-logfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("00001.log");
        let limits = LogLimits {
            max_bytes: 100,
            backups: 2,
        };
        let mut log = RotatingLog::open(&path, limits);
        // 10 lines of 25 bytes: 4 fit in a file, so files of 4 (.2), 4 (.1) and 2 lines.
        for i in 0..10 {
            log.write_line(&format!("line {i:02} ................"));
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(&path).lines().count(), 2);
        assert!(read(&path).starts_with("line 08"));
        assert!(read(&numbered(&path, 1)).starts_with("line 04"));
        assert_eq!(read(&numbered(&path, 2)).lines().count(), 4);
        assert!(!numbered(&path, 3).exists());
        for n in 0..=2 {
            let file = if n == 0 {
                path.clone()
            } else {
                numbered(&path, n)
            };
            assert!(std::fs::metadata(&file).unwrap().len() <= 100);
        }
        // A reopened log continues its file, and its size counts.
        let mut again = RotatingLog::open(&path, limits);
        again.write_line(&"x".repeat(60));
        assert!(read(&path).starts_with("x"));
        assert!(read(&numbered(&path, 1)).starts_with("line 08"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
