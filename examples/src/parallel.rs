//! `--world-size N --rank R --master HOST:PORT`: a training example as one replica of a
//! data-parallel run (see [`llm_train::parallel`]).

use std::net::ToSocketAddrs;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use llm_train::parallel::TcpCollective;
use llm_train::trainer::Trainer;

/// Data-parallel settings shared by `finetune` and `align`.
#[derive(Args, Debug, Clone)]
pub struct ParallelArgs {
    /// Replicas of a data-parallel run (processes on this machine or others, one per device):
    /// each runs `--batch-size` examples of every step and the gradients are summed.
    #[arg(long, default_value_t = 1)]
    pub world_size: usize,
    /// This replica's rank, 0..world-size. Rank 0 listens at --master and writes the metrics,
    /// checkpoints and the trained model.
    #[arg(long, default_value_t = 0)]
    pub rank: usize,
    /// Rank 0's address, `HOST:PORT`.
    #[arg(long, default_value = "127.0.0.1:29500")]
    pub master: String,
    /// Seconds to wait for the other replicas to join, and for each exchange.
    #[arg(long, default_value_t = 600)]
    pub parallel_timeout: u64,
}

impl ParallelArgs {
    /// Whether this process writes the run's outputs.
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// Joins the group (when `--world-size` > 1) and makes `trainer` its replica.
    pub fn apply<B: burn::tensor::backend::AutodiffBackend>(&self, trainer: Trainer<B>) -> anyhow::Result<Trainer<B>> {
        if self.world_size <= 1 {
            return Ok(trainer);
        }
        let master = self
            .master
            .to_socket_addrs()
            .with_context(|| format!("--master {}", self.master))?
            .next()
            .with_context(|| format!("--master {} resolves to no address", self.master))?;
        eprintln!("rank {} of {}: joining at {master}", self.rank, self.world_size);
        let group = TcpCollective::join(self.rank, self.world_size, master, Duration::from_secs(self.parallel_timeout))?;
        Ok(trainer.with_collective(group))
    }
}
