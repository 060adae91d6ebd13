//! The `haul` binary: parses the command line into typed options and runs the chosen command.

mod accounts;
mod cli;
mod client;
mod get;
mod logs;
mod progress_ui;
mod serve;
mod signals;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse_from(cli::with_implied_get(std::env::args_os()));
    let log_format = cli.log_format;
    logs::init(cli.verbose, log_format, matches!(cli.command, cli::Command::Serve(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("haul: error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            cli::Command::Get(args) => get::run(args).await,
            cli::Command::Serve(args) => serve::serve(args, log_format).await.map(|()| ExitCode::SUCCESS),
            cli::Command::Token(args) => serve::token(args).await.map(|()| ExitCode::SUCCESS),
            cli::Command::Account { store, command } => {
                accounts::account(store, command).await.map(|()| ExitCode::SUCCESS)
            }
            cli::Command::Key { store, command } => accounts::key(store, command).await.map(|()| ExitCode::SUCCESS),
            cli::Command::Add { remote, args } => client::add(remote, args).await,
            cli::Command::Ls { remote, args } => client::ls(remote, args).await,
            cli::Command::Pause { remote, args } => client::pause(remote, args).await,
            cli::Command::Resume { remote, args } => client::resume(remote, args).await,
            cli::Command::Retry { remote, args } => client::retry(remote, args).await,
            cli::Command::Set { remote, args } => client::set(remote, args).await,
            cli::Command::Rm { remote, args } => client::rm(remote, args).await,
        }
    });
    match result {
        Ok(code) => code,
        // A log collector reading JSON lines gets the last one as JSON too.
        Err(error) if log_format == logs::LogFormat::Json => {
            tracing::error!("haul: error: {error:#}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("haul: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
