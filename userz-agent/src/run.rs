//! The agent loop: model turn, tool calls, tool results, until the model ends
//! its turn or a budget runs out; with the transcript written as it goes and
//! the result file written at the end.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use userz_core::agent::{AgentResult, AgentStop, AgentTask, TranscriptEntry};
use userz_core::ports::model::{ChatMessage, CompletionRequest, ModelProvider};
use userz_core::ports::sandbox::Usage;

use crate::guided;
use crate::toolbox::ToolBox;

/// Why the agent could not do its job at all (as opposed to a run that
/// stopped, which is an [`AgentStop`] in the result).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The task file could not be read.
    #[error("cannot read the task file {path}: {message}")]
    ReadTask {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The task file is not a valid [`AgentTask`].
    #[error("invalid task file {path}: {message}")]
    BadTask {
        /// The file.
        path: String,
        /// The decoding error (names the field).
        message: String,
    },
    /// The result file could not be written.
    #[error("cannot write the result file {path}: {message}")]
    WriteResult {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

impl AgentError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            AgentError::ReadTask { .. } => "read_task",
            AgentError::BadTask { .. } => "bad_task",
            AgentError::WriteResult { .. } => "write_result",
        }
    }
}

/// Limits on what the loop sends and records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentOptions {
    /// Largest tool result sent back to the model, marker included (default
    /// 64 KiB); longer results are cut with a `[truncated: …]` marker.
    pub max_tool_result: usize,
    /// Longest string value of a tool call's arguments kept in the transcript
    /// (default 256 bytes); longer ones (file contents) are cut.
    pub max_transcript_string: usize,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self { max_tool_result: 64 * 1024, max_transcript_string: 256 }
    }
}

/// What [`run_agent`] returns once the result file is written.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOutcome {
    /// The result, as written to `task.result`.
    pub result: AgentResult,
    /// The whole conversation, system message first.
    pub messages: Vec<ChatMessage>,
}

/// Reads and decodes a task file.
pub fn read_task(path: &Path) -> Result<AgentTask, AgentError> {
    let shown = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| AgentError::ReadTask { path: shown.clone(), message: e.to_string() })?;
    serde_json::from_slice(&bytes).map_err(|e| AgentError::BadTask { path: shown, message: e.to_string() })
}

/// Writes the result file (through a temporary file renamed into place, so a
/// reader never sees half a result).
pub fn write_result(path: &Path, result: &AgentResult) -> Result<(), AgentError> {
    let fail = |e: &dyn std::fmt::Display| AgentError::WriteResult {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let json = serde_json::to_vec_pretty(result).map_err(|e| fail(&e))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, json).map_err(|e| fail(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail(&e))
}

/// The transcript file: one JSON line per entry, flushed as written.
#[derive(Debug)]
pub struct Transcript {
    file: File,
}

impl Transcript {
    /// Creates (or truncates) the transcript at `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self { file: File::create(path)? })
    }

    /// Appends one entry as a line and flushes it.
    pub fn write(&mut self, entry: &TranscriptEntry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.flush()
    }
}

/// Cuts `text` to at most `max` bytes (marker included) on a character boundary.
pub fn cap_text(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let marker = format!("\n[truncated: {} bytes total; the rest was cut]", text.len());
    let mut cut = max.saturating_sub(marker.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = text[..cut].to_string();
    out.push_str(&marker);
    out
}

/// A copy of a call's arguments for the transcript, with long strings cut.
fn transcript_args(v: &Value, max: usize) -> Value {
    match v {
        Value::String(s) if s.len() > max => {
            let mut cut = max;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            Value::String(format!("{}…[{} bytes]", &s[..cut], s.len()))
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| transcript_args(i, max)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, i)| (k.clone(), transcript_args(i, max))).collect()),
        other => other.clone(),
    }
}

/// Runs the agent on `task` with the default [`AgentOptions`]: writes the
/// transcript as it goes and the result file at the end. Returns `Err` only
/// when the result file could not be written; every other failure (bad tool
/// list, workspace not a repository, transcript not writable, model error) is
/// the result's [`AgentStop`].
pub async fn run_agent(task: &AgentTask, model: Arc<dyn ModelProvider>) -> Result<AgentOutcome, AgentError> {
    run_agent_with(task, model, AgentOptions::default()).await
}

/// [`run_agent`] with explicit options.
pub async fn run_agent_with(
    task: &AgentTask,
    model: Arc<dyn ModelProvider>,
    options: AgentOptions,
) -> Result<AgentOutcome, AgentError> {
    let usage =
        Usage { provider: model.provider_name().to_string(), model: task.model.model.clone(), ..Usage::default() };
    let mut messages = vec![ChatMessage::system(&task.system_prompt), ChatMessage::user(&task.prompt)];
    let mut state = LoopState { usage, steps: 0, commits: 0 };
    let stop = match Transcript::create(&task.transcript) {
        Err(e) => AgentStop::Failed { reason: format!("transcript {}: {e}", task.transcript.display()) },
        Ok(mut transcript) => {
            let stop = match ToolBox::open(&task.workspace, &task.tools, &task.author_name, &task.author_email) {
                Err(e) => AgentStop::Failed { reason: format!("{}: {e}", e.code()) },
                Ok(tools) => {
                    drive(task, model.as_ref(), &tools, options, &mut transcript, &mut messages, &mut state).await
                }
            };
            let last = TranscriptEntry::Stopped { stop: stop.clone(), steps: state.steps };
            match transcript.write(&last) {
                Ok(()) => stop,
                Err(e) => AgentStop::Failed { reason: format!("transcript {}: {e}", task.transcript.display()) },
            }
        }
    };
    let result = AgentResult { stop, usage: state.usage, steps: state.steps, commits: state.commits };
    write_result(&task.result, &result)?;
    Ok(AgentOutcome { result, messages })
}

/// Records a run that could not start (for instance: no model provider could
/// be built): a transcript holding only the `stopped` line, and the result.
pub fn finish_without_model(task: &AgentTask, provider: &str, stop: AgentStop) -> Result<AgentResult, AgentError> {
    let stop = match Transcript::create(&task.transcript)
        .and_then(|mut t| t.write(&TranscriptEntry::Stopped { stop: stop.clone(), steps: 0 }))
    {
        Ok(()) => stop,
        Err(e) => AgentStop::Failed {
            reason: format!("transcript {}: {e}; before that: {stop:?}", task.transcript.display()),
        },
    };
    let usage = Usage { provider: provider.to_string(), model: task.model.model.clone(), ..Usage::default() };
    let result = AgentResult { stop, usage, steps: 0, commits: 0 };
    write_result(&task.result, &result)?;
    Ok(result)
}

struct LoopState {
    usage: Usage,
    steps: u32,
    commits: u32,
}

async fn drive(
    task: &AgentTask,
    model: &dyn ModelProvider,
    tools: &ToolBox,
    options: AgentOptions,
    transcript: &mut Transcript,
    messages: &mut Vec<ChatMessage>,
    state: &mut LoopState,
) -> AgentStop {
    let specs = tools.specs();
    let budget = task.budget;
    let fail =
        |e: std::io::Error| AgentStop::Failed { reason: format!("transcript {}: {e}", task.transcript.display()) };
    // Guided turns: the files shown up front, then one named tool a turn.
    let guided_files = task.model.guided.then(|| guided::workspace_files(&task.workspace));
    if let Some(files) = &guided_files {
        if files.is_empty() {
            return AgentStop::Failed { reason: "guided turns: the workspace has no files to change".into() };
        }
        match crate::tools::Workspace::open(&task.workspace) {
            Ok(ws) => messages.push(guided::files_message(&ws, files)),
            Err(e) => return AgentStop::Failed { reason: format!("{}: {e}", e.code()) },
        }
    }
    let mut guided_turn = 0usize;
    loop {
        let (offered, tool_choice) = match &guided_files {
            None => (specs.clone(), None),
            Some(files) => {
                let name = guided::TURNS[guided_turn];
                match specs.iter().find(|s| s.name == name) {
                    Some(spec) => (vec![guided::narrow(spec.clone(), files)], Some(name.to_string())),
                    None => {
                        return AgentStop::Failed {
                            reason: format!("guided turns need the {name} tool, which this run does not enable"),
                        }
                    }
                }
            }
        };
        if state.steps >= budget.max_steps {
            return AgentStop::StepBudget;
        }
        let used = state.usage.tokens_in.saturating_add(state.usage.tokens_out);
        if used >= budget.max_tokens {
            return AgentStop::TokenBudget;
        }
        let remaining = u32::try_from(budget.max_tokens - used).unwrap_or(u32::MAX);
        let request = CompletionRequest {
            model: task.model.model.clone(),
            messages: messages.clone(),
            max_tokens: budget.max_output_tokens.min(remaining).max(1),
            tools: offered,
            temperature: None,
            tool_choice: tool_choice.clone(),
        };
        let started = Instant::now();
        let completion = match model.complete(&request).await {
            Ok(c) => c,
            Err(e) => return AgentStop::ModelError { message: e.to_string() },
        };
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        state.steps += 1;
        state.usage.tokens_in = state.usage.tokens_in.saturating_add(completion.tokens_in);
        state.usage.tokens_out = state.usage.tokens_out.saturating_add(completion.tokens_out);
        state.usage.cost_micros = state.usage.cost_micros.saturating_add(completion.cost_micros);
        let turn = TranscriptEntry::ModelTurn {
            step: state.steps,
            text: completion.content.clone(),
            tool_calls: completion.tool_calls.iter().map(|c| c.name.clone()).collect(),
            tokens_in: completion.tokens_in,
            tokens_out: completion.tokens_out,
            ms,
        };
        if let Err(e) = transcript.write(&turn) {
            return fail(e);
        }
        messages.push(ChatMessage::assistant(completion.content.clone(), completion.tool_calls.clone()));
        // A turn without tool calls ends the run, whatever the stop reason
        // (a guided turn is asked again).
        if completion.tool_calls.is_empty() {
            if tool_choice.is_some() {
                continue;
            }
            return AgentStop::Completed;
        }
        let mut all_ok = true;
        for call in &completion.tool_calls {
            let out = match &tool_choice {
                Some(name) if call.name != *name => crate::toolbox::ToolOutput::err(
                    "not_offered",
                    format!("this turn offers only the {name} tool; {} was not run", call.name),
                ),
                _ => tools.call(call),
            };
            all_ok &= out.error.is_none();
            if out.committed {
                state.commits += 1;
            }
            let content = cap_text(out.content, options.max_tool_result);
            let entry = TranscriptEntry::ToolCall {
                step: state.steps,
                tool: call.name.clone(),
                arguments: transcript_args(&call.arguments, options.max_transcript_string),
                ok: out.error.is_none(),
                error: out.error.clone(),
                result_bytes: content.len() as u64,
            };
            if let Err(e) = transcript.write(&entry) {
                return fail(e);
            }
            messages.push(ChatMessage::tool_result(call.id.clone(), content, out.error.is_some()));
        }
        if tool_choice.is_some() {
            if all_ok {
                guided_turn += 1;
                if guided_turn == guided::TURNS.len() {
                    return AgentStop::Completed;
                }
            } else {
                // A failed stage or commit (nothing changed) starts over
                // from the write.
                guided_turn = 0;
            }
        }
    }
}
