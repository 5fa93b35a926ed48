//! In-process git tools: `git_status`, `git_diff`, `git_add`, `git_commit`.
//!
//! Everything goes through libgit2 (the `git2` crate, vendored, without its
//! network features): no `git` program is ever started. libgit2 runs no hooks,
//! no `core.fsmonitor` command, no filter driver (`filter.*.clean/smudge`), no
//! `diff.external` and no textconv, so nothing a repository's configuration
//! names can execute here.
//!
//! # Which configuration is read
//! The repository is opened at exactly the workspace root (`NO_SEARCH`: no walk
//! up to a parent repository), and its work tree must be that root (a
//! `core.worktree` pointing elsewhere is refused). Right after opening, the
//! repository's configuration is replaced ([`git2::Repository::set_config`])
//! by one holding only the repository's own `config` file, so system, global
//! and XDG files (`/etc/gitconfig`, `~/.gitconfig`, `~/.config/git/config`)
//! take no part in status, diff, add or commit. The other way to drop them,
//! `git2::opts::set_search_path`, is `unsafe` (it changes process-global
//! libgit2 state) and this crate forbids `unsafe`. libgit2 itself still reads
//! those files once while opening, for `safe.directory` ownership checks only.
//! The commit signature is built from the task's author (never `user.*`).

use std::fmt;
use std::path::{Path, PathBuf};

use git2::{
    Config, ConfigLevel, DiffFormat, DiffOptions, ErrorCode, IndexAddOption, Repository, RepositoryOpenFlags,
    Signature, Status, StatusOptions,
};
use serde::Serialize;

use crate::tools::{ToolError, Workspace};

fn git_err(e: git2::Error) -> ToolError {
    ToolError::Git(e.message().to_string())
}

/// One changed path, as `git_status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusEntry {
    /// Workspace-relative path.
    pub path: String,
    /// Change staged in the index against `HEAD` (`added`, `modified`,
    /// `deleted`, `renamed`, `typechange`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staged: Option<&'static str>,
    /// Change in the work tree against the index (`untracked`, `modified`,
    /// `deleted`, `renamed`, `typechange`, `conflicted`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unstaged: Option<&'static str>,
}

/// The unified diff `git_diff` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffText {
    /// The patch text (cut at the size cap).
    pub patch: String,
    /// Whether the patch was cut.
    pub truncated: bool,
    /// Every changed path (complete even when the patch was cut).
    pub files: Vec<String>,
}

/// A commit `git_commit` made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitInfo {
    /// The new commit id (hex).
    pub commit: String,
    /// The branch it was made on (`HEAD` when detached).
    pub branch: String,
    /// Paths whose content differs from the parent commit.
    pub files_changed: usize,
}

/// The workspace's repository, opened for the agent's git tools.
pub struct GitRepo {
    repo: Repository,
    root: PathBuf,
    max_diff: usize,
}

impl fmt::Debug for GitRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitRepo").field("root", &self.root).field("max_diff", &self.max_diff).finish()
    }
}

fn staged_label(s: Status) -> Option<&'static str> {
    if s.is_index_new() {
        Some("added")
    } else if s.is_index_modified() {
        Some("modified")
    } else if s.is_index_deleted() {
        Some("deleted")
    } else if s.is_index_renamed() {
        Some("renamed")
    } else if s.is_index_typechange() {
        Some("typechange")
    } else {
        None
    }
}

fn unstaged_label(s: Status) -> Option<&'static str> {
    if s.is_conflicted() {
        Some("conflicted")
    } else if s.is_wt_new() {
        Some("untracked")
    } else if s.is_wt_modified() {
        Some("modified")
    } else if s.is_wt_deleted() {
        Some("deleted")
    } else if s.is_wt_renamed() {
        Some("renamed")
    } else if s.is_wt_typechange() {
        Some("typechange")
    } else {
        None
    }
}

impl GitRepo {
    /// Opens the repository whose work tree is exactly `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, ToolError> {
        let root = root.as_ref().to_path_buf();
        let shown = root.display().to_string();
        let not_repo = |why: String| ToolError::NotARepository(format!("{shown}: {why}"));
        let repo = Repository::open_ext(&root, RepositoryOpenFlags::NO_SEARCH, std::iter::empty::<&std::ffi::OsStr>())
            .map_err(|e| not_repo(e.message().to_string()))?;
        let workdir = repo.workdir().ok_or_else(|| not_repo("the repository is bare".into()))?;
        let same = match (workdir.canonicalize(), root.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same {
            return Err(not_repo(format!("its work tree is {}", workdir.display())));
        }
        // Only the repository's own config file: no system, global or XDG level.
        let mut config = Config::new().map_err(git_err)?;
        let local = repo.commondir().join("config");
        if local.is_file() {
            config.add_file(&local, ConfigLevel::Local, false).map_err(git_err)?;
        }
        repo.set_config(&config).map_err(git_err)?;
        Ok(Self { repo, root, max_diff: 60 * 1024 })
    }

    /// Largest patch `diff` returns before cutting it (default 60 KiB).
    pub fn with_max_diff(mut self, bytes: usize) -> Self {
        self.max_diff = bytes;
        self
    }

    /// The configuration levels present in the repository's configuration
    /// (only [`ConfigLevel::Local`] after [`open`](Self::open)).
    pub fn config_levels(&self) -> Result<Vec<ConfigLevel>, ToolError> {
        let config = self.repo.config().map_err(git_err)?;
        let mut levels = Vec::new();
        let mut entries = config.entries(None).map_err(git_err)?;
        while let Some(entry) = entries.next() {
            let level = entry.map_err(git_err)?.level();
            if !levels.contains(&level) {
                levels.push(level);
            }
        }
        Ok(levels)
    }

    /// Changed and untracked files (ignored files are left out).
    pub fn status(&self) -> Result<Vec<StatusEntry>, ToolError> {
        let mut opts = StatusOptions::new();
        opts.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false);
        let statuses = self.repo.statuses(Some(&mut opts)).map_err(git_err)?;
        Ok(statuses
            .iter()
            .map(|e| StatusEntry {
                path: String::from_utf8_lossy(e.path_bytes()).into_owned(),
                staged: staged_label(e.status()),
                unstaged: unstaged_label(e.status()),
            })
            .filter(|e| e.staged.is_some() || e.unstaged.is_some())
            .collect())
    }

    fn head_commit(&self) -> Result<Option<git2::Commit<'_>>, ToolError> {
        match self.repo.head() {
            Ok(head) => head.peel_to_commit().map(Some).map_err(git_err),
            Err(e) if matches!(e.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => Ok(None),
            Err(e) => Err(git_err(e)),
        }
    }

    /// Unified diff of the work tree (with untracked files) against `HEAD`.
    pub fn diff(&self) -> Result<DiffText, ToolError> {
        let head = self.head_commit()?;
        let tree = head.as_ref().map(|c| c.tree()).transpose().map_err(git_err)?;
        let mut opts = DiffOptions::new();
        opts.include_untracked(true).recurse_untracked_dirs(true).show_untracked_content(true);
        let diff = self.repo.diff_tree_to_workdir_with_index(tree.as_ref(), Some(&mut opts)).map_err(git_err)?;
        let files = diff
            .deltas()
            .filter_map(|d| d.new_file().path().or_else(|| d.old_file().path()).map(|p| p.display().to_string()))
            .collect();
        let mut patch = Vec::new();
        let mut truncated = false;
        let max = self.max_diff;
        let printed = diff.print(DiffFormat::Patch, |_, _, line| {
            let origin = line.origin();
            let prefix: &[u8] = match origin {
                '+' | '-' | ' ' => &[origin as u8],
                _ => &[],
            };
            if patch.len() + prefix.len() + line.content().len() > max {
                truncated = true;
                return false;
            }
            patch.extend_from_slice(prefix);
            patch.extend_from_slice(line.content());
            true
        });
        // Stopping the walk at the cap makes libgit2 report a user abort.
        if let Err(e) = printed {
            if !truncated {
                return Err(git_err(e));
            }
        }
        Ok(DiffText { patch: String::from_utf8_lossy(&patch).into_owned(), truncated, files })
    }

    /// Stages `paths` (workspace-relative; `.` stages the whole work tree):
    /// new and changed files are added, deleted ones removed from the index.
    /// Returns the paths that matched.
    pub fn add(&self, ws: &Workspace, paths: &[String]) -> Result<Vec<String>, ToolError> {
        if paths.is_empty() {
            return Err(ToolError::EmptyPath);
        }
        let mut index = self.repo.index().map_err(git_err)?;
        let mut matched: Vec<String> = Vec::new();
        for path in paths {
            let whole_tree = path.trim() == ".";
            // `.` is every path (the glob `*`: git2's match callback cannot take
            // an empty pathspec list); anything else is one literal, confined path.
            let (spec, exists) = if whole_tree {
                (vec![PathBuf::from("*")], true)
            } else {
                let (rel, exists) = ws.confine_for_git(path)?;
                (vec![rel], exists)
            };
            let before = matched.len();
            let mut record = |p: &Path, _: &[u8]| {
                let p = p.display().to_string();
                if !matched.contains(&p) {
                    matched.push(p);
                }
                0
            };
            if exists {
                let flags = if whole_tree {
                    IndexAddOption::DEFAULT
                } else {
                    IndexAddOption::DEFAULT | IndexAddOption::DISABLE_PATHSPEC_MATCH
                };
                index.add_all(spec.iter(), flags, Some(&mut record)).map_err(git_err)?;
            }
            // Stages removals of tracked files that are gone from the work tree.
            index.update_all(spec.iter(), Some(&mut record)).map_err(git_err)?;
            if matched.len() == before {
                if !exists {
                    return Err(ToolError::NotFound(path.clone()));
                }
                if let Some(rel) = spec.first().filter(|_| !whole_tree) {
                    if self.repo.status_should_ignore(rel).map_err(git_err)? {
                        return Err(ToolError::IgnoredPath(path.clone()));
                    }
                }
            }
        }
        index.write().map_err(git_err)?;
        Ok(matched)
    }

    /// Commits the index on the current branch, as `name <email>` (author and
    /// committer). Refuses an empty message and a commit that changes nothing.
    pub fn commit(&self, message: &str, name: &str, email: &str) -> Result<CommitInfo, ToolError> {
        let message = message.trim();
        if message.is_empty() {
            return Err(ToolError::EmptyMessage);
        }
        let mut index = self.repo.index().map_err(git_err)?;
        let tree_id = index.write_tree().map_err(git_err)?;
        let parent = self.head_commit()?;
        let parent_tree = parent.as_ref().map(|c| c.tree()).transpose().map_err(git_err)?;
        match &parent_tree {
            Some(t) if t.id() == tree_id => return Err(ToolError::EmptyCommit),
            None if index.is_empty() => return Err(ToolError::EmptyCommit),
            _ => {}
        }
        let sig = Signature::now(name, email).map_err(|e| ToolError::BadAuthor(e.message().to_string()))?;
        let tree = self.repo.find_tree(tree_id).map_err(git_err)?;
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let oid =
            self.repo.commit(Some("HEAD"), &sig, &sig, &format!("{message}\n"), &tree, &parents).map_err(git_err)?;
        let files_changed =
            self.repo.diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), None).map_err(git_err)?.deltas().len();
        let branch = self
            .repo
            .head()
            .ok()
            .and_then(|h| if h.is_branch() { h.shorthand().ok().map(str::to_string) } else { None })
            .unwrap_or_else(|| "HEAD".to_string());
        Ok(CommitInfo { commit: oid.to_string(), branch, files_changed })
    }
}

impl GitRepo {
    /// The run's result for a host that never mounts the workspace (the
    /// microVM sandbox): the head of `branch` and a pack of every object
    /// reachable from it but not from `base`. The host parses the pack in
    /// user space and checks it before anything uses it.
    ///
    /// # Errors
    /// `ToolError::Git` when `base` or the branch is missing or libgit2
    /// fails.
    pub fn export_pack(&self, base: &str, branch: &str) -> Result<(String, Vec<u8>), ToolError> {
        let base = git2::Oid::from_str(base).map_err(git_err)?;
        let head = self.repo.find_branch(branch, git2::BranchType::Local).map_err(git_err)?;
        let head = head.get().peel_to_commit().map_err(git_err)?.id();
        let mut walk = self.repo.revwalk().map_err(git_err)?;
        walk.push(head).map_err(git_err)?;
        walk.hide(base).map_err(git_err)?;
        let mut pack = self.repo.packbuilder().map_err(git_err)?;
        pack.insert_walk(&mut walk).map_err(git_err)?;
        let mut buf = git2::Buf::new();
        pack.write_buf(&mut buf).map_err(git_err)?;
        Ok((head.to_string(), buf.to_vec()))
    }
}
