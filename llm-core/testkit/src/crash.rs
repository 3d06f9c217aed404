//! Crash tests: run one test of the current binary as a child process and SIGKILL it
//! mid-work, so the parent can check what a killed writer left on disk.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs the test `test` (its full path, `flat_store::crash_child`) of this test binary in a
/// child with `env_var` set to `dir`, and kills it with SIGKILL (no destructors, no flush)
/// after `delay`. The child test should return at once when `env_var` is unset, so the normal
/// run passes it.
pub fn kill_child_after(test: &str, env_var: &str, dir: &Path, delay: Duration) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(env_var, dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the test binary runs as a child");
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
}

/// The child half of a writer's crash test: writes version 1, 2, ... of a file or directory
/// with `write(path, version)` until killed. Before each real write it writes the same version
/// to a scratch path and records that complete version's digest, so the parent can tell a
/// complete version from a torn one. Returns at once unless `env_var` is set.
pub fn crash_child_writes(env_var: &str, mut write: impl FnMut(&Path, u64)) {
    let Ok(root) = std::env::var(env_var) else { return };
    let root = Path::new(&root);
    let digests = root.join("digests");
    std::fs::create_dir_all(&digests).expect("digest folder");
    for version in 1.. {
        let reference = root.join("reference");
        let _ = std::fs::remove_dir_all(&reference);
        let _ = std::fs::remove_file(&reference);
        write(&reference, version);
        // A record ends with a newline: one cut short by the kill is ignored.
        let record = format!("{:016x}\n", digest(&reference).expect("the reference was written"));
        std::fs::write(digests.join(version.to_string()), record).expect("digest record");
        write(&root.join("target"), version);
    }
}

/// The parent half: kills the child test `test` (run with `env_var`) at `rounds` points
/// spread over its first seconds, and after each kill finds `target` absent or byte for byte
/// one complete version the child recorded. Returns how many kills found a version on disk.
pub fn assert_writes_survive_kills(test: &str, env_var: &str, label: &str, rounds: usize) -> usize {
    let mut seed = 0x9e37_79b9u64 ^ label.len() as u64;
    let mut found = 0;
    for round in 0..rounds {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_millis(150 + (seed >> 33) % 1800);
        let dir = crate::temp_dir(&format!("kill-{label}-{round}"));
        kill_child_after(test, env_var, &dir, delay);
        let target = dir.join("target");
        if target.exists() {
            let got = digest(&target).unwrap_or_else(|| panic!("{label} round {round}: target unreadable"));
            let complete: Vec<u64> = std::fs::read_dir(dir.join("digests"))
                .into_iter()
                .flatten()
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .filter_map(|s| u64::from_str_radix(s.strip_suffix('\n')?, 16).ok())
                .collect();
            assert!(complete.contains(&got), "{label} round {round} (killed after {delay:?}): the target is no complete version");
            found += 1;
        }
        eprintln!("{label} round {round}: killed after {delay:?}, target {}", if target.exists() { "complete" } else { "absent" });
        let _ = std::fs::remove_dir_all(&dir);
    }
    found
}

/// FNV-1a over a file, or over a directory's files (names and bytes, sorted by name).
fn digest(path: &Path) -> Option<u64> {
    if path.is_file() {
        return Some(llm_core::io::fnv1a(&std::fs::read(path).ok()?));
    }
    let mut names: Vec<_> = std::fs::read_dir(path).ok()?.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    names.sort();
    let mut all = vec![];
    for name in names {
        all.extend(name.as_encoded_bytes());
        all.push(0);
        all.extend(std::fs::read(path.join(&name)).ok()?);
    }
    Some(llm_core::io::fnv1a(&all))
}
