//! Shards: one glommio executor per core, joined in a full channel mesh.
//!
//! Every shard runs the same `main` future on its own thread. After joining
//! the mesh a shard knows its id (its mesh peer id, `0..shard_count`) and
//! gets a [`Router`], through which any shard runs work on any other:
//! [`Router::invoke_on`] ships a `Send` closure to the target shard's message
//! pump, which runs it there as a local task against that shard's context and
//! sends the result back over a second mesh, the reply mesh, to the caller's
//! reply pump, which hands it to the waiting call. Only the owner ever touches
//! its state, so no request path needs a lock. Work for the calling shard
//! itself runs in place, without a channel hop.
//!
//! Why replies take a mesh and not a oneshot channel: a oneshot's sender,
//! run on the target's thread, would wake the caller's task from a foreign
//! thread. glommio 0.9 hands such a wake-up back to the owner's executor
//! through reference counts that a foreign thread drops to zero and raises
//! again, and a task that completes on its own thread in between is freed
//! twice (a double free under load, seen with `rafka-bench storm` on 2
//! cores). glommio's shared channels wake only on the receiver's own
//! executor (an eventfd, the waker never leaves its thread), so every
//! cross-core message here, call or reply, goes through them.
//!
//! Lives on: one `Router` per shard, never shared across threads.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::time::Instant;

use futures_util::future::join_all;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use glommio::{LocalExecutorBuilder, Placement};

use crate::histogram::{HistogramSnapshot, LatencyHistogram};

/// Runs `work` for at most `timeout` on the shard's timer; `None` when the
/// time ran out first (`work` is dropped then). Deadlines come from the
/// executor's timers, never from reading a clock on a decision path.
pub async fn within<F: Future>(timeout: std::time::Duration, work: F) -> Option<F::Output> {
    let work = std::pin::pin!(work);
    let sleep = std::pin::pin!(glommio::timer::sleep(timeout));
    match futures_util::future::select(work, sleep).await {
        futures_util::future::Either::Left((output, _)) => Some(output),
        futures_util::future::Either::Right(_) => None,
    }
}

/// A call's result, type-erased for the reply mesh.
type Answer = Box<dyn Any + Send>;

/// Work shipped to a shard: built from a `Send` closure on the caller, run
/// as a local (non-`Send`) future on the target against its context.
type Work<Ctx> = Box<dyn FnOnce(Rc<Ctx>) -> Pin<Box<dyn Future<Output = Answer>>> + Send>;

/// A call on the mesh: the work, and where its answer goes.
pub struct Job<Ctx> {
    work: Work<Ctx>,
    /// The caller's shard and its token for the call.
    from: usize,
    token: u64,
    /// When the caller sent it, for the transit time (both threads read
    /// the same monotonic clock).
    sent: Instant,
}

/// An answer on the reply mesh: the call's token and its result, `None`
/// when the target dropped the call unanswered (it is stopping).
struct Reply {
    token: u64,
    answer: Option<Answer>,
    sent: Instant,
}

/// What one shard's calls cost: how many stayed on the shard and how
/// many crossed to another, and the time a message spent between its
/// send on one thread and its pickup on the other (the queue plus the
/// wake-up of a parked executor), each way. Only the owning shard
/// touches it.
#[derive(Debug, Default)]
pub struct MeshStats {
    local_calls: Cell<u64>,
    remote_calls: Cell<u64>,
    /// Jobs that arrived here: send on the caller to pickup here.
    job_transit: LatencyHistogram,
    /// Replies to this shard's calls: send on the target to pickup here.
    reply_transit: LatencyHistogram,
}

/// A [`MeshStats`] copy for a scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeshStatsSnapshot {
    pub local_calls: u64,
    pub remote_calls: u64,
    pub job_transit: HistogramSnapshot,
    pub reply_transit: HistogramSnapshot,
}

impl MeshStats {
    pub fn snapshot(&self) -> MeshStatsSnapshot {
        MeshStatsSnapshot {
            local_calls: self.local_calls.get(),
            remote_calls: self.remote_calls.get(),
            job_transit: self.job_transit.snapshot(),
            reply_transit: self.reply_transit.snapshot(),
        }
    }
}

/// The calls this shard waits on, by token: the target shard and where
/// the answer goes.
type Pending = RefCell<HashMap<u64, (usize, futures_channel::oneshot::Sender<Option<Answer>>)>>;

/// How many executors to start and how.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub shard_count: usize,
    /// Pin shard i to CPU i (production). Tests leave executors unpinned.
    pub pin_to_cores: bool,
    /// Memory glommio locks per executor for io_uring buffers.
    pub io_memory_bytes: usize,
    /// Jobs queued from one shard to another before `invoke_on` waits:
    /// the backpressure bound of the mesh.
    pub mesh_queue_len: usize,
    /// Thread name prefix; shard threads are `<name>-<i>`.
    pub name: String,
    /// How long an idle executor spins before it parks in the kernel.
    /// Waking a parked executor (a cross-shard job, an io_uring completion)
    /// costs tens of microseconds; spinning trades CPU for that latency.
    /// Zero parks at once.
    pub spin_before_park: std::time::Duration,
}

impl RuntimeConfig {
    /// A small, unpinned runtime for tests.
    pub fn for_tests(shard_count: usize) -> Self {
        RuntimeConfig {
            shard_count,
            pin_to_cores: false,
            io_memory_bytes: 512 << 10,
            mesh_queue_len: 128,
            name: "rafka-test".to_string(),
            spin_before_park: std::time::Duration::ZERO,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("shard count must be at least 1")]
    NoShards,
    #[error("starting executor {index}: {source}")]
    Spawn {
        index: usize,
        #[source]
        source: glommio::GlommioError<()>,
    },
    #[error("executor thread {index} panicked")]
    Panicked { index: usize },
    #[error("shard could not join the channel mesh")]
    MeshJoin,
}

/// Why a cross-shard call failed. Both mean the target is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("shard {0} has stopped")]
    ShardStopped(usize),
    #[error("shard {0} dropped the call before answering")]
    ReplyDropped(usize),
    #[error("shard {0} does not exist")]
    NoSuchShard(usize),
}

/// What a shard's `main` receives: its ticket into the mesh.
pub struct ShardEnv<Ctx> {
    mesh: MeshBuilder<Job<Ctx>, Full>,
    replies: MeshBuilder<Reply, Full>,
    shard_count: usize,
}

impl<Ctx: 'static> ShardEnv<Ctx> {
    pub fn shard_count(&self) -> usize {
        self.shard_count
    }

    /// Joins the mesh; completes once every shard has joined.
    pub async fn join(self) -> Result<Router<Ctx>, RuntimeError> {
        let (senders, receivers) = self.mesh.join().await.map_err(|_| RuntimeError::MeshJoin)?;
        let (reply_senders, mut reply_receivers) = self
            .replies
            .join()
            .await
            .map_err(|_| RuntimeError::MeshJoin)?;
        let pending: Rc<Pending> = Rc::new(RefCell::new(HashMap::new()));
        let stats = Rc::new(MeshStats::default());
        // Replies are taken from the start, before this shard serves: a
        // call made while it starts up must fail, not hang, if its target
        // stops.
        for (peer, receiver) in reply_receivers.streams() {
            let pending = Rc::clone(&pending);
            let stats = Rc::clone(&stats);
            glommio::spawn_local(async move {
                while let Some(Reply {
                    token,
                    answer,
                    sent,
                }) = receiver.recv().await
                {
                    stats.reply_transit.record(sent.elapsed());
                    let waiting = pending.borrow_mut().remove(&token);
                    if let Some((_, waiting)) = waiting {
                        // The call may have given up waiting.
                        let _ = waiting.send(answer);
                    }
                }
                // The peer has stopped: the calls it still held were
                // dropped with it.
                pending
                    .borrow_mut()
                    .retain(|_, (target, _)| *target != peer);
            })
            .detach();
        }
        Ok(Router {
            shard_id: senders.peer_id(),
            shard_count: self.shard_count,
            senders,
            receivers: RefCell::new(Some(receivers)),
            reply_senders: Rc::new(reply_senders),
            pending,
            next_token: Cell::new(0),
            local: RefCell::new(Weak::new()),
            jobs_running: Rc::new(Cell::new(0)),
            stats,
        })
    }
}

/// Starts `config.shard_count` executors, runs `main` on each and blocks
/// until all return. Results come back in thread start order.
pub fn run<Ctx, Main, Fut, T>(config: &RuntimeConfig, main: Main) -> Result<Vec<T>, RuntimeError>
where
    Ctx: 'static,
    Main: Fn(ShardEnv<Ctx>) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    if config.shard_count == 0 {
        return Err(RuntimeError::NoShards);
    }
    let mesh = MeshBuilder::full(config.shard_count, config.mesh_queue_len);
    let replies = MeshBuilder::full(config.shard_count, config.mesh_queue_len);
    let mut handles = Vec::with_capacity(config.shard_count);
    for index in 0..config.shard_count {
        let placement = if config.pin_to_cores {
            Placement::Fixed(index)
        } else {
            Placement::Unbound
        };
        let env = ShardEnv {
            mesh: mesh.clone(),
            replies: replies.clone(),
            shard_count: config.shard_count,
        };
        let main = main.clone();
        let mut builder = LocalExecutorBuilder::new(placement)
            .name(&format!("{}-{index}", config.name))
            .io_memory(config.io_memory_bytes);
        if !config.spin_before_park.is_zero() {
            builder = builder.spin_before_park(config.spin_before_park);
        }
        let handle = builder
            .spawn(move || main(env))
            .map_err(|source| RuntimeError::Spawn { index, source })?;
        handles.push(handle);
    }
    handles
        .into_iter()
        .enumerate()
        .map(|(index, handle)| handle.join().map_err(|_| RuntimeError::Panicked { index }))
        .collect()
}

/// One shard's endpoint of the mesh.
pub struct Router<Ctx> {
    shard_id: usize,
    shard_count: usize,
    senders: Senders<Job<Ctx>>,
    /// Taken by [`Router::serve`].
    receivers: RefCell<Option<Receivers<Job<Ctx>>>>,
    reply_senders: Rc<Senders<Reply>>,
    /// Calls made from this shard awaiting their reply.
    pending: Rc<Pending>,
    next_token: Cell<u64>,
    /// This shard's context, for calls that target the shard itself. Weak
    /// because the context usually holds the router.
    local: RefCell<Weak<Ctx>>,
    /// Jobs from other shards taken off the mesh and not yet finished here:
    /// this shard's cross-core backlog, for metrics.
    jobs_running: Rc<Cell<u64>>,
    stats: Rc<MeshStats>,
}

impl<Ctx: 'static> Router<Ctx> {
    pub fn shard_id(&self) -> usize {
        self.shard_id
    }

    pub fn shard_count(&self) -> usize {
        self.shard_count
    }

    /// Jobs from other shards running (or ready to run) on this shard now.
    pub fn jobs_running(&self) -> u64 {
        self.jobs_running.get()
    }

    /// Calls made from this shard (local and crossing) and message
    /// transit times seen here.
    pub fn mesh_stats(&self) -> MeshStatsSnapshot {
        self.stats.snapshot()
    }

    /// Starts this shard's message pumps: from now on jobs from other shards
    /// run here against `ctx` (replies to its own calls are taken from the
    /// join on). Call once, after building the context.
    pub fn serve(&self, ctx: &Rc<Ctx>) {
        *self.local.borrow_mut() = Rc::downgrade(ctx);
        let Some(mut receivers) = self.receivers.borrow_mut().take() else {
            return;
        };
        for (_peer, receiver) in receivers.streams() {
            let ctx = Rc::downgrade(ctx);
            let running = Rc::clone(&self.jobs_running);
            let reply_senders = Rc::clone(&self.reply_senders);
            let stats = Rc::clone(&self.stats);
            glommio::spawn_local(async move {
                while let Some(job) = receiver.recv().await {
                    let Job {
                        work,
                        from,
                        token,
                        sent,
                    } = job;
                    stats.job_transit.record(sent.elapsed());
                    let Some(ctx) = ctx.upgrade() else {
                        // Stopping: the caller learns its call was dropped.
                        let _ = reply_senders.try_send_to(
                            from,
                            Reply {
                                token,
                                answer: None,
                                sent: Instant::now(),
                            },
                        );
                        continue;
                    };
                    let work = work(ctx);
                    let running = Rc::clone(&running);
                    let reply_senders = Rc::clone(&reply_senders);
                    running.set(running.get() + 1);
                    glommio::spawn_local(async move {
                        let answer = work.await;
                        running.set(running.get().saturating_sub(1));
                        // The caller may have stopped; nothing to do then.
                        let reply = Reply {
                            token,
                            answer: Some(answer),
                            sent: Instant::now(),
                        };
                        let _ = reply_senders.send_to(from, reply).await;
                    })
                    .detach();
                }
            })
            .detach();
        }
    }

    /// Runs `work` on `shard` with that shard's context and returns its
    /// result. Waits when the target's queue from this shard is full.
    pub async fn invoke_on<F, Fut, R>(&self, shard: usize, work: F) -> Result<R, RouteError>
    where
        F: FnOnce(Rc<Ctx>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        if shard >= self.shard_count {
            return Err(RouteError::NoSuchShard(shard));
        }
        if shard == self.shard_id {
            self.stats.local_calls.set(self.stats.local_calls.get() + 1);
            let ctx = self.local.borrow().upgrade();
            let ctx = ctx.ok_or(RouteError::ShardStopped(shard))?;
            return Ok(work(ctx).await);
        }
        let token = self.next_token.get();
        self.next_token.set(token.wrapping_add(1));
        let (reply, answer) = futures_channel::oneshot::channel();
        self.pending.borrow_mut().insert(token, (shard, reply));
        // Forgets the call if this future is dropped before its reply.
        let _waiting = PendingGuard {
            pending: &self.pending,
            token,
        };
        let job = Job {
            work: Box::new(move |ctx| Box::pin(async move { Box::new(work(ctx).await) as Answer })),
            from: self.shard_id,
            token,
            sent: Instant::now(),
        };
        self.stats
            .remote_calls
            .set(self.stats.remote_calls.get() + 1);
        self.senders
            .send_to(shard, job)
            .await
            .map_err(|_| RouteError::ShardStopped(shard))?;
        match answer.await {
            Ok(Some(answer)) => match answer.downcast::<R>() {
                Ok(result) => Ok(*result),
                // A token is answered by the call it was made for.
                Err(_) => Err(RouteError::ReplyDropped(shard)),
            },
            Ok(None) | Err(_) => Err(RouteError::ReplyDropped(shard)),
        }
    }

    /// Runs `work` on every shard concurrently; results in shard order.
    pub async fn invoke_on_all<F, Fut, R>(&self, work: F) -> Vec<Result<R, RouteError>>
    where
        F: FnOnce(Rc<Ctx>) -> Fut + Send + Clone + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        let calls = (0..self.shard_count).map(|shard| self.invoke_on(shard, work.clone()));
        join_all(calls).await
    }

    /// Stops sending: peers' pumps for this shard end once drained.
    pub fn close(&self) {
        self.senders.close();
    }
}

/// Removes a call from [`Router::pending`] when its `invoke_on` ends,
/// answered or dropped.
struct PendingGuard<'a> {
    pending: &'a Pending,
    token: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending.borrow_mut().remove(&self.token);
    }
}
