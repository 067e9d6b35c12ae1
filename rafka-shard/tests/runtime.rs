//! The shard runtime: executors join a mesh and run work on each other.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::Bytes;
use rafka_shard::runtime::{run, RouteError, Router, RuntimeConfig, ShardEnv};

/// A shard's context in these tests: its router and some owned state.
struct Ctx {
    router: Router<Ctx>,
    counter: Cell<u64>,
    kept: RefCell<Vec<Bytes>>,
    stop: RefCell<Option<futures_channel::oneshot::Sender<()>>>,
}

/// Each shard builds its context, serves, and shard 0 drives the scenario
/// while the others wait for shard 0 to tell them to stop.
async fn shard_main(env: ShardEnv<Ctx>) -> (usize, u64) {
    let router = env.join().await.expect("join mesh");
    let (stop_tx, stop_rx) = futures_channel::oneshot::channel::<()>();
    let ctx = Rc::new(Ctx {
        router,
        counter: Cell::new(0),
        kept: RefCell::new(Vec::new()),
        stop: RefCell::new(Some(stop_tx)),
    });
    ctx.router.serve(&ctx);
    if ctx.router.shard_id() == 0 {
        drive(&ctx).await;
        ctx.router
            .invoke_on_all(|ctx: Rc<Ctx>| async move {
                if let Some(stop) = ctx.stop.borrow_mut().take() {
                    let _ = stop.send(());
                }
            })
            .await;
    }
    let _ = stop_rx.await;
    (ctx.router.shard_id(), ctx.counter.get())
}

async fn drive(ctx: &Rc<Ctx>) {
    let count = ctx.router.shard_count();
    // Every shard reports its own id, in order.
    let ids: Vec<usize> = ctx
        .router
        .invoke_on_all(|ctx: Rc<Ctx>| async move { ctx.router.shard_id() })
        .await
        .into_iter()
        .map(|r| r.expect("invoke"))
        .collect();
    assert_eq!(ids, (0..count).collect::<Vec<_>>());

    // 100 increments on each shard, issued concurrently from shard 0.
    for shard in 0..count {
        let calls = (0..100).map(|_| {
            ctx.router.invoke_on(shard, |ctx: Rc<Ctx>| async move {
                ctx.counter.set(ctx.counter.get() + 1);
            })
        });
        for result in futures_util::future::join_all(calls).await {
            result.expect("increment");
        }
    }

    // Record bytes cross cores as the same allocation: no copy.
    let payload = Bytes::from(vec![7u8; 4096]);
    let sent_ptr = payload.as_ptr() as usize;
    let last = count - 1;
    let seen_ptr = ctx
        .router
        .invoke_on(last, move |ctx: Rc<Ctx>| async move {
            let ptr = payload.as_ptr() as usize;
            ctx.kept.borrow_mut().push(payload);
            ptr
        })
        .await
        .expect("ship bytes");
    assert_eq!(seen_ptr, sent_ptr);

    // Every call so far is counted on shard 0, local or crossing cores:
    // the id round (one per shard), 100 increments per shard, the bytes.
    let remote = count as u64 - 1;
    let stats = ctx.router.mesh_stats();
    let bytes_remote = u64::from(last != 0);
    assert_eq!(stats.local_calls, 1 + 100 + (1 - bytes_remote));
    assert_eq!(stats.remote_calls, remote + 100 * remote + bytes_remote);
    // Each remote call came back with a reply whose transit was timed.
    assert_eq!(stats.reply_transit.count(), stats.remote_calls);
    assert_eq!(stats.job_transit.count(), 0, "no shard called shard 0");
    // The last shard timed the arrival of every job shard 0 sent it,
    // this one included.
    let arrived = ctx
        .router
        .invoke_on(last, |ctx: Rc<Ctx>| async move {
            ctx.router.mesh_stats().job_transit.count()
        })
        .await
        .expect("stats");
    let sent_to_last = match last {
        0 => 0,
        _ => 1 + 100 + 1 + 1,
    };
    assert_eq!(arrived, sent_to_last);

    assert_eq!(
        ctx.router.invoke_on(count, |_ctx: Rc<Ctx>| async {}).await,
        Err(RouteError::NoSuchShard(count))
    );
}

fn check(shards: usize) {
    let mut config = RuntimeConfig::for_tests(shards);
    config.mesh_queue_len = 4; // small, so the 100 concurrent calls hit backpressure
    let mut results = run(&config, shard_main).expect("runtime");
    results.sort();
    let expected: Vec<(usize, u64)> = (0..shards).map(|id| (id, 100)).collect();
    assert_eq!(results, expected);
}

#[test]
fn one_shard_runs_work_in_place() {
    check(1);
}

#[test]
fn three_shards_route_work_to_owners() {
    check(3);
}

#[test]
fn zero_shards_is_an_error() {
    let config = RuntimeConfig::for_tests(0);
    assert!(run(&config, shard_main).is_err());
}

/// Shard 1 calls shard 0 before shard 0 serves; shard 0 then stops
/// without ever serving. The call fails instead of waiting forever.
async fn stop_before_serving(env: ShardEnv<Ctx>) -> Option<RouteError> {
    let router = env.join().await.expect("join mesh");
    if router.shard_id() == 0 {
        // Stops at once: its router, with the call queued, goes.
        return None;
    }
    let ctx = Rc::new(Ctx {
        router,
        counter: Cell::new(0),
        kept: RefCell::new(Vec::new()),
        stop: RefCell::new(None),
    });
    let outcome = ctx
        .router
        .invoke_on(0, |ctx: Rc<Ctx>| async move { ctx.counter.get() })
        .await;
    outcome.err()
}

#[test]
fn a_call_to_a_shard_that_stops_without_serving_fails() {
    let config = RuntimeConfig::for_tests(2);
    let results = run(&config, stop_before_serving).expect("runtime");
    let failure = results.into_iter().flatten().next().expect("a failed call");
    assert!(
        matches!(
            failure,
            RouteError::ReplyDropped(0) | RouteError::ShardStopped(0)
        ),
        "{failure:?}"
    );
}
