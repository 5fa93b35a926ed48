//! The tools offered to the model: their JSON Schemas, and one dispatcher that
//! turns a [`ToolCall`] into a result text (never a panic).

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use userz_core::ports::model::{ToolCall, ToolSpec};

use crate::git::GitRepo;
use crate::tools::{ToolError, Workspace};

/// Every tool the agent knows, in the order they are offered.
pub const ALL_TOOLS: [&str; 8] =
    ["read_file", "search", "edit_file", "write_file", "git_status", "git_diff", "git_add", "git_commit"];

/// Whether `name` is one of the git tools (they need a repository).
pub fn is_git_tool(name: &str) -> bool {
    name.starts_with("git_")
}

/// The JSON Schema spec of tool `name`, if it exists.
pub fn spec(name: &str) -> Option<ToolSpec> {
    let (description, parameters) = match name {
        "read_file" => (
            "Read a text file of the workspace. Paths are relative to the workspace root.",
            json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "Workspace-relative file path"}
            }, "required": ["path"], "additionalProperties": false}),
        ),
        "search" => (
            "Search the workspace's files (respecting .gitignore) for lines matching a regular expression.",
            json!({"type": "object", "properties": {
                "pattern": {"type": "string", "description": "Regular expression (Rust regex syntax)"}
            }, "required": ["pattern"], "additionalProperties": false}),
        ),
        "edit_file" => (
            "Replace the single occurrence of old_text with new_text in a file; old_text must occur exactly once.",
            json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "Workspace-relative file path"},
                "old_text": {"type": "string", "description": "Exact text to replace (must be unique in the file)"},
                "new_text": {"type": "string", "description": "Replacement text"}
            }, "required": ["path", "old_text", "new_text"], "additionalProperties": false}),
        ),
        "write_file" => (
            "Create or replace a file with the given content, creating parent directories.",
            json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "Workspace-relative file path"},
                "content": {"type": "string", "description": "The whole new content"}
            }, "required": ["path", "content"], "additionalProperties": false}),
        ),
        "git_status" => (
            "List changed, staged and untracked files of the work tree.",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
        ),
        "git_diff" => (
            "Show the unified diff of the work tree (including untracked files) against HEAD.",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
        ),
        "git_add" => (
            "Stage paths for the next commit (new, changed or deleted files; '.' stages everything).",
            json!({"type": "object", "properties": {
                "paths": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                          "description": "Workspace-relative paths, or '.' for the whole work tree"}
            }, "required": ["paths"], "additionalProperties": false}),
        ),
        "git_commit" => (
            "Commit the staged changes on the current branch with the given message.",
            json!({"type": "object", "properties": {
                "message": {"type": "string", "description": "Commit message"}
            }, "required": ["message"], "additionalProperties": false}),
        ),
        _ => return None,
    };
    Some(ToolSpec { name: name.to_string(), description: description.to_string(), parameters })
}

/// A tool call's result as sent back to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// Result text (a JSON error object when the call failed).
    pub content: String,
    /// Stable error code when the call failed.
    pub error: Option<String>,
    /// Whether the call made a commit.
    pub committed: bool,
}

impl ToolOutput {
    fn ok(content: String) -> Self {
        Self { content, error: None, committed: false }
    }

    pub(crate) fn err(code: &str, message: impl std::fmt::Display) -> Self {
        let content = json!({"error": code, "message": message.to_string()}).to_string();
        Self { content, error: Some(code.to_string()), committed: false }
    }
}

impl From<ToolError> for ToolOutput {
    fn from(e: ToolError) -> Self {
        Self::err(e.code(), &e)
    }
}

#[derive(Deserialize)]
struct PathArgs {
    path: String,
}
#[derive(Deserialize)]
struct SearchArgs {
    pattern: String,
}
#[derive(Deserialize)]
struct EditArgs {
    path: String,
    old_text: String,
    new_text: String,
}
#[derive(Deserialize)]
struct WriteArgs {
    path: String,
    content: String,
}
#[derive(Deserialize)]
struct AddArgs {
    paths: Vec<String>,
}
#[derive(Deserialize)]
struct CommitArgs {
    message: String,
}
#[derive(Deserialize)]
struct NoArgs {}

/// Decodes a call's arguments; `Err` is the `bad_arguments` tool result.
fn args<T: DeserializeOwned>(call: &ToolCall) -> Result<T, ToolOutput> {
    match &call.arguments {
        Value::Object(_) => serde_json::from_value(call.arguments.clone())
            .map_err(|e| ToolOutput::err("bad_arguments", format!("{}: {e}", call.name))),
        // A model that sends no arguments for an argument-less tool.
        Value::Null => serde_json::from_value(json!({}))
            .map_err(|e| ToolOutput::err("bad_arguments", format!("{}: {e}", call.name))),
        Value::String(raw) => Err(ToolOutput::err(
            "bad_arguments",
            format!(
                "{}: the arguments are not a JSON object: {}",
                call.name,
                raw.chars().take(200).collect::<String>()
            ),
        )),
        other => Err(ToolOutput::err("bad_arguments", format!("{}: expected a JSON object, got {other}", call.name))),
    }
}

/// The tools of one run: the workspace, its repository (when a git tool is
/// enabled) and the commit author.
#[derive(Debug)]
pub struct ToolBox {
    ws: Workspace,
    git: Option<GitRepo>,
    enabled: Vec<&'static str>,
    author_name: String,
    author_email: String,
}

impl ToolBox {
    /// Opens the tools named in `enabled` (empty: all of [`ALL_TOOLS`]) over
    /// the workspace at `root`. Fails on an unknown tool name, a workspace that
    /// cannot be opened, or (when a git tool is enabled) a workspace that is
    /// not a git work tree.
    pub fn open(root: &Path, enabled: &[String], author_name: &str, author_email: &str) -> Result<Self, ToolError> {
        let mut names: Vec<&'static str> = Vec::new();
        if enabled.is_empty() {
            names.extend(ALL_TOOLS);
        } else {
            for want in enabled {
                let known = ALL_TOOLS
                    .iter()
                    .find(|t| **t == want.as_str())
                    .ok_or_else(|| ToolError::UnknownTool(want.clone()))?;
                if !names.contains(known) {
                    names.push(known);
                }
            }
        }
        let ws = Workspace::open(root)?;
        let git = if names.iter().any(|n| is_git_tool(n)) { Some(GitRepo::open(root)?) } else { None };
        Ok(Self { ws, git, enabled: names, author_name: author_name.into(), author_email: author_email.into() })
    }

    /// The enabled tools' names.
    pub fn enabled(&self) -> &[&'static str] {
        &self.enabled
    }

    /// Specs of the enabled tools, in [`ALL_TOOLS`] order.
    pub fn specs(&self) -> Vec<ToolSpec> {
        ALL_TOOLS.iter().filter(|t| self.enabled.contains(t)).filter_map(|t| spec(t)).collect()
    }

    /// Runs one call. Unknown or disabled tools and bad arguments become error
    /// results (`unknown_tool`, `tool_not_enabled`, `bad_arguments`).
    pub fn call(&self, call: &ToolCall) -> ToolOutput {
        let name = call.name.as_str();
        if !ALL_TOOLS.contains(&name) {
            return ToolOutput::err(
                "unknown_tool",
                format!("no tool named {name:?}; available: {}", self.enabled.join(", ")),
            );
        }
        if !self.enabled.contains(&name) {
            return ToolOutput::err("tool_not_enabled", format!("{name} is not enabled for this run"));
        }
        match self.dispatch(name, call) {
            Ok(out) | Err(out) => out,
        }
    }

    fn git(&self) -> Result<&GitRepo, ToolOutput> {
        // `open` opens the repository whenever a git tool is enabled.
        self.git.as_ref().ok_or_else(|| ToolOutput::err("not_a_repository", "the repository is not open"))
    }

    fn dispatch(&self, name: &str, call: &ToolCall) -> Result<ToolOutput, ToolOutput> {
        let json_out = |v: Value| ToolOutput::ok(v.to_string());
        Ok(match name {
            "read_file" => {
                let a: PathArgs = args(call)?;
                ToolOutput::ok(self.ws.read_file(&a.path)?)
            }
            "search" => {
                let a: SearchArgs = args(call)?;
                json_out(json!({ "hits": self.ws.search(&a.pattern)? }))
            }
            "edit_file" => {
                let a: EditArgs = args(call)?;
                self.ws.edit_file(&a.path, &a.old_text, &a.new_text)?;
                json_out(json!({ "edited": a.path }))
            }
            "write_file" => {
                let a: WriteArgs = args(call)?;
                self.ws.write_file(&a.path, &a.content)?;
                json_out(json!({ "written": a.path, "bytes": a.content.len() }))
            }
            "git_status" => {
                let _: NoArgs = args(call)?;
                json_out(json!({ "changes": self.git()?.status()? }))
            }
            "git_diff" => {
                let _: NoArgs = args(call)?;
                let d = self.git()?.diff()?;
                let mut text = d.patch;
                if d.truncated {
                    text.push_str(&format!("\n[diff cut at the size cap; files changed: {}]\n", d.files.join(", ")));
                }
                if text.is_empty() {
                    text.push_str("(no changes)");
                }
                ToolOutput::ok(text)
            }
            "git_add" => {
                let a: AddArgs = args(call)?;
                json_out(json!({ "staged": self.git()?.add(&self.ws, &a.paths)? }))
            }
            "git_commit" => {
                let a: CommitArgs = args(call)?;
                let info = self.git()?.commit(&a.message, &self.author_name, &self.author_email)?;
                let mut out = json_out(json!(info));
                out.committed = true;
                out
            }
            other => ToolOutput::err("unknown_tool", format!("no tool named {other:?}")),
        })
    }
}
