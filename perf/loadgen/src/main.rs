//! Fan-out load generator for discodeit.
//!
//! `loadgen sse ...`   K SSE streams on `GET /api/sse`; an admin creates public channels at R/s,
//!                     each a `channels.refresh` event to every stream; latency = receive time −
//!                     the event id's UUIDv7 timestamp.
//! `loadgen stomp ...` N STOMP subscribers on one public channel over raw WebSocket (or SockJS's
//!                     websocket transport, `--transport sockjs`); M publishers
//!                     SEND `/pub/messages` at R/s in total; latency = receive − send time.
//! `loadgen table FILE...` prints the `RESULT` lines of earlier runs as a Markdown table.
//! `loadgen best MAX_P99_MS FILE...` prints, per publisher and subscriber count, the highest
//!                     rate that kept p99 within MAX_P99_MS and lost nothing.
//!
//! Options (sse and stomp): --url http://127.0.0.1:8080 --server-pid PID (required) --conns N
//! --per-user 100 --rate 10[,50...] --duration 10 --workers ceil(N/9000) --sources 8
//! --connect-parallel 64 --settle 3 --drain-idle 3 --admin-user admin
//! --admin-password bench-admin-pw-9! --user-prefix bsse|bstomp; stomp only: --publishers 40,
//! --transport raw|sockjs (how subscribers connect; publishers use raw WebSocket),
//! --mode messages (SEND /pub/messages: a database insert per message) | broker (SEND to a
//! plain `/sub/...` broker destination: the fan-out alone), --max-p99-ms X (stop the rate
//! ladder after the first rate whose p99 exceeds X ms or that lost a message), --warmup S
//! (publish at the first rate for S seconds, unmeasured, before the ladder).

mod args;
mod bench;
mod net;
mod rest;
mod sse;
mod stats;
mod stomp;
mod worker;
mod wsclient;

/// Errors of a benchmark run: reported and fatal, so one boxed type is enough.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first().cloned() else {
        eprintln!(
            "usage: loadgen sse|stomp [--option value]... | loadgen table FILE... | loadgen best MAX_P99_MS FILE..."
        );
        std::process::exit(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    };
    let result: Res<()> = runtime.block_on(async {
        match cmd.as_str() {
            "worker" => worker::main().await,
            "table" => bench::table(&argv[1..]),
            "best" => bench::best(&argv[1..]),
            "sse" | "stomp" => {
                let kind = if cmd == "sse" {
                    worker::Kind::Sse
                } else {
                    worker::Kind::Stomp
                };
                let args = args::Args::parse(&argv[1..])?;
                bench::run(kind, &args).await
            }
            other => Err(format!("unknown command {other:?}").into()),
        }
    });
    if let Err(e) = result {
        eprintln!("loadgen {cmd}: {e}");
        std::process::exit(1);
    }
}
