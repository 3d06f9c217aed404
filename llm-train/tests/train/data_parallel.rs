//! Data parallel across processes: two replicas of batch 2 (this test binary started twice,
//! joined over loopback TCP) take the same steps as one process with batch 4, and resume
//! from rank 0's checkpoint exactly.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use burn::module::AutodiffModule;
use crate::common::*;
use llm_train::lora::{attach_lora, LoraSpec, TargetModules};
use llm_train::parallel::TcpCollective;
use llm_train::params::read_params;
use llm_train::sft::TokenizedExample;
use llm_train::trainer::{TrainConfig, Trainer};
use serde_json::{json, Value};

const STEPS: u64 = 5;

/// Twelve examples: j_train's three, and each cut short at three more lengths (so the rows of
/// a batch differ in length and padding is exercised).
fn data() -> Vec<TokenizedExample> {
    let mut out = vec![];
    for cut in [0, 3, 7, 11] {
        for e in tokenized() {
            let n = e.input_ids.len() - cut;
            out.push(TokenizedExample { input_ids: e.input_ids[..n].to_vec(), labels: e.labels[..n].to_vec() });
        }
    }
    out
}

fn trainer(batch_size: usize, out: Option<&Path>) -> Trainer<TrainBackend> {
    let spec = LoraSpec { r: 4, alpha: 8.0, targets: TargetModules::AllLinear, ..Default::default() };
    let (model, _) = attach_lora(tiny_model(), &spec, 7).unwrap();
    let config = TrainConfig {
        batch_size,
        max_steps: Some(STEPS),
        save_every: out.map(|_| 3),
        output_dir: out.map(Path::to_path_buf),
        optimizer: llm_train::optim::AdamWConfig { lr: 1e-2, ..Default::default() },
        ..Default::default()
    };
    Trainer::new(model, config, 0).unwrap()
}

fn lora_values(t: &Trainer<TrainBackend>) -> Vec<f32> {
    read_params(&t.model.valid(), |n| n.contains("lora_")).into_values().flat_map(|(_, v)| v).collect()
}

/// One replica, run in a child process by the test below (ignored when run directly).
#[test]
#[ignore = "a replica of data_parallel::two_processes_take_the_steps_of_one_with_the_doubled_batch"]
fn replica() {
    let (Ok(rank), Ok(master), Ok(out)) = (std::env::var("LLM_DP_RANK"), std::env::var("LLM_DP_MASTER"), std::env::var("LLM_DP_OUT")) else {
        return;
    };
    let rank: usize = rank.parse().unwrap();
    let out = PathBuf::from(out);
    let group = TcpCollective::join(rank, 2, master.parse().unwrap(), Duration::from_secs(60)).unwrap();
    let mut t = trainer(2, Some(&out.join("run"))).with_collective(group);
    if let Ok(dir) = std::env::var("LLM_DP_RESUME") {
        t.resume(Path::new(&dir)).unwrap();
    }
    let report = t.fit(&data(), None, |_| {}).unwrap();
    let losses: Vec<f64> = report.steps.iter().map(|m| m.loss).collect();
    let tokens: Vec<usize> = report.steps.iter().map(|m| m.tokens).collect();
    let record = json!({"losses": losses, "tokens": tokens, "lora": lora_values(&t)});
    std::fs::write(out.join(format!("rank{rank}.json")), record.to_string()).unwrap();
}

/// Starts both replicas (this binary, the ignored test above) and waits for them.
fn run_replicas(out: &Path, resume: Option<&Path>) -> [Value; 2] {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let master = SocketAddr::from(([127, 0, 0, 1], port));
    let children: Vec<_> = (0..2)
        .map(|rank| {
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.args(["--exact", "data_parallel::replica", "--ignored", "--test-threads=1"])
                .env("LLM_DP_RANK", rank.to_string())
                .env("LLM_DP_MASTER", master.to_string())
                .env("LLM_DP_OUT", out);
            if let Some(r) = resume {
                cmd.env("LLM_DP_RESUME", r);
            }
            cmd.stdout(std::process::Stdio::null()).spawn().unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a replica failed");
    }
    [0, 1].map(|r| serde_json::from_str(&std::fs::read_to_string(out.join(format!("rank{r}.json"))).unwrap()).unwrap())
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn two_processes_take_the_steps_of_one_with_the_doubled_batch() {
    let mut one = trainer(4, None);
    let report = one.fit(&data(), None, |_| {}).unwrap();
    let want: Vec<f64> = report.steps.iter().map(|m| m.loss).collect();
    let want_lora = lora_values(&one);
    assert_eq!(want.len(), STEPS as usize);

    let dir = temp_dir("data-parallel");
    let [r0, r1] = run_replicas(&dir, None);
    // Both ranks hold the same sums and apply the same updates: bit-identical.
    assert_eq!(r0, r1, "the replicas agree exactly");
    let got = floats(&r0["losses"]);
    assert_eq!(got.len(), want.len());
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-6, "step {}: two replicas {g} vs one process {w}", step + 1);
    }
    let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
    eprintln!("losses {want:?}; two replicas differ by at most {worst:e}");
    let tokens: Vec<usize> = report.steps.iter().map(|m| m.tokens).collect();
    assert_eq!(r0["tokens"], json!(tokens), "the same examples in every step");
    let lora = floats(&r0["lora"]);
    let gap = lora.iter().zip(&want_lora).map(|(a, b)| (a - *b as f64).abs()).fold(0.0, f64::max);
    // Adam divides each coordinate's step by its own gradient scale, so a coordinate whose
    // gradient is near zero moves by up to lr whatever its last bits: 1e-4 against the 5e-2
    // that five steps at lr 1e-2 can move a weight.
    assert!(gap <= 1e-4, "LoRA weights after {STEPS} steps differ by {gap}");

    // Resumed from rank 0's checkpoint after step 3, both replicas retrace steps 4 and 5.
    let checkpoint = dir.join("run/checkpoint-3");
    assert!(checkpoint.join("trainer_state.json").exists(), "rank 0 wrote the checkpoint");
    let resumed_dir = dir.join("resumed");
    std::fs::create_dir_all(&resumed_dir).unwrap();
    let [q0, q1] = run_replicas(&resumed_dir, Some(&checkpoint));
    assert_eq!(q0, q1);
    assert_eq!(floats(&q0["losses"]), got[3..].to_vec(), "steps 4-5 after the resume are those of the run");
    assert_eq!(q0["lora"], r0["lora"], "the resumed run ends on the same weights");
}
