//! Shards: one glommio executor per core, joined in a full channel mesh.
//!
//! Every shard runs the same `main` future on its own thread. After joining
//! the mesh a shard knows its id (its mesh peer id, `0..shard_count`) and
//! gets a [`Router`], through which any shard runs work on any other:
//! [`Router::invoke_on`] ships a `Send` closure to the target shard's message
//! pump, which runs it there as a local task against that shard's context and
//! sends the result back over a oneshot channel. Only the owner ever touches
//! its state, so no request path needs a lock. Work for the calling shard
//! itself runs in place, without a channel hop.
//!
//! Lives on: one `Router` per shard, never shared across threads.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};

use futures_util::future::join_all;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use glommio::{LocalExecutorBuilder, Placement};

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

/// Work shipped to a shard: built from a `Send` closure on the caller, run
/// as a local (non-`Send`) future on the target against its context.
type Job<Ctx> = Box<dyn FnOnce(Rc<Ctx>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

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
    shard_count: usize,
}

impl<Ctx: 'static> ShardEnv<Ctx> {
    pub fn shard_count(&self) -> usize {
        self.shard_count
    }

    /// Joins the mesh; completes once every shard has joined.
    pub async fn join(self) -> Result<Router<Ctx>, RuntimeError> {
        let (senders, receivers) = self.mesh.join().await.map_err(|_| RuntimeError::MeshJoin)?;
        Ok(Router {
            shard_id: senders.peer_id(),
            shard_count: self.shard_count,
            senders,
            receivers: RefCell::new(Some(receivers)),
            local: RefCell::new(Weak::new()),
            jobs_running: Rc::new(Cell::new(0)),
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
    let mut handles = Vec::with_capacity(config.shard_count);
    for index in 0..config.shard_count {
        let placement = if config.pin_to_cores {
            Placement::Fixed(index)
        } else {
            Placement::Unbound
        };
        let env = ShardEnv {
            mesh: mesh.clone(),
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
    receivers: RefCell<Option<Receivers<Job<Ctx>>>>,
    /// This shard's context, for calls that target the shard itself. Weak
    /// because the context usually holds the router.
    local: RefCell<Weak<Ctx>>,
    /// Jobs from other shards taken off the mesh and not yet finished here:
    /// this shard's cross-core backlog, for metrics.
    jobs_running: Rc<Cell<u64>>,
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

    /// Starts this shard's message pumps: from now on jobs from other shards
    /// run here against `ctx`. Call once, after building the context.
    pub fn serve(&self, ctx: &Rc<Ctx>) {
        *self.local.borrow_mut() = Rc::downgrade(ctx);
        let Some(mut receivers) = self.receivers.borrow_mut().take() else {
            return;
        };
        for (_peer, receiver) in receivers.streams() {
            let ctx = Rc::downgrade(ctx);
            let running = Rc::clone(&self.jobs_running);
            glommio::spawn_local(async move {
                while let Some(job) = receiver.recv().await {
                    let Some(ctx) = ctx.upgrade() else { break };
                    let job = job(ctx);
                    let running = Rc::clone(&running);
                    running.set(running.get() + 1);
                    glommio::spawn_local(async move {
                        job.await;
                        running.set(running.get().saturating_sub(1));
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
            let ctx = self.local.borrow().upgrade();
            let ctx = ctx.ok_or(RouteError::ShardStopped(shard))?;
            return Ok(work(ctx).await);
        }
        let (reply, answer) = futures_channel::oneshot::channel();
        let job: Job<Ctx> = Box::new(move |ctx| {
            Box::pin(async move {
                // The caller may have given up waiting; nothing to do then.
                let _ = reply.send(work(ctx).await);
            })
        });
        self.senders
            .send_to(shard, job)
            .await
            .map_err(|_| RouteError::ShardStopped(shard))?;
        answer.await.map_err(|_| RouteError::ReplyDropped(shard))
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
