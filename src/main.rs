//! The `technic` binary: parse flags, read the environment once, load settings, start
//! tracing, run the command.

use std::collections::HashMap;

use clap::Parser;
use technic::cli::{report_error, say};
use technic::config::{log_filter_problems, LogFormat};
use technic::error::{ErrorCode, UserError};

fn invalid(message: String, hint: &str) -> ! {
    let e = UserError::new(ErrorCode::InvalidConfig, message, vec![hint.into()]);
    std::process::exit(report_error(&e));
}

fn main() {
    let cli = technic::cli::Cli::parse();
    // The environment is read here, once, and passed in: the settings' TECHNIC_* variables
    // and POLYGON_API_KEY (through the settings loader), RUST_LOG, HOSTNAME.
    let env: HashMap<String, String> = std::env::vars().collect();
    // JSON log mode applies to a settings error too, when it was asked for.
    say::json_mode(
        cli.log_format == Some(LogFormat::Json)
            || env
                .get("TECHNIC_LOG__FORMAT")
                .is_some_and(|f| f.trim().eq_ignore_ascii_case("json")),
    );
    let mut settings = match technic::cli::load_settings(&cli, &env) {
        Ok(s) => s,
        Err(e) => invalid(
            e.to_string(),
            "every setting is documented in configs/default.toml",
        ),
    };
    say::json_mode(settings.log.format == LogFormat::Json);
    let rust_log = env.get("RUST_LOG").map(String::as_str);
    if let Some(filter) = rust_log {
        let problems = log_filter_problems("RUST_LOG", filter);
        if !problems.is_empty() {
            invalid(
                format!("invalid environment:\n  - {}", problems.join("\n  - ")),
                "e.g. RUST_LOG=info or RUST_LOG=technic::cluster=debug,warn",
            );
        }
    }
    settings.cluster.host = technic::node::hostname(env.get("HOSTNAME").map(String::as_str));
    technic::telemetry::init_tracing(settings.log.format, &settings.log.level, rust_log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e = UserError::internal(&format!("cannot start the async runtime: {e}"));
            std::process::exit(report_error(&e));
        }
    };
    let code = runtime.block_on(technic::cli::run(cli, settings));
    // Do not wait for idle actors or blocking tasks: the command is complete.
    runtime.shutdown_background();
    std::process::exit(code);
}
