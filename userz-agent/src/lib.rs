//! # userz-agent
//!
//! The coding agent that runs inside a run's sandbox (G5): a model loop whose
//! only tools are workspace-confined file tools and in-process git.
//!
//! - [`run_agent`] takes an [`AgentTask`] and a tool-calling
//!   [`ModelProvider`], sends the system prompt, the task and the enabled
//!   tools' JSON Schemas, runs each requested tool call in order, sends the
//!   results back (cut at 64 KiB), and repeats until the model ends its turn
//!   without tool calls ([`AgentStop::Completed`]), the step or token budget
//!   runs out, or the model fails. The transcript (JSON lines of
//!   [`TranscriptEntry`](userz_core::agent::TranscriptEntry)) is written and
//!   flushed as the run goes; the [`AgentResult`](userz_core::agent::AgentResult)
//!   is written to `task.result` at the end and returned in an [`AgentOutcome`].
//! - A tool call never panics the loop: an unknown tool, bad arguments or a
//!   refused path becomes a tool result with `is_error: true` and a stable
//!   code (`unknown_tool`, `bad_arguments`, `absolute_path`,
//!   `parent_component`, `escapes_workspace`, `git_internal`, …).
//! - With `ModelEndpoint::guided` (small models), the agent shows the model
//!   the workspace's files and names the tool of each turn (`write_file`,
//!   `git_add`, `git_commit`), paths narrowed to the workspace's files
//!   ([`guided`]).
//! - Every path the model names goes through [`Workspace`]: absolute paths and
//!   `..` are refused, and every file access goes through a `cap-std`
//!   directory handle, so no symlink leads outside the workspace.
//! - Git is libgit2 in-process ([`GitRepo`]): no program is ever started, no
//!   hook, fsmonitor, filter driver or external diff runs, and only the
//!   repository's own config file is consulted.
//!
//! **Nothing in this crate spawns a process** (a test scans the source, and
//! another checks the dependency tree for process-spawning crates).
//!
//! ```no_run
//! # async fn demo(model: std::sync::Arc<dyn userz_core::ports::model::ModelProvider>) -> Result<(), userz_agent::AgentError> {
//! let task = userz_agent::read_task(std::path::Path::new("/userz/task.json"))?;
//! let outcome = userz_agent::run_agent(&task, model).await?;
//! println!("{:?} after {} steps", outcome.result.stop, outcome.result.steps);
//! # Ok(()) }
//! ```
//!
//! [`AgentTask`]: userz_core::agent::AgentTask
//! [`ModelProvider`]: userz_core::ports::model::ModelProvider
//! [`AgentStop::Completed`]: userz_core::agent::AgentStop::Completed

pub mod git;
pub mod guided;
pub mod run;
pub mod toolbox;
pub mod tools;

pub use git::{CommitInfo, DiffText, GitRepo, StatusEntry};
pub use run::{
    cap_text, finish_without_model, read_task, run_agent, run_agent_with, write_result, AgentError, AgentOptions,
    AgentOutcome, Transcript,
};
pub use toolbox::{ToolBox, ToolOutput, ALL_TOOLS};
pub use tools::{ToolError, Workspace};
