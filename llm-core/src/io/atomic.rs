//! Atomic, durable replacement of a file or a directory: write a sibling temporary, fsync it
//! (every file in it, for a directory), rename it over the target, fsync the parent directory.
//! A process killed at any point leaves the old target or the new one, complete, never a
//! mixture; a failed write removes its temporary and leaves the old target untouched.
//!
//! A directory that already exists is swapped with the new one in one `renameat2(…,
//! RENAME_EXCHANGE)` on Linux; elsewhere the old one is first renamed aside, so a crash in that
//! instant leaves it as `.NAME.old-*` beside the target.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::LlmError;

/// Writes `path` through `write(tmp)`, which fills a sibling temporary file `tmp`, then makes
/// it `path` atomically and durably. Errors of `write` are returned as they are; I/O errors of
/// the commit become `LlmError::Io` naming the file.
pub fn write_file_atomic<E: From<LlmError>>(path: &Path, write: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E> {
    let tmp = temp_sibling(path, "tmp");
    ensure_parent(path)?;
    let result = write(&tmp).and_then(|()| {
        sync_file(&tmp)?;
        std::fs::rename(&tmp, path).map_err(|e| LlmError::io(path, e))?;
        Ok(sync_parent(path)?)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    write_file_atomic(path, |tmp| std::fs::write(tmp, bytes).map_err(|e| LlmError::io(tmp, e)))
}

/// Builds the directory `dir` through `fill(tmp)` in a sibling temporary directory, then puts
/// it in place of `dir` (replacing an older one) atomically and durably.
pub fn write_dir_atomic<E: From<LlmError>>(dir: &Path, fill: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E> {
    let tmp = temp_sibling(dir, "tmp");
    ensure_parent(dir)?;
    std::fs::create_dir(&tmp).map_err(|e| LlmError::io(&tmp, e))?;
    let result = fill(&tmp).and_then(|()| Ok(sync_tree(&tmp)?)).and_then(|()| Ok(replace_dir(&tmp, dir)?));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// `.NAME.KIND-PID-N` beside `path`: unique per process and call.
fn temp_sibling(path: &Path, kind: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "out".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{kind}-{}-{n}", std::process::id()))
}

fn ensure_parent(path: &Path) -> Result<(), LlmError> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => std::fs::create_dir_all(parent).map_err(|e| LlmError::io(parent, e)),
        None => Ok(()),
    }
}

fn sync_file(path: &Path) -> Result<(), LlmError> {
    File::open(path).and_then(|f| f.sync_all()).map_err(|e| LlmError::io(path, e))
}

/// fsyncs every file under `dir`, then `dir` itself.
fn sync_tree(dir: &Path) -> Result<(), LlmError> {
    for entry in std::fs::read_dir(dir).map_err(|e| LlmError::io(dir, e))? {
        let path = entry.map_err(|e| LlmError::io(dir, e))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            sync_file(&path)?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), LlmError> {
    // Directories open read-only on Unix; elsewhere there is nothing to sync.
    #[cfg(unix)]
    File::open(dir).and_then(|f| f.sync_all()).map_err(|e| LlmError::io(dir, e))?;
    let _ = dir;
    Ok(())
}

fn sync_parent(path: &Path) -> Result<(), LlmError> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => sync_dir(Path::new(".")),
    }
}

fn replace_dir(tmp: &Path, dir: &Path) -> Result<(), LlmError> {
    if !dir.exists() {
        std::fs::rename(tmp, dir).map_err(|e| LlmError::io(dir, e))?;
        return sync_parent(dir);
    }
    if exchange(tmp, dir).is_ok() {
        // `tmp` now holds the old directory.
        sync_parent(dir)?;
        return std::fs::remove_dir_all(tmp).map_err(|e| LlmError::io(tmp, e));
    }
    let old = temp_sibling(dir, "old");
    std::fs::rename(dir, &old).map_err(|e| LlmError::io(dir, e))?;
    std::fs::rename(tmp, dir).map_err(|e| LlmError::io(dir, e))?;
    sync_parent(dir)?;
    std::fs::remove_dir_all(&old).map_err(|e| LlmError::io(&old, e))
}

/// Swaps two paths in one step (Linux `renameat2` with `RENAME_EXCHANGE`).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cstr = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput);
    let (a, b) = (cstr(a)?, cstr(b)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("llm-atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let d = scratch("fail");
        let path = d.join("f.txt");
        write_bytes_atomic(&path, b"old").unwrap();
        let r: Result<(), LlmError> = write_file_atomic(&path, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(LlmError::config("test", "fails"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
    }

    #[test]
    fn a_directory_is_replaced_whole() {
        let d = scratch("dir");
        let dir = d.join("ckpt");
        for (name, text) in [("a", "1"), ("b", "2")] {
            write_dir_atomic::<LlmError>(&dir, |tmp| {
                std::fs::write(tmp.join(name), text).map_err(|e| LlmError::io(tmp, e))
            })
            .unwrap();
        }
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["b"]);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1, "no temporary left beside it");
    }
}
