//! The agent protocol: the files a sandbox adapter hands the coding agent and
//! the files the agent leaves behind. Plain data, shared by the host side
//! (`userz-sandbox-*`) and the agent binary (`userz-agent`).
//!
//! Inside the sandbox (paths fixed by the adapter):
//! - [`AgentTask`] as JSON, read-only (default `/userz/task.json`);
//! - the transcript, JSON lines of [`TranscriptEntry`], written by the agent;
//! - [`AgentResult`] as JSON, written by the agent when it stops.
//!
//! No secret is ever part of a task: the model endpoint is the egress proxy's
//! model route, which adds the provider key outside the sandbox.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ids::RunId;
use crate::ports::sandbox::Usage;

/// Which wire format the model endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelApi {
    /// OpenAI-compatible Chat Completions (`POST {base_url}/chat/completions`).
    OpenaiCompatible,
    /// Anthropic Messages (`POST {base_url}/v1/messages`).
    Anthropic,
}

/// Where the agent sends model requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEndpoint {
    /// Wire format.
    pub api: ModelApi,
    /// Model id.
    pub model: String,
    /// Base URL (plain `http://` to the egress proxy's model route host).
    pub base_url: String,
    /// Unix socket the HTTP connection goes through (the egress proxy), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_socket: Option<PathBuf>,
    /// Guided turns for small models: the agent shows the model the
    /// workspace's files and names the tool of each turn (write a file,
    /// stage, commit), with the file paths limited to the workspace's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guided: bool,
}

/// Budgets the agent stops at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentBudget {
    /// Model turns.
    pub max_steps: u32,
    /// Tokens (in + out) over the whole run.
    pub max_tokens: u64,
    /// Output cap of one model call.
    pub max_output_tokens: u32,
}

impl Default for AgentBudget {
    fn default() -> Self {
        Self { max_steps: 40, max_tokens: 400_000, max_output_tokens: 4_096 }
    }
}

/// Everything the agent needs for one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentTask {
    /// The run.
    pub run: RunId,
    /// Trusted system text.
    pub system_prompt: String,
    /// The task, with the report inside its untrusted wrapper.
    pub prompt: String,
    /// Model endpoint.
    pub model: ModelEndpoint,
    /// Budgets.
    pub budget: AgentBudget,
    /// Enabled tool names (empty: all of `read_file`, `search`, `edit_file`,
    /// `write_file`, `git_status`, `git_diff`, `git_add`, `git_commit`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// The workspace (a git work tree on the run's branch).
    pub workspace: PathBuf,
    /// Where to write the transcript (JSON lines).
    pub transcript: PathBuf,
    /// Where to write the [`AgentResult`].
    pub result: PathBuf,
    /// Commit author name.
    pub author_name: String,
    /// Commit author email.
    pub author_email: String,
}

/// How the agent stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AgentStop {
    /// The model ended its turn without further tool calls.
    Completed,
    /// The step budget ran out.
    StepBudget,
    /// The token budget ran out.
    TokenBudget,
    /// The model endpoint failed.
    ModelError {
        /// The error.
        message: String,
    },
    /// Anything else (bad task file, workspace not a repository, …).
    Failed {
        /// Why.
        reason: String,
    },
}

/// What the agent reports when it stops. Untrusted: the host re-derives the
/// change list from git objects and never trusts this report for guardrails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentResult {
    /// How it stopped.
    pub stop: AgentStop,
    /// Model usage as the agent counted it.
    pub usage: Usage,
    /// Model turns taken.
    pub steps: u32,
    /// Commits made.
    pub commits: u32,
}

/// One line of the transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TranscriptEntry {
    /// A model call.
    ModelTurn {
        /// Step number (1-based).
        step: u32,
        /// Assistant text.
        text: String,
        /// Tool calls requested (names).
        tool_calls: Vec<String>,
        /// Prompt tokens.
        tokens_in: u64,
        /// Completion tokens.
        tokens_out: u64,
        /// Milliseconds the call took.
        ms: u64,
    },
    /// A tool call and its result size.
    ToolCall {
        /// Step number.
        step: u32,
        /// Tool name.
        tool: String,
        /// Arguments (paths, patterns; file contents are truncated).
        arguments: serde_json::Value,
        /// Whether it succeeded.
        ok: bool,
        /// Stable error code when it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Bytes of the result returned to the model.
        result_bytes: u64,
    },
    /// The final line.
    Stopped {
        /// How.
        stop: AgentStop,
        /// Steps.
        steps: u32,
    },
}
