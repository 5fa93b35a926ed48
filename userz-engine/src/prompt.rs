//! The agent's prompt: a trusted task, and the report (plus, for revisions, the
//! unresolved review comments) as untrusted sections inside the wrapper.

use userz_core::domain::feedback::Feedback;
use userz_core::domain::pr::DiffComment;
use userz_security::wrap::{Prompt, Section, SectionKind, UntrustedPrompt};

const TASK_INITIAL: &str = "Investigate the end-user report below and change this repository to fix the problem it \
describes. Keep the change small and focused, follow the code's existing style, and commit it with a short message. \
If the report does not describe a problem you can fix in this repository, make no change.";

const TASK_REVISION: &str = "A reviewer left comments on the change on this branch. Address the unresolved comments \
below with additional commits on the same branch. The original report is included for context.";

/// Builds the wrapped prompt for a run on `feedback`; `comments` are the
/// unresolved review comments of a revision run (empty for a first run).
pub(crate) fn build(feedback: &Feedback, comments: &[&DiffComment]) -> Prompt {
    let task = if comments.is_empty() { TASK_INITIAL } else { TASK_REVISION };
    let mut p = UntrustedPrompt::new(task).section(Section::feedback_text(feedback.content.text.expose().clone()));
    if let Some(c) = &feedback.consolidated {
        p = p.section(Section::new(SectionKind::Consolidated, format!("{}\n{}", c.theme, c.description.expose())));
    }
    let mut context = String::new();
    if let Some(url) = &feedback.content.url {
        context.push_str(&format!("page: {url}\n"));
    }
    if let Some(target) = &feedback.content.component_target {
        context.push_str(&format!("component: {target}\n"));
    }
    if !context.is_empty() {
        p = p.section(Section::new(SectionKind::Context, context));
    }
    let logs = feedback.content.console_logs.expose();
    if !logs.is_empty() {
        p = p.section(Section::console_logs(logs.iter().map(|l| format!("[{}] {}", l.level, l.message))));
    }
    if !comments.is_empty() {
        let text = comments
            .iter()
            .map(|c| format!("{}:{} ({:?}) {}", c.path, c.line, c.severity, c.body.expose()))
            .collect::<Vec<_>>()
            .join("\n");
        p = p.section(Section::new(SectionKind::ReviewComments, text));
    }
    p.build()
}
