//! The `technic` binary: parse flags, load settings, start tracing, run the command.

use std::collections::HashMap;

use clap::Parser;

fn main() {
    let cli = technic::cli::Cli::parse();
    // The environment is read here, once, and passed in.
    let env: HashMap<String, String> = std::env::vars().collect();
    let mut settings = match technic::cli::load_settings(&cli, &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error[INVALID_CONFIG]: {e}");
            std::process::exit(2);
        }
    };
    settings.cluster.host = technic::node::hostname(env.get("HOSTNAME").map(String::as_str));
    technic::telemetry::init_tracing(
        settings.log.format,
        &settings.log.level,
        env.get("RUST_LOG").map(String::as_str),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error[INTERNAL]: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(technic::cli::run(cli, settings));
    // Do not wait for idle actors or blocking tasks: the command is complete.
    runtime.shutdown_background();
    std::process::exit(code);
}
