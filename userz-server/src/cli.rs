//! The `userz-server` command line: `serve` (the default), `admin …` and `eval …`.
//!
//! A binary is one line over [`main`]; the reference server
//! (`examples/reference-server`) is exactly that.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{admin_cli, start, Config};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "userz-server", about = "The Userz reference server and its admin commands")]
pub struct Cli {
    /// TOML configuration file (USERZ_* environment variables override it).
    #[arg(long, short = 'c', env = "USERZ_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to run.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// A sub-command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API, dashboard and widget (the default).
    Serve,
    /// Operator commands on the configured store (works with the server running).
    Admin {
        /// The admin command.
        #[command(subcommand)]
        command: Box<admin_cli::AdminCommand>,
    },
    /// Measure the configured pipeline on labelled data (`eval classifier --data FILE.jsonl`).
    Eval {
        /// The evaluation.
        #[command(subcommand)]
        command: crate::eval::EvalCommand,
    },
}

/// Parses the process arguments, sets up logging (`USERZ_LOG` filters) and
/// runs the command. Exit codes: 0 done, 1 failure, 2 bad configuration or
/// input the operator can correct.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Admin commands print their own outcome; keep the log to warnings.
    let default_filter = if matches!(cli.command, Some(Command::Admin { .. } | Command::Eval { .. })) {
        "warn"
    } else {
        "info,userz=info"
    };
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
        Command::Admin { command } => ExitCode::from(admin_cli::main(&config, *command).await),
        Command::Eval { command } => ExitCode::from(crate::eval::main(&config, command).await),
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
    print!("{}", server.readiness);
    println!("  dashboard:  {}/", server.public_url);
    if let Some(d) = &server.demo {
        println!("  demo page:  {}/demo", server.public_url);
        println!("  public key: {}", d.public_key);
        println!("  sign in as: {}", d.owner_email);
    }
    if !server.readiness.main_job_ready() {
        println!("  reports are accepted and classified, but runs will fail until every NOT READY part is fixed");
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
