//! Guided turns for small models (`ModelEndpoint::guided`): the agent shows
//! the model the workspace's text files and names the one tool of each turn
//! (write a file, stage, commit), with each tool's schema narrowed to the
//! workspace (paths are one of its files). A provider that decodes against
//! the schema (llama.cpp's grammar, the hosted providers' `tool_choice`)
//! then cannot answer with a malformed call or a path that does not exist;
//! what it writes is still the model's.

use std::path::Path;

use serde_json::{json, Value};
use userz_core::ports::model::{ChatMessage, ToolSpec};

use crate::tools::Workspace;

/// The turns, in order; a turn whose call fails is asked again.
pub const TURNS: [&str; 3] = ["write_file", "git_add", "git_commit"];

/// Files shown to the model: at most this many …
const MAX_FILES: usize = 64;
/// … and this many bytes of their contents in all (the rest are listed).
const MAX_SHOWN_BYTES: usize = 12 * 1024;
/// Largest single file whose contents are shown.
const MAX_FILE_BYTES: usize = 6 * 1024;

/// The workspace's regular files (relative paths, sorted), skipping `.git`
/// and hidden entries, at most [`MAX_FILES`].
pub fn workspace_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                stack.push(e.path());
            } else if kind.is_file() {
                if let Ok(rel) = e.path().strip_prefix(root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
    }
    out.sort();
    out.truncate(MAX_FILES);
    out
}

/// A user message listing `files` with the contents of the small text ones
/// (read through the confined [`Workspace`]).
pub fn files_message(ws: &Workspace, files: &[String]) -> ChatMessage {
    let mut text = String::from("The repository's files (paths are relative to its root):\n");
    let mut shown = 0usize;
    for f in files {
        match ws.read_file(f).ok().filter(|b| b.len() <= MAX_FILE_BYTES) {
            Some(body) if shown + body.len() <= MAX_SHOWN_BYTES => {
                shown += body.len();
                text.push_str(&format!("\n--- {f}\n{body}"));
                if !body.ends_with('\n') {
                    text.push('\n');
                }
            }
            _ => text.push_str(&format!("\n--- {f} (not shown)\n")),
        }
    }
    text.push_str("\nFix the problem by writing the whole new content of one file, then stage it, then commit it.");
    ChatMessage::user(text)
}

/// `spec` with its paths limited to `files` and its strings non-empty.
pub fn narrow(mut spec: ToolSpec, files: &[String]) -> ToolSpec {
    let props = spec.parameters.get_mut("properties").and_then(Value::as_object_mut);
    if let Some(props) = props {
        for (name, schema) in props.iter_mut() {
            match name.as_str() {
                "path" => *schema = json!({ "type": "string", "enum": files }),
                "paths" => {
                    let mut allowed = files.to_vec();
                    allowed.insert(0, ".".to_string());
                    *schema = json!({
                        "type": "array",
                        "items": { "type": "string", "enum": allowed },
                        "minItems": 1,
                        "maxItems": 1,
                    });
                }
                "message" => *schema = json!({ "type": "string", "minLength": 3, "maxLength": 120 }),
                "content" => *schema = json!({ "type": "string", "minLength": 1 }),
                _ => {}
            }
        }
    }
    spec
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn files_skip_git_and_hidden_entries_and_are_sorted() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join(".git/objects")).unwrap();
        std::fs::write(tmp.path().join(".git/HEAD"), "x").unwrap();
        std::fs::write(tmp.path().join(".env"), "SECRET=1").unwrap();
        std::fs::create_dir_all(tmp.path().join("src")).unwrap();
        std::fs::write(tmp.path().join("src/app.js"), "let a = 1;\n").unwrap();
        std::fs::write(tmp.path().join("README.md"), "# r\n").unwrap();
        let files = workspace_files(tmp.path());
        assert_eq!(files, ["README.md", "src/app.js"]);
        let msg = files_message(&Workspace::open(tmp.path()).unwrap(), &files);
        assert!(msg.content.contains("--- src/app.js\nlet a = 1;\n"), "{}", msg.content);
        assert!(!msg.content.contains("SECRET"));
    }

    #[test]
    fn large_files_are_listed_but_not_shown() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("big.txt"), "x".repeat(MAX_FILE_BYTES + 1)).unwrap();
        let msg = files_message(&Workspace::open(tmp.path()).unwrap(), &workspace_files(tmp.path()));
        assert!(msg.content.contains("--- big.txt (not shown)"), "{}", msg.content);
    }

    #[test]
    fn narrowed_paths_are_the_workspace_files() {
        let files = vec!["a.js".to_string()];
        let write = narrow(crate::toolbox::spec("write_file").unwrap(), &files);
        assert_eq!(write.parameters["properties"]["path"]["enum"], json!(["a.js"]));
        assert_eq!(write.parameters["properties"]["content"]["minLength"], 1);
        let add = narrow(crate::toolbox::spec("git_add").unwrap(), &files);
        assert_eq!(add.parameters["properties"]["paths"]["items"]["enum"], json!([".", "a.js"]));
        let commit = narrow(crate::toolbox::spec("git_commit").unwrap(), &files);
        assert_eq!(commit.parameters["properties"]["message"]["minLength"], 3);
        assert_eq!(commit.parameters["required"], json!(["message"]));
    }
}
