//! Counters and gauges of the engine, shown at `/metrics` in Prometheus' text format.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Shared between the engine (which writes) and the HTTP handlers (which read).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Sequences the engine runs at once at most.
    pub slots_total: AtomicUsize,
    /// Sequences running now (prefill or decode).
    pub slots_busy: AtomicUsize,
    /// Requests waiting for a slot.
    pub requests_waiting: AtomicUsize,
    /// Requests accepted since start.
    pub requests_total: AtomicU64,
    /// Requests whose client went away (or timed out) before they finished.
    pub requests_cancelled_total: AtomicU64,
    /// Prompt tokens run.
    pub prompt_tokens_total: AtomicU64,
    /// Tokens generated.
    pub generated_tokens_total: AtomicU64,
    /// Forward passes of the engine.
    pub steps_total: AtomicU64,
    /// Time in forward passes and sampling, microseconds.
    pub busy_us_total: AtomicU64,
    /// Tokens generated per second over the last steps (f64 bits).
    generated_per_s: AtomicU64,
}

impl Metrics {
    /// Records one engine step: `generated` new tokens in `seconds`.
    pub(crate) fn record_step(&self, prompt: usize, generated: usize, seconds: f64) {
        self.steps_total.fetch_add(1, Relaxed);
        self.prompt_tokens_total.fetch_add(prompt as u64, Relaxed);
        self.generated_tokens_total.fetch_add(generated as u64, Relaxed);
        self.busy_us_total.fetch_add((seconds * 1e6) as u64, Relaxed);
        if seconds > 0.0 {
            // An exponential average over ~10 steps.
            let old = f64::from_bits(self.generated_per_s.load(Relaxed));
            let now = generated as f64 / seconds;
            self.generated_per_s.store((0.9 * old + 0.1 * now).to_bits(), Relaxed);
        }
    }

    /// Generated tokens per second, averaged over the last steps.
    pub fn generated_per_s(&self) -> f64 {
        f64::from_bits(self.generated_per_s.load(Relaxed))
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &str, f64); 10] = [
            ("llm_slots_total", "gauge", "Sequences the engine runs at once at most.", self.slots_total.load(Relaxed) as f64),
            ("llm_slots_busy", "gauge", "Sequences running now.", self.slots_busy.load(Relaxed) as f64),
            ("llm_requests_waiting", "gauge", "Requests waiting for a slot.", self.requests_waiting.load(Relaxed) as f64),
            ("llm_requests_total", "counter", "Requests accepted.", self.requests_total.load(Relaxed) as f64),
            ("llm_requests_cancelled_total", "counter", "Requests cancelled by a disconnect or timeout.", self.requests_cancelled_total.load(Relaxed) as f64),
            ("llm_prompt_tokens_total", "counter", "Prompt tokens run.", self.prompt_tokens_total.load(Relaxed) as f64),
            ("llm_generated_tokens_total", "counter", "Tokens generated.", self.generated_tokens_total.load(Relaxed) as f64),
            ("llm_steps_total", "counter", "Forward passes of the batching engine.", self.steps_total.load(Relaxed) as f64),
            ("llm_busy_seconds_total", "counter", "Seconds spent in forward passes and sampling.", self.busy_us_total.load(Relaxed) as f64 / 1e6),
            ("llm_generated_tokens_per_second", "gauge", "Generated tokens per second over the last steps.", self.generated_per_s()),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            out += &format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
        }
        out
    }
}
