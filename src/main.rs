//! The `discodeit` binary: read the configuration from the environment and run the server.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{}", discodeit::config::help());
        return ExitCode::SUCCESS;
    }
    if let Some(other) = args.first() {
        eprintln!("discodeit: unknown argument {other:?} (try --help)");
        return ExitCode::from(2);
    }
    let config = match discodeit::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("discodeit: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    discodeit::telemetry::init(config.log_format, config.metrics_enabled);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("discodeit: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(discodeit::app::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("discodeit: {e}");
            ExitCode::from(1)
        }
    }
}
