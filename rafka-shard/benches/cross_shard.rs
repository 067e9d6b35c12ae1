//! A cross-shard round trip through the runtime's channel mesh: shard 0
//! ships a closure to shard 1 with `Router::invoke_on` and awaits its
//! answer. Measured one call at a time (the latency a request pays per hop)
//! and 64 calls in flight (the mesh's throughput). Each timing run starts a
//! fresh 2-shard runtime; only shard 0's calls are timed.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::future::join_all;
use rafka_shard::runtime::{run, Router, RuntimeConfig, ShardEnv};

const IN_FLIGHT: u64 = 64;

struct Ctx {
    router: Router<Ctx>,
    calls: Cell<u64>,
    stop: Cell<Option<futures_channel::oneshot::Sender<()>>>,
}

/// Shard 0 times `iters` round trips of `width` concurrent calls to shard
/// 1, then stops it; returns shard 0's timing.
async fn shard_main(env: ShardEnv<Ctx>, iters: u64, width: u64) -> Duration {
    let router = env.join().await.expect("join mesh");
    let (stop_tx, stop_rx) = futures_channel::oneshot::channel::<()>();
    let ctx = Rc::new(Ctx {
        router,
        calls: Cell::new(0),
        stop: Cell::new(Some(stop_tx)),
    });
    ctx.router.serve(&ctx);
    if ctx.router.shard_id() != 0 {
        let _ = stop_rx.await;
        return Duration::ZERO;
    }
    let start = Instant::now();
    for _ in 0..iters {
        let calls = (0..width).map(|i| {
            ctx.router.invoke_on(1, move |ctx: Rc<Ctx>| async move {
                ctx.calls.set(ctx.calls.get() + 1);
                i
            })
        });
        for answer in join_all(calls).await {
            answer.expect("round trip");
        }
    }
    let elapsed = start.elapsed();
    ctx.router
        .invoke_on(1, |ctx: Rc<Ctx>| async move {
            if let Some(stop) = ctx.stop.take() {
                let _ = stop.send(());
            }
        })
        .await
        .expect("stop shard 1");
    elapsed
}

fn timed(iters: u64, width: u64) -> Duration {
    let mut config = RuntimeConfig::for_tests(2);
    config.name = "bench-shard".to_owned();
    let timings = run(&config, move |env| shard_main(env, iters, width)).expect("runtime");
    timings[0]
}

fn bench_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("cross_shard");
    group.throughput(Throughput::Elements(1));
    group.bench_function("invoke_on_round_trip", |b| {
        b.iter_custom(|iters| timed(iters, 1))
    });
    group.throughput(Throughput::Elements(IN_FLIGHT));
    group.bench_function("invoke_on_64_in_flight", |b| {
        b.iter_custom(|iters| timed(iters, IN_FLIGHT))
    });
    group.finish();
}

criterion_group!(benches, bench_round_trip);
criterion_main!(benches);
