//! Atomic, durable replacement of a file or a directory: write a sibling temporary, fsync it
//! (every file in it, for a directory), rename it over the target, fsync the parent directory.
//! A process killed at any point leaves the old target or the new one, complete, never a
//! mixture; a failed write removes its temporary and leaves the old target untouched.
//!
//! A directory that already exists is swapped with the new one in one `renameat2(…,
//! RENAME_EXCHANGE)` on Linux; elsewhere the old one is first renamed aside (and back, if the
//! second rename fails), so a crash in that instant leaves it as `.NAME.old-*` beside the target.
//!
//! Temporaries are named `.NAME.tmp-PID-NONCE-N` (NONCE: this process's start time), so a
//! restarted process with the same PID (PID 1 in a container) never collides with what a killed
//! one left; each write first removes such leftovers of dead writers (on Linux, where
//! `/proc/PID` tells). Once the new target is in place, failing to remove the old copy or to
//! sync the parent is logged, not returned: the write itself succeeded. A symlinked target is
//! replaced by a real file or directory (the link's old target is left as it was).

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
    sweep_leftovers(path);
    let result = write(&tmp).and_then(|()| {
        sync_file(&tmp)?;
        std::fs::rename(&tmp, path).map_err(|e| LlmError::io(path, e))?;
        after_commit(path, sync_parent(path));
        Ok(())
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
    sweep_leftovers(dir);
    std::fs::create_dir(&tmp).map_err(|e| LlmError::io(&tmp, e))?;
    let result = fill(&tmp).and_then(|()| Ok(sync_tree(&tmp)?)).and_then(|()| Ok(replace_dir(&tmp, dir)?));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// This process's start time in nanoseconds: with the PID, tells its temporaries from those of
/// an earlier process that had the same PID.
fn nonce() -> u128 {
    static NONCE: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    *NONCE.get_or_init(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "out".into())
}

/// `.NAME.KIND-PID-NONCE-N` beside `path`: unique per process, incarnation and call.
fn temp_sibling(path: &Path, kind: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{}.{kind}-{}-{}-{n}", file_name(path), std::process::id(), nonce()))
}

/// Removes the `.NAME.tmp-*` / `.NAME.old-*` siblings of `path` left by writers that no longer
/// run (killed mid-write): another PID that is not alive, or our PID from an earlier start.
/// Best effort, and only where `/proc` tells which processes are alive.
fn sweep_leftovers(path: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    let name = file_name(path);
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = [".tmp-", ".old-"].iter().find_map(|k| file.strip_prefix(&format!(".{name}{k}"))) else { continue };
        let mut parts = rest.split('-');
        let (Some(pid), Some(stamp)) = (parts.next().and_then(|p| p.parse::<u32>().ok()), parts.next()) else { continue };
        let ours = pid == std::process::id();
        let dead = if ours { stamp != nonce().to_string() } else { !Path::new(&format!("/proc/{pid}")).exists() };
        if dead {
            let p = entry.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
}

/// What happens after the new target is in place: a failure to clean up or sync is logged.
fn after_commit(path: &Path, result: Result<(), LlmError>) {
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "written, but cleaning up after the rename failed");
    }
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
    // `symlink_metadata`: a dangling link is still something to replace.
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::rename(tmp, dir).map_err(|e| LlmError::io(dir, e))?;
        after_commit(dir, sync_parent(dir));
        return Ok(());
    }
    if exchange(tmp, dir).is_ok() {
        // `tmp` now holds the old directory.
        after_commit(dir, sync_parent(dir).and_then(|()| remove_any(tmp)));
        return Ok(());
    }
    let old = temp_sibling(dir, "old");
    std::fs::rename(dir, &old).map_err(|e| LlmError::io(dir, e))?;
    if let Err(e) = std::fs::rename(tmp, dir) {
        // Put the old one back: the target is never left missing by a failed write.
        let _ = std::fs::rename(&old, dir);
        return Err(LlmError::io(dir, e));
    }
    after_commit(dir, sync_parent(dir).and_then(|()| remove_any(&old)));
    Ok(())
}

/// Removes a directory tree, or a file or link (what a swapped-out symlink target is).
fn remove_any(path: &Path) -> Result<(), LlmError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| LlmError::io(path, e))?;
    let r = if meta.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    r.map_err(|e| LlmError::io(path, e))
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
    fn leftovers_of_dead_writers_are_swept_and_a_live_ones_kept() {
        let d = scratch("sweep");
        let path = d.join("f.txt");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        let leftovers = [format!(".f.txt.tmp-{dead}-5-0"), format!(".f.txt.old-{me}-1-3"), format!(".f.txt.tmp-{me}-{}-9", nonce())];
        for l in &leftovers {
            std::fs::create_dir(d.join(l)).unwrap();
        }
        write_bytes_atomic(&path, b"new").unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        left.sort();
        // Only the target and this very process's own (live) temporary remain.
        assert_eq!(left, [leftovers[2].clone(), "f.txt".to_string()]);
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
