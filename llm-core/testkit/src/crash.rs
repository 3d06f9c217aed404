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
