//! Fuzz targets for every loader of untrusted input, shared by the libFuzzer binaries
//! (`fuzz_targets/`, driven by `scripts/fuzz.sh`) and by `tests/replay.rs`, which runs the
//! committed seed corpus and every input that ever failed as ordinary tests.
//!
//! A target takes raw bytes, feeds them to the library the way an application would (files
//! written to a scratch directory, then the public loaders), and ignores the typed error that
//! most inputs produce. What it must never do is panic, run past a second, or allocate more
//! than [`MAX_ALLOCATION`] bytes at once: the allocator below aborts on such a request, so
//! libFuzzer records it as a crash and the replay test dies loudly.

#![warn(missing_docs)]

pub mod fixtures;
pub mod targets;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;

/// The largest single allocation an input may cause (1 GiB).
pub const MAX_ALLOCATION: usize = 1 << 30;

/// A target: raw bytes in, nothing out.
pub type Target = fn(&[u8]);

/// Every target by name, as the binaries and the corpus folders are named.
pub const TARGETS: &[(&str, Target)] = &[
    ("checkpoint", targets::checkpoint),
    ("adapter", targets::adapter),
    ("gguf", targets::gguf),
    ("gguf_blocks", targets::gguf_blocks),
    ("configs", targets::configs),
    ("tokenizer_json", targets::tokenizer_json),
    ("tokenizer_config", targets::tokenizer_config),
    ("chat_template", targets::chat_template),
    ("sft_jsonl", targets::sft_jsonl),
    ("pref_jsonl", targets::pref_jsonl),
    ("html", targets::html),
    ("pdf", targets::pdf),
    ("json_docs", targets::json_docs),
    ("flat_store", targets::flat_store),
];

/// The system allocator, refusing (by aborting) any one request over [`MAX_ALLOCATION`].
pub struct CappedAlloc;

fn check(size: usize) {
    if size > MAX_ALLOCATION {
        let msg = b"llm-fuzz: an allocation over 1 GiB was requested; aborting\n";
        // SAFETY: writing a static buffer to stderr; no allocation on this path.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
        std::process::abort();
    }
}

// SAFETY: forwards to `System` unchanged after the size check.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: CappedAlloc = CappedAlloc;

/// A scratch directory for `target`, one per process and thread, created on first use.
pub fn scratch(target: &str) -> PathBuf {
    thread_local!(static ROOT: PathBuf = {
        let base = std::env::var_os("LLM_FUZZ_TMP").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let thread = format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
        base.join(format!("llm-fuzz-{}-{thread}", std::process::id()))
    });
    let dir = ROOT.with(|root| root.join(target));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// Writes `bytes` to `dir/name` (the way a downloaded file would arrive).
pub fn put(dir: &std::path::Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("scratch write");
    path
}

/// Splits `data` into two files: a little-endian `u32` length, that many bytes, the rest.
pub fn split_two(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let rest = &data[4..];
    (n <= rest.len()).then(|| rest.split_at(n))
}

/// [`split_two`]'s inverse, for writing seeds.
pub fn join_two(first: &[u8], second: &[u8]) -> Vec<u8> {
    let mut out = (first.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    out
}
