//! Entry point of the scale-out benchmark in perf/scaleout_bench.rs (a test target so it can
//! reuse the cluster harness and the server binary Cargo builds). Ignored by default:
//! `cargo test --release --test scaleout_bench -- --ignored --nocapture`.

#[path = "../perf/scaleout_bench.rs"]
mod bench;
#[path = "common/cluster.rs"]
mod cluster;
mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture (release build recommended)"]
async fn scaleout_fanout_benchmark() {
    bench::run().await;
}
