//! Compressing the blocks of one archive on several threads.
//!
//! The chunks of the framing format are independent, so blocks can be
//! compressed out of order and written in order. The writer hands full
//! blocks to a few worker threads and writes each block's chunk once it and
//! every block before it are done. The writer's own thread is one of the
//! compressing threads: when the workers have as much as they can hold it
//! compresses the next block itself instead of waiting, which on a small
//! machine is the difference between overlapping and taking turns. At most
//! four blocks per thread are in flight, so memory stays bounded (about
//! 150 KiB a block).

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::frame;

/// A block made ready for writing: its chunk type, masked CRC and body.
pub(super) struct Packed {
    /// `frame::COMPRESSED`, or `frame::UNCOMPRESSED` when compression would
    /// not save an eighth.
    pub(super) chunk_type: u8,
    pub(super) crc: u32,
    /// Compressed bytes are `out[..len]`; uncompressed ones are the block.
    len: usize,
}

/// Compresses `block` into `out` (sized for the largest block).
pub(super) fn pack(
    encoder: &mut snap::raw::Encoder,
    block: &[u8],
    out: &mut [u8],
) -> Result<Packed, snap::Error> {
    let crc = frame::masked_crc(block);
    let n = encoder.compress(block, out)?;
    Ok(if n < block.len() - block.len() / 8 {
        Packed {
            chunk_type: frame::COMPRESSED,
            crc,
            len: n,
        }
    } else {
        Packed {
            chunk_type: frame::UNCOMPRESSED,
            crc,
            len: block.len(),
        }
    })
}

impl Packed {
    /// The chunk's body: the compressed bytes or the block itself.
    pub(super) fn body<'a>(&self, block: &'a [u8], out: &'a [u8]) -> &'a [u8] {
        if self.chunk_type == frame::COMPRESSED {
            &out[..self.len]
        } else {
            &block[..self.len]
        }
    }
}

/// One block's trip through a worker, with the buffers it travels in.
pub(super) struct Job {
    seq: u64,
    pub(super) block: Vec<u8>,
    pub(super) out: Vec<u8>,
    pub(super) packed: Result<Packed, String>,
}

/// The worker threads and the blocks in flight.
pub(super) struct Pool {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Job>,
    workers: Vec<JoinHandle<()>>,
    sent: u64,
    written: u64,
    /// Jobs finished before an earlier one.
    early: BTreeMap<u64, Job>,
    /// Buffers of written jobs, for the next blocks.
    spare: Vec<(Vec<u8>, Vec<u8>)>,
    limit: u64,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.workers.len())
            .field("in_flight", &(self.sent - self.written))
            .finish()
    }
}

impl Pool {
    /// Starts the workers of `threads` compressing threads, the caller's
    /// among them; `None` if no worker could be started (the writer then
    /// compresses on its own thread).
    pub(super) fn start(threads: usize) -> Option<Pool> {
        let limit = 4 * threads.max(2);
        let threads = threads.saturating_sub(1).max(1);
        // Two jobs queued per worker keep it from ever waiting for the
        // next; beyond that, the caller compresses the block itself.
        let (jobs, queue) = mpsc::sync_channel::<Job>(2 * threads);
        let (finished, done) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let queue = Arc::clone(&queue);
            let finished = finished.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("triton-compress-{i}"))
                .spawn(move || work(&queue, &finished));
            // A thread that cannot start leaves the work to the others.
            if let Ok(handle) = spawned {
                workers.push(handle);
            }
        }
        if workers.is_empty() {
            return None;
        }
        Some(Pool {
            jobs: Some(jobs),
            done,
            workers,
            sent: 0,
            written: 0,
            early: BTreeMap::new(),
            spare: Vec::new(),
            limit: limit as u64,
        })
    }

    /// Buffers for the next block (an empty block and a compression buffer).
    pub(super) fn buffers(&mut self) -> (Vec<u8>, Vec<u8>) {
        self.spare.pop().unwrap_or_else(|| {
            (
                Vec::with_capacity(frame::MAX_BLOCK),
                vec![0; snap::raw::max_compress_len(frame::MAX_BLOCK)],
            )
        })
    }

    /// Hands a full block to the workers, or compresses it on the caller's
    /// thread when their queue is full (or they are gone).
    pub(super) fn submit(
        &mut self,
        encoder: &mut snap::raw::Encoder,
        block: Vec<u8>,
        out: Vec<u8>,
    ) {
        let job = Job {
            seq: self.sent,
            block,
            out,
            packed: Err(String::new()),
        };
        let job = match &self.jobs {
            Some(jobs) => match jobs.try_send(job) {
                Ok(()) => {
                    self.sent += 1;
                    return;
                }
                Err(mpsc::TrySendError::Full(job) | mpsc::TrySendError::Disconnected(job)) => job,
            },
            None => job,
        };
        self.run_here(encoder, job.block, job.out);
    }

    /// Compresses a block on the caller's thread, in its turn among the
    /// blocks in flight.
    pub(super) fn run_here(
        &mut self,
        encoder: &mut snap::raw::Encoder,
        block: Vec<u8>,
        mut out: Vec<u8>,
    ) {
        let packed = pack(encoder, &block, &mut out).map_err(|e| e.to_string());
        let job = Job {
            seq: self.sent,
            block,
            out,
            packed,
        };
        self.early.insert(job.seq, job);
        self.sent += 1;
    }

    /// Whether as many blocks are in flight as memory allows.
    pub(super) fn full(&self) -> bool {
        self.sent - self.written >= self.limit
    }

    /// Whether every block sent was written.
    pub(super) fn idle(&self) -> bool {
        self.sent == self.written
    }

    /// The next block to write, in order: waits for it when `wait`, else
    /// only if it is already done. `Err` if a worker died with it.
    pub(super) fn next(&mut self, wait: bool) -> Option<Result<Job, String>> {
        if self.idle() {
            return None;
        }
        loop {
            if let Some(job) = self.early.remove(&self.written) {
                self.written += 1;
                return Some(Ok(job));
            }
            let job = if wait {
                match self.done.recv() {
                    Ok(job) => job,
                    Err(_) => return Some(Err("a compression thread stopped".into())),
                }
            } else {
                match self.done.try_recv() {
                    Ok(job) => job,
                    Err(mpsc::TryRecvError::Empty) => return None,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        return Some(Err("a compression thread stopped".into()))
                    }
                }
            };
            self.early.insert(job.seq, job);
        }
    }

    /// Takes back the buffers of a written job.
    pub(super) fn recycle(&mut self, mut job: Job) {
        job.block.clear();
        self.spare.push((job.block, job.out));
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends the workers once they are done.
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn work(queue: &Mutex<Receiver<Job>>, finished: &mpsc::Sender<Job>) {
    let mut encoder = snap::raw::Encoder::new();
    loop {
        // The lock is held only while waiting for a job, not while working.
        let job = match queue.lock() {
            Ok(q) => q.recv(),
            Err(_) => return,
        };
        let Ok(mut job) = job else {
            return;
        };
        job.packed = pack(&mut encoder, &job.block, &mut job.out).map_err(|e| e.to_string());
        if finished.send(job).is_err() {
            return;
        }
    }
}
