//! llm-core's atomic writer under SIGKILL: a child rewrites a file and a directory in a loop
//! and is killed at varied points; every time, the file and the directory hold one complete
//! version, old or new, never a torn or mixed one.

use std::path::Path;
use std::time::Duration;

use llm_core::io::atomic::write_bytes_atomic;
use llm_core::io::write_dir_atomic;
use llm_core::LlmError;
use llm_testkit::*;

/// 256 KiB of version `v`: long enough that a kill lands inside a write.
fn payload(v: u64) -> Vec<u8> {
    (0..32 * 1024).flat_map(|_| v.to_le_bytes()).collect()
}

/// The version a payload holds, if it is complete and uniform.
fn version(bytes: &[u8]) -> Option<u64> {
    let want = payload(0).len();
    let v = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    (bytes.len() == want && bytes.chunks_exact(8).all(|c| c == v.to_le_bytes())).then_some(v)
}

/// Runs only as the child of `killed_writes_leave_old_or_new_state`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("LLM_ATOMIC_CRASH_CHILD") else { return };
    let dir = Path::new(&dir);
    for v in 1.. {
        write_bytes_atomic(&dir.join("file.bin"), &payload(v)).unwrap();
        write_dir_atomic::<LlmError>(&dir.join("ckpt"), |tmp| {
            for part in ["a.bin", "b.bin"] {
                std::fs::write(tmp.join(part), payload(v)).map_err(|e| LlmError::Io { path: tmp.join(part), source: e })?;
            }
            Ok(())
        })
        .unwrap();
    }
}

#[test]
fn killed_writes_leave_old_or_new_state() {
    // Fixed and pseudo-random kill points (a seeded LCG, so a failure reproduces).
    let mut seed = 0x2545_f491u64;
    let delays: Vec<u64> = [20, 55, 90].into_iter().chain((0..5).map(|_| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        15 + (seed >> 33) % 200
    })).collect();
    for (round, delay_ms) in delays.into_iter().enumerate() {
        let dir = temp_dir(&format!("atomic-crash-{round}"));
        kill_child_after("atomic_writer::crash_child", "LLM_ATOMIC_CRASH_CHILD", &dir, Duration::from_millis(delay_ms));
        let file = std::fs::read(dir.join("file.bin")).ok();
        let file_v = file.as_deref().map(|b| version(b).unwrap_or_else(|| panic!("round {round}: torn file ({} bytes)", b.len())));
        let parts: Vec<Option<u64>> = ["a.bin", "b.bin"]
            .iter()
            .map(|p| std::fs::read(dir.join("ckpt").join(p)).ok().map(|b| version(&b).unwrap_or_else(|| panic!("round {round}: torn {p}"))))
            .collect();
        assert_eq!(parts[0], parts[1], "round {round}: the directory mixes versions");
        if let (Some(f), Some(d)) = (file_v, parts[0]) {
            // The file is written first each round, so it is the directory's version or one ahead.
            assert!(f == d || f == d + 1, "round {round}: file {f}, directory {d}");
        }
        eprintln!("round {round}: killed after {delay_ms} ms at file {file_v:?}, directory {:?}", parts[0]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
