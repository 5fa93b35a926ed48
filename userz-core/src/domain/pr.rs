//! PullRequest: the draft PR a run opened, its review comments and revision runs.

use serde::{Deserialize, Serialize};

use crate::decider::{Aggregate, Decider, Rejection};
use crate::event_names;
use crate::ids::{CommentId, FeedbackId, OrgId, PrId, RepoId, RunId};
use crate::sensitive::Sensitive;

/// How much a comment matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommentSeverity {
    /// Style nit.
    Nit,
    /// Suggestion.
    Suggestion,
    /// Must change before merge.
    MustChange,
}

/// A diff comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffComment {
    /// Id.
    pub comment: CommentId,
    /// File.
    pub path: String,
    /// Line in the new file.
    pub line: u32,
    /// Text (untrusted when handed to an agent).
    pub body: Sensitive<String>,
    /// Severity.
    pub severity: CommentSeverity,
    /// Resolved.
    pub resolved: bool,
}

/// Commands on a PR.
#[derive(Debug, Clone, PartialEq)]
pub enum PrCommand {
    /// Records the PR a run opened.
    Open {
        /// Id.
        pr: PrId,
        /// Org.
        org: OrgId,
        /// Repo.
        repo: RepoId,
        /// Lead report.
        feedback: FeedbackId,
        /// Run that opened it.
        run: RunId,
        /// Provider number.
        number: u64,
        /// URL.
        url: String,
        /// Head branch.
        branch: String,
    },
    /// Adds a diff comment.
    AddComment {
        /// Comment.
        comment: DiffComment,
    },
    /// Resolves a comment.
    ResolveComment {
        /// Comment.
        comment: CommentId,
    },
    /// Starts a revision run for the unresolved comments.
    RequestRevision {
        /// The new run.
        run: RunId,
    },
    /// The revision run ended (successfully or not).
    CompleteRevision {
        /// Run.
        run: RunId,
        /// Whether it updated the PR.
        updated: bool,
    },
    /// The provider reports the PR closed or merged.
    Close {
        /// Merged (true) or closed unmerged.
        merged: bool,
    },
}

/// Events of a PR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PrEvent {
    /// Recorded.
    PullRequestOpened {
        /// Id.
        pr: PrId,
        /// Org.
        org: OrgId,
        /// Repo.
        repo: RepoId,
        /// Lead report.
        feedback: FeedbackId,
        /// Run.
        run: RunId,
        /// Number.
        number: u64,
        /// URL.
        url: String,
        /// Branch.
        branch: String,
    },
    /// Comment added.
    CommentAdded {
        /// Comment.
        comment: DiffComment,
    },
    /// Comment resolved.
    CommentResolved {
        /// Comment.
        comment: CommentId,
    },
    /// Revision requested, with the unresolved comments it answers.
    RevisionRequested {
        /// Run.
        run: RunId,
        /// Comments.
        comments: Vec<CommentId>,
    },
    /// Revision ended.
    RevisionCompleted {
        /// Run.
        run: RunId,
        /// Whether the PR was updated.
        updated: bool,
    },
    /// Closed or merged.
    PullRequestClosed {
        /// Merged.
        merged: bool,
    },
}
event_names!(PrEvent {
    PullRequestOpened,
    CommentAdded,
    CommentResolved,
    RevisionRequested,
    RevisionCompleted,
    PullRequestClosed,
});

/// An existing PR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullRequest {
    /// Id.
    pub pr: PrId,
    /// Org.
    pub org: OrgId,
    /// Repo.
    pub repo: RepoId,
    /// Lead report.
    pub feedback: FeedbackId,
    /// Number.
    pub number: u64,
    /// URL.
    pub url: String,
    /// Branch.
    pub branch: String,
    /// Runs that produced or revised it, in order.
    pub runs: Vec<RunId>,
    /// Comments.
    pub comments: Vec<DiffComment>,
    /// A revision run in progress.
    pub revision_in_flight: Option<RunId>,
    /// `None` while open; `Some(merged)` once closed.
    pub closed: Option<bool>,
}

impl PullRequest {
    /// Comments not yet resolved.
    pub fn unresolved(&self) -> impl Iterator<Item = &DiffComment> {
        self.comments.iter().filter(|c| !c.resolved)
    }
}

/// State of a PR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum PrState {
    /// Not recorded.
    #[default]
    None,
    /// Exists.
    Exists(Box<PullRequest>),
}

impl PrState {
    /// The PR, if any.
    pub fn get(&self) -> Option<&PullRequest> {
        match self {
            PrState::Exists(p) => Some(p),
            PrState::None => None,
        }
    }
}

/// The PR decider.
#[derive(Debug, Clone, Copy)]
pub struct PrDecider;

impl Decider for PrDecider {
    type Command = PrCommand;
    type Event = PrEvent;
    type State = PrState;

    fn initial_state() -> PrState {
        PrState::None
    }

    fn decide(command: &PrCommand, state: &PrState) -> Result<Vec<PrEvent>, Rejection> {
        let pr = match (command, state) {
            (PrCommand::Open { pr, org, repo, feedback, run, number, url, branch }, PrState::None) => {
                return Ok(vec![PrEvent::PullRequestOpened {
                    pr: *pr,
                    org: *org,
                    repo: *repo,
                    feedback: *feedback,
                    run: *run,
                    number: *number,
                    url: url.clone(),
                    branch: branch.clone(),
                }]);
            }
            (PrCommand::Open { .. }, PrState::Exists(_)) => {
                return Err(Rejection::AlreadyExists { entity: "pull_request" })
            }
            (_, PrState::None) => return Err(Rejection::NotFound { entity: "pull_request" }),
            (_, PrState::Exists(p)) => p,
        };
        let status = match pr.closed {
            None => "open",
            Some(true) => "merged",
            Some(false) => "closed",
        };
        match command {
            PrCommand::Open { .. } => Err(Rejection::AlreadyExists { entity: "pull_request" }),
            PrCommand::AddComment { comment } => {
                if pr.closed.is_some() {
                    return Err(Rejection::transition("add_comment", status));
                }
                if pr.comments.iter().any(|c| c.comment == comment.comment) {
                    return Err(Rejection::AlreadyExists { entity: "comment" });
                }
                if comment.path.is_empty() || comment.body.expose().trim().is_empty() || comment.line == 0 {
                    return Err(Rejection::input("comment", "path, line ≥ 1 and body are required"));
                }
                let mut c = comment.clone();
                c.resolved = false;
                Ok(vec![PrEvent::CommentAdded { comment: c }])
            }
            PrCommand::ResolveComment { comment } => match pr.comments.iter().find(|c| c.comment == *comment) {
                None => Err(Rejection::NotFound { entity: "comment" }),
                Some(c) if c.resolved => Ok(vec![]),
                Some(_) => Ok(vec![PrEvent::CommentResolved { comment: *comment }]),
            },
            PrCommand::RequestRevision { run } => {
                if pr.closed.is_some() {
                    return Err(Rejection::transition("request_revision", status));
                }
                if pr.revision_in_flight == Some(*run) {
                    return Ok(vec![]);
                }
                if pr.revision_in_flight.is_some() {
                    return Err(Rejection::Invariant {
                        rule: "revision_in_flight",
                        message: "a revision run is already in progress".into(),
                    });
                }
                let comments: Vec<CommentId> = pr.unresolved().map(|c| c.comment).collect();
                if comments.is_empty() {
                    return Err(Rejection::Invariant {
                        rule: "no_unresolved_comments",
                        message: "a revision needs at least one unresolved comment".into(),
                    });
                }
                Ok(vec![PrEvent::RevisionRequested { run: *run, comments }])
            }
            PrCommand::CompleteRevision { run, updated } => {
                if pr.revision_in_flight != Some(*run) {
                    return Err(Rejection::Invariant {
                        rule: "run_mismatch",
                        message: format!("{run} is not the revision in flight"),
                    });
                }
                Ok(vec![PrEvent::RevisionCompleted { run: *run, updated: *updated }])
            }
            PrCommand::Close { merged } => {
                if pr.closed.is_some() {
                    return Ok(vec![]);
                }
                Ok(vec![PrEvent::PullRequestClosed { merged: *merged }])
            }
        }
    }

    fn evolve(state: PrState, event: &PrEvent) -> PrState {
        let mut p = match (state, event) {
            (PrState::None, PrEvent::PullRequestOpened { pr, org, repo, feedback, run, number, url, branch }) => {
                return PrState::Exists(Box::new(PullRequest {
                    pr: *pr,
                    org: *org,
                    repo: *repo,
                    feedback: *feedback,
                    number: *number,
                    url: url.clone(),
                    branch: branch.clone(),
                    runs: vec![*run],
                    comments: Vec::new(),
                    revision_in_flight: None,
                    closed: None,
                }))
            }
            (PrState::Exists(p), _) => p,
            (s, _) => return s,
        };
        match event {
            PrEvent::PullRequestOpened { .. } => {}
            PrEvent::CommentAdded { comment } => p.comments.push(comment.clone()),
            PrEvent::CommentResolved { comment } => {
                if let Some(c) = p.comments.iter_mut().find(|c| c.comment == *comment) {
                    c.resolved = true;
                }
            }
            PrEvent::RevisionRequested { run, .. } => {
                p.runs.push(*run);
                p.revision_in_flight = Some(*run);
            }
            PrEvent::RevisionCompleted { .. } => p.revision_in_flight = None,
            PrEvent::PullRequestClosed { merged } => p.closed = Some(*merged),
        }
        PrState::Exists(p)
    }
}

impl Aggregate for PrDecider {
    const CATEGORY: &'static str = "pr";
}

/// Longest review comment body accepted from a provider (GitHub caps comments
/// at 65 536 characters).
pub const MAX_COMMENT_BYTES: usize = 256 * 1024;

/// Splits a leading severity marker off a comment body.
///
/// Recognised markers (case-insensitive, at the very start after whitespace):
/// `[nit]`, `[suggestion]`, `[must_change]` (also `[must-change]`). Without a
/// marker the severity is `suggestion` and the body is returned trimmed.
pub fn severity_from_body(body: &str) -> (CommentSeverity, &str) {
    let trimmed = body.trim_start();
    if let Some(rest) = trimmed.strip_prefix('[') {
        if let Some((tag, after)) = rest.split_once(']') {
            let severity = match tag.trim().to_ascii_lowercase().as_str() {
                "nit" => Some(CommentSeverity::Nit),
                "suggestion" => Some(CommentSeverity::Suggestion),
                "must_change" | "must-change" => Some(CommentSeverity::MustChange),
                _ => None,
            };
            if let Some(s) = severity {
                return (s, after.trim());
            }
        }
    }
    (CommentSeverity::Suggestion, trimmed.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_markers_are_recognised_and_stripped() {
        assert_eq!(severity_from_body("[nit] rename this"), (CommentSeverity::Nit, "rename this"));
        assert_eq!(severity_from_body("  [MUST_CHANGE]  this leaks"), (CommentSeverity::MustChange, "this leaks"));
        assert_eq!(severity_from_body("[must-change] x"), (CommentSeverity::MustChange, "x"));
        assert_eq!(severity_from_body("[suggestion] maybe"), (CommentSeverity::Suggestion, "maybe"));
        assert_eq!(severity_from_body("plain text\n"), (CommentSeverity::Suggestion, "plain text"));
        // An unknown tag stays part of the text.
        assert_eq!(severity_from_body("[wip] later"), (CommentSeverity::Suggestion, "[wip] later"));
        assert_eq!(severity_from_body("see [nit] below"), (CommentSeverity::Suggestion, "see [nit] below"));
    }
}
