//! What a generation cost, as llama.cpp prints it: load time, prompt tokens/s, decode tokens/s.

use std::time::Duration;

/// The timings of one generation (one prompt or a batch of them).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Timings {
    /// Loading the model, when the caller measured it.
    pub load: Option<Duration>,
    /// Prompt tokens of the prefill (all rows).
    pub prompt_tokens: usize,
    /// The prefill's forward pass and the first token's sampling.
    pub prefill: Duration,
    /// Decode steps after the prefill.
    pub decode_steps: usize,
    /// Their total time.
    pub decode: Duration,
}

impl Timings {
    /// From a stream's per-step times ([`super::TextDelta::elapsed`]): the first step holds the
    /// prefill, the others one decode step each.
    pub fn from_steps(load: Option<Duration>, prompt_tokens: usize, steps: impl IntoIterator<Item = Duration>) -> Self {
        let mut steps = steps.into_iter();
        let prefill = steps.next().unwrap_or_default();
        let (mut decode_steps, mut decode) = (0, Duration::ZERO);
        for d in steps {
            decode_steps += 1;
            decode += d;
        }
        Self { load, prompt_tokens, prefill, decode_steps, decode }
    }

    /// Prompt tokens per second (0 when nothing was timed).
    pub fn prompt_tokens_per_s(&self) -> f64 {
        per_s(self.prompt_tokens, self.prefill)
    }

    /// Decode steps per second (tokens/s per row; 0 when nothing was timed).
    pub fn decode_tokens_per_s(&self) -> f64 {
        per_s(self.decode_steps, self.decode)
    }

    /// llama.cpp's `llama_perf_context_print` lines:
    /// `load time = …`, `prompt eval time = … ms / N tokens (… ms per token, … tokens per second)`,
    /// `eval time = … ms / N runs (…)`, `total time = …`.
    pub fn report(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let line = |name: &str, d: Duration, n: usize, unit: &str| {
            let per = if n > 0 { ms(d) / n as f64 } else { 0.0 };
            format!("{name:>16} = {:10.2} ms / {n:5} {unit} ({per:8.2} ms per token, {:8.2} tokens per second)\n", ms(d), per_s(n, d))
        };
        let mut out = String::new();
        if let Some(load) = self.load {
            out += &format!("{:>16} = {:10.2} ms\n", "load time", ms(load));
        }
        out += &line("prompt eval time", self.prefill, self.prompt_tokens, "tokens");
        out += &line("eval time", self.decode, self.decode_steps, "runs  ");
        out += &format!("{:>16} = {:10.2} ms / {:5} tokens\n", "total time", ms(self.prefill + self.decode), self.prompt_tokens + self.decode_steps);
        out
    }
}

fn per_s(n: usize, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_report() {
        let t = Timings {
            load: Some(Duration::from_millis(200)),
            prompt_tokens: 128,
            prefill: Duration::from_millis(500),
            decode_steps: 10,
            decode: Duration::from_millis(100),
        };
        assert!((t.prompt_tokens_per_s() - 256.0).abs() < 1e-9);
        assert!((t.decode_tokens_per_s() - 100.0).abs() < 1e-9);
        let r = t.report();
        assert!(r.contains("load time =     200.00 ms"), "{r}");
        assert!(r.contains("/   128 tokens") && r.contains("256.00 tokens per second"), "{r}");
        assert!(r.contains("eval time =     100.00 ms /    10 runs"), "{r}");
        assert_eq!(Timings::default().decode_tokens_per_s(), 0.0);
        let s = Timings::from_steps(None, 3, [Duration::from_millis(30), Duration::from_millis(10), Duration::from_millis(10)]);
        assert_eq!((s.prefill, s.decode_steps, s.decode), (Duration::from_millis(30), 2, Duration::from_millis(20)));
    }
}
