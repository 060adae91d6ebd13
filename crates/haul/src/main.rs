//! The `haul` binary: parses the command line into typed options and runs the chosen command.

mod accounts;
mod cli;
mod client;
mod config;
mod formats;
mod get;
mod logs;
mod progress_ui;
mod serve;
mod signals;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::with_implied_get(std::env::args_os());
    // The config file's values go in as flags where neither the command line nor the environment set them.
    let loaded = config::Config::load(&args).and_then(|config| {
        let (args, _) = config.apply(args.clone())?;
        Ok((config, args))
    });
    let (config, args) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("haul: error: {error:#}");
            return ExitCode::from(2);
        }
    };
    let cli = cli::Cli::parse_from(&args);
    if let cli::Command::Config = cli.command {
        return match config::print(&config, args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("haul: error: {error:#}");
                ExitCode::from(2)
            }
        };
    }
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
            // Answered before the runtime starts.
            cli::Command::Config => Ok(ExitCode::SUCCESS),
            cli::Command::Get(args) => get::run(args).await,
            cli::Command::Formats(args) => formats::run(args).await,
            cli::Command::Serve(args) => serve::serve(args, log_format).await.map(|()| ExitCode::SUCCESS),
            cli::Command::Token(args) => serve::token(args).await.map(|()| ExitCode::SUCCESS),
            cli::Command::Migrate { store } => serve::migrate(store).await.map(|()| ExitCode::SUCCESS),
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
            cli::Command::Limit { remote, args } => client::limit(remote, args).await,
            cli::Command::Webhook { remote, command } => client::webhook(remote, command).await,
            cli::Command::Rule { remote, command } => client::rule(remote, command).await,
            cli::Command::Archive { remote, command } => client::archive(remote, command).await,
            cli::Command::Cookies { remote, command } => client::cookies(remote, command).await,
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
