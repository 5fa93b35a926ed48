//! `userz-server`: the reference server and its admin CLI.
//!
//! With no arguments it serves on embedded defaults (`127.0.0.1:8080`, data in
//! `./.userz-data`), creating a demo org, App and repository on first start.
//! `userz-server admin …` runs the operator commands (see `--help`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use userz_reference_server::{start, Config};

#[derive(Debug, Parser)]
#[command(name = "userz-server", about = "The Userz reference server and its admin commands")]
struct Cli {
    /// TOML configuration file (USERZ_* environment variables override it).
    #[arg(long, short = 'c', env = "USERZ_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API, dashboard and widget (the default).
    Serve,
    /// Operator commands on the data directory (works with the server running).
    Admin {
        #[command(subcommand)]
        command: Box<userz_reference_server::admin_cli::AdminCommand>,
    },
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Admin commands print their own outcome; keep the log to warnings.
    let default_filter = if matches!(cli.command, Some(Command::Admin { .. })) { "warn" } else { "info,userz=info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("USERZ_LOG").unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Admin { command } => ExitCode::from(userz_reference_server::admin_cli::main(&config, *command).await),
    }
}

async fn serve(config: Config) -> ExitCode {
    let server = match start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("userz server listening on {}", server.public_url);
    println!("  dashboard:  {}/", server.public_url);
    if let Some(d) = &server.demo {
        println!("  demo page:  {}/demo", server.public_url);
        println!("  public key: {}", d.public_key);
        println!("  sign in as: {}", d.owner_email);
    }
    if let Some(why) = &server.sandbox_unavailable {
        println!("  agent runs: unavailable ({why})");
    }
    if let Some(curl) = server.curl_line() {
        println!("submit feedback:\n  {curl}");
    }
    match server.run_until_signal().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
