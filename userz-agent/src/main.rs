//! `userz-agent --task /userz/task.json`: the binary a sandbox starts.
//!
//! Reads the [`AgentTask`], builds the model provider from `task.model`, runs
//! the loop, and writes the transcript and the result file. Exits 0 whenever
//! the result file was written (whatever the stop), 1 when even that failed,
//! 2 when the task file could not be read.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use userz_core::agent::{AgentStop, AgentTask};
use userz_core::ports::model::ModelProvider;

/// The Userz coding agent (runs inside a sandbox).
#[derive(Debug, Parser)]
#[command(name = "userz-agent", version, about)]
struct Args {
    /// The task file (JSON `AgentTask`).
    #[arg(long, default_value = "/userz/task.json")]
    task: PathBuf,
    /// Instead of running: write the run's commits as a git pack to this
    /// file (and the branch head to `FILE.head`), for a sandbox whose host
    /// reads results only as packs (the microVM backend).
    #[arg(long, requires_all = ["base", "branch", "workspace"])]
    export_pack: Option<PathBuf>,
    /// With `--export-pack`: the commit the workspace was prepared at.
    #[arg(long)]
    base: Option<String>,
    /// With `--export-pack`: the run's branch.
    #[arg(long)]
    branch: Option<String>,
    /// With `--export-pack`: the workspace.
    #[arg(long)]
    workspace: Option<PathBuf>,
}

fn export(args: &Args, out: &std::path::Path) -> ExitCode {
    let (Some(base), Some(branch), Some(ws)) = (&args.base, &args.branch, &args.workspace) else {
        return ExitCode::from(2);
    };
    let written = userz_agent::GitRepo::open(ws)
        .and_then(|repo| repo.export_pack(base, branch))
        .map_err(|e| e.to_string())
        .and_then(|(head, pack)| {
            let mut head_path = out.as_os_str().to_owned();
            head_path.push(".head");
            std::fs::write(out, pack)
                .and_then(|()| std::fs::write(PathBuf::from(head_path), head))
                .map_err(|e| e.to_string())
        });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("userz-agent: export: {e}");
            ExitCode::from(1)
        }
    }
}

/// The model provider for `task.model`: no key (the egress proxy's model route
/// adds it outside the sandbox), through the proxy's Unix socket when set.
fn provider(task: &AgentTask) -> Result<Arc<dyn ModelProvider>, String> {
    userz_model::provider_from_endpoint(&task.model).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(out) = &args.export_pack {
        return export(&args, out);
    }
    let task = match userz_agent::read_task(&args.task) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("userz-agent: {} ({})", e, e.code());
            return ExitCode::from(2);
        }
    };
    let written = match provider(&task) {
        Err(message) => userz_agent::finish_without_model(&task, "none", AgentStop::ModelError { message }),
        Ok(model) => match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Err(e) => userz_agent::finish_without_model(
                &task,
                model.provider_name(),
                AgentStop::Failed { reason: format!("runtime: {e}") },
            ),
            Ok(rt) => rt.block_on(userz_agent::run_agent(&task, model)).map(|o| o.result),
        },
    };
    match written {
        Ok(result) => {
            eprintln!(
                "userz-agent: stopped {:?} after {} steps, {} commits",
                result.stop, result.steps, result.commits
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("userz-agent: {} ({})", e, e.code());
            ExitCode::from(1)
        }
    }
}
