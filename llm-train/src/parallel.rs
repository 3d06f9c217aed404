//! Data-parallel training: replicas (processes, on one machine or several) that each run part
//! of every optimizer step and sum their gradients, so the step is the one a single process
//! would take on the whole batch.
//!
//! [`Collective`] is what the [`crate::trainer::Trainer`] needs from the replicas: a sum of
//! float vectors and of named scalars, the same bits on every rank. [`TcpCollective`] provides
//! it over TCP with rank 0 as the hub: it receives every rank's vector, adds them in rank order
//! and sends the sum back, so all ranks apply bit-identical updates and their parameters never
//! drift apart. Burn 0.21's `burn-collective` was measured for this and is not used: across
//! processes its second all-reduce of a session hangs (its node barrier clears a copy of the
//! peer list, `global/node/sync.rs`), and its in-process sum order follows a `HashMap`.
//!
//! ```text
//! # the same command on every machine, --rank 0..N-1, rank 0's address for all:
//! finetune --data d.jsonl --world-size 2 --rank 0 --master 10.0.0.1:29500 --out run
//! finetune --data d.jsonl --world-size 2 --rank 1 --master 10.0.0.1:29500 --out run
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::error::{Result, TrainError};

/// Sums over the replicas of a data-parallel run.
pub trait Collective: Send {
    /// This replica's rank, `0..world_size`.
    fn rank(&self) -> usize;
    /// Number of replicas.
    fn world_size(&self) -> usize;
    /// Replaces `values` with their element-wise sum over all ranks (rank order, so every rank
    /// gets the same bits). Every rank must pass the same length.
    fn all_reduce_f32(&mut self, values: &mut [f32]) -> Result<()>;
    /// The sum over all ranks of named scalars (a name missing on a rank counts 0).
    fn all_reduce_scalars(&mut self, values: &BTreeMap<String, f64>) -> Result<BTreeMap<String, f64>>;
}

/// A single replica: sums are the values themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn all_reduce_f32(&mut self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_scalars(&mut self, values: &BTreeMap<String, f64>) -> Result<BTreeMap<String, f64>> {
        Ok(values.clone())
    }
}

/// Replicas joined over TCP, rank 0 listening at the master address (see the module docs).
#[derive(Debug)]
pub struct TcpCollective {
    rank: usize,
    world_size: usize,
    /// Rank 0: the stream of rank `i + 1` at `i`. Other ranks: the stream to rank 0.
    streams: Vec<TcpStream>,
}

/// Messages larger than this are refused (a corrupt length must not allocate gigabytes).
const MAX_MESSAGE: u64 = 1 << 34;

impl TcpCollective {
    /// Joins the group: rank 0 binds `master` and waits for the other ranks, the others
    /// connect to it (retrying until `timeout`, so start order does not matter). Every later
    /// read and write also fails after `timeout` instead of hanging on a dead peer.
    pub fn join(rank: usize, world_size: usize, master: SocketAddr, timeout: Duration) -> Result<Self> {
        if world_size == 0 || rank >= world_size {
            return Err(TrainError::config("rank", format!("rank {rank} of a world of {world_size}")));
        }
        let err = |what: &str, e: std::io::Error| TrainError::Collective { rank, message: format!("{what} {master}: {e}") };
        let mut streams = vec![];
        if rank == 0 && world_size > 1 {
            let listener = TcpListener::bind(master).map_err(|e| err("binding", e))?;
            listener.set_nonblocking(true).map_err(|e| err("listening on", e))?;
            let mut by_rank: Vec<Option<TcpStream>> = (1..world_size).map(|_| None).collect();
            let deadline = Instant::now() + timeout;
            while by_rank.iter().any(Option::is_none) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).map_err(|e| err("accepting on", e))?;
                        configure(&s, timeout).map_err(|e| err("accepting on", e))?;
                        let peer = read_u64(&mut s).map_err(|e| err("handshake on", e))? as usize;
                        let slot = peer.checked_sub(1).and_then(|i| by_rank.get_mut(i)).filter(|s| s.is_none());
                        let Some(slot) = slot else {
                            return Err(TrainError::Collective { rank, message: format!("a peer announced rank {peer} (expected 1..{world_size}, each once)") });
                        };
                        *slot = Some(s);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => return Err(err(&format!("waiting {timeout:?} for {} peers on", world_size - 1), e)),
                }
            }
            streams = by_rank.into_iter().map(|s| s.expect("all joined")).collect();
        } else if rank > 0 {
            let deadline = Instant::now() + timeout;
            let mut s = loop {
                match TcpStream::connect_timeout(&master, Duration::from_secs(1)) {
                    Ok(s) => break s,
                    Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                    Err(e) => return Err(err("connecting to", e)),
                }
            };
            configure(&s, timeout).map_err(|e| err("connecting to", e))?;
            s.write_all(&(rank as u64).to_le_bytes()).map_err(|e| err("handshake with", e))?;
            streams.push(s);
        }
        tracing::info!(rank, world_size, %master, "data-parallel group joined");
        Ok(Self { rank, world_size, streams })
    }

    /// Rank 0 gathers every rank's message (in rank order), combines them, and sends the result
    /// to all; the others send theirs and receive the result.
    fn exchange(&mut self, mine: Vec<u8>, combine: impl FnOnce(Vec<Vec<u8>>) -> Result<Vec<u8>>) -> Result<Vec<u8>> {
        let rank = self.rank;
        let io = |e: std::io::Error| TrainError::Collective { rank, message: format!("exchange failed: {e}") };
        if self.rank == 0 {
            let mut all = vec![mine];
            for s in &mut self.streams {
                all.push(read_message(s).map_err(io)?);
            }
            let out = combine(all)?;
            for s in &mut self.streams {
                write_message(s, &out).map_err(io)?;
            }
            Ok(out)
        } else {
            let s = &mut self.streams[0];
            write_message(s, &mine).map_err(io)?;
            read_message(s).map_err(io)
        }
    }
}

impl Collective for TcpCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world_size
    }

    fn all_reduce_f32(&mut self, values: &mut [f32]) -> Result<()> {
        if self.world_size == 1 {
            return Ok(());
        }
        let n = values.len();
        let out = self.exchange(bytemuck::cast_slice(values).to_vec(), |all| {
            if let Some((r, m)) = all.iter().enumerate().find(|(_, m)| m.len() != n * 4) {
                return Err(TrainError::Collective { rank: r, message: format!("sent {} values, rank 0 has {n}", m.len() / 4) });
            }
            let mut sum = vec![0f32; n];
            for m in &all {
                for (s, v) in sum.iter_mut().zip(m.chunks_exact(4)) {
                    *s += f32::from_le_bytes(v.try_into().expect("4 bytes"));
                }
            }
            Ok(bytemuck::cast_slice(&sum).to_vec())
        })?;
        values.copy_from_slice(bytemuck::cast_slice(&out));
        Ok(())
    }

    fn all_reduce_scalars(&mut self, values: &BTreeMap<String, f64>) -> Result<BTreeMap<String, f64>> {
        if self.world_size == 1 {
            return Ok(values.clone());
        }
        let rank = self.rank;
        let bad = move |e: serde_json::Error| TrainError::Collective { rank, message: format!("scalars: {e}") };
        let mine = serde_json::to_vec(values).map_err(bad)?;
        let out = self.exchange(mine, |all| {
            let mut sum = BTreeMap::<String, f64>::new();
            for m in &all {
                for (k, v) in serde_json::from_slice::<BTreeMap<String, f64>>(m).map_err(bad)? {
                    *sum.entry(k).or_default() += v;
                }
            }
            serde_json::to_vec(&sum).map_err(bad)
        })?;
        serde_json::from_slice(&out).map_err(bad)
    }
}

fn configure(s: &TcpStream, timeout: Duration) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))
}

fn read_u64(s: &mut TcpStream) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    s.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn write_message(s: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    s.write_all(&(bytes.len() as u64).to_le_bytes())?;
    s.write_all(bytes)
}

fn read_message(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let n = read_u64(s)?;
    if n > MAX_MESSAGE {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("message of {n} bytes")));
    }
    let mut buf = vec![0u8; n as usize];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_ranks_sum_in_rank_order_and_agree_bit_for_bit() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        // An ephemeral port chosen by the OS, then released for rank 0 to bind.
        let port = TcpListener::bind(addr).unwrap().local_addr().unwrap().port();
        let master: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let handles: Vec<_> = (0..3)
            .map(|rank| {
                std::thread::spawn(move || {
                    let mut c = TcpCollective::join(rank, 3, master, Duration::from_secs(20)).unwrap();
                    let mut v = vec![0.1f32 * (rank + 1) as f32, 1e8, -1e8 + rank as f32];
                    c.all_reduce_f32(&mut v).unwrap();
                    let s = c.all_reduce_scalars(&BTreeMap::from([(format!("r{rank}"), 1.0), ("n".into(), 2.5)])).unwrap();
                    (v, s)
                })
            })
            .collect();
        let out: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let first = (0..3).fold(0f32, |s, r| s + 0.1f32 * (r + 1) as f32);
        for (v, s) in &out {
            assert_eq!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), out[0].0.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
            assert_eq!(v[0], first);
            assert_eq!(v[1], 3e8);
            assert_eq!(s["n"], 7.5);
            assert_eq!((s["r0"], s["r1"], s["r2"]), (1.0, 1.0, 1.0));
        }
    }

    #[test]
    fn a_length_mismatch_is_an_error_on_every_rank_not_a_hang() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let master: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let peer = std::thread::spawn(move || {
            let mut c = TcpCollective::join(1, 2, master, Duration::from_secs(5)).unwrap();
            c.all_reduce_f32(&mut [1.0, 2.0, 3.0])
        });
        let mut c = TcpCollective::join(0, 2, master, Duration::from_secs(5)).unwrap();
        let err = c.all_reduce_f32(&mut [1.0, 2.0]).unwrap_err().to_string();
        assert!(err.contains("rank 1") && err.contains("sent 3 values"), "{err}");
        drop(c);
        assert!(peer.join().unwrap().is_err(), "the peer sees the hub go away");
    }
}
