//! # userz-git
//!
//! Host-side git for the Userz engine, shared by the VCS adapters
//! (`userz-vcs-*`). Everything goes through libgit2 in-process: no `git`
//! program is started, so no hook, `core.fsmonitor`, `core.hooksPath`, filter,
//! credential helper or `uploadpack.*` command of a workspace can run on the
//! host (libgit2 implements none of them).
//!
//! - [`prepare_workspace`]: clone a remote at its base branch into the empty
//!   directory the sandbox allocated, create (or check out, for a revision run)
//!   the run's branch, and strip every remote and credential setting from the
//!   copy, so the sandbox holds source code and nothing else.
//! - [`UntrustedWorkspace`]: after the agent ran, read its commits **as
//!   untrusted data** (G11): the structure is checked first (`.git` must be a
//!   plain directory; no `commondir`, no object alternates, no grafts or
//!   replace refs that could point the reader elsewhere), history must descend
//!   linearly from the base commit, and the change list is the union of every
//!   commit's own diff and the overall diff, with renames and copies detected so
//!   both sides count.
//! - [`UntrustedWorkspace::push_checked_head`]: push exactly the head that was
//!   checked.
//! - [`HttpCredentials`], [`prepare_workspace_with`] and
//!   [`UntrustedWorkspace::push_checked_head_with`]: the same over smart-HTTP
//!   with a token handed to libgit2 in memory through its credential callback
//!   (never in the URL, an argument, the environment, git config or a file).
//!
//! Host-level git configuration (`~/.gitconfig`, `/etc/gitconfig`) is still
//! read by libgit2; changing its search path is an `unsafe` process-global
//! call in `git2`, which this crate does not make. The workspace's own config
//! is never consulted for anything that runs or redirects.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use git2::{
    BranchType, Cred, CredentialType, Delta, DiffFindOptions, DiffOptions, FetchOptions, FileMode, Oid, PushOptions,
    Reference, RemoteCallbacks, Repository, RepositoryOpenFlags,
};
use secrecy::{ExposeSecret, SecretString};
use userz_core::guardrail::{Change, ObjectKind};
use userz_core::ids::RunId;
use userz_core::ports::{ChangeReader, Workspace};

/// Errors of host-side git operations.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The workspace's structure is not acceptable (a reader trick or a
    /// history that does not descend from the base).
    #[error("workspace rejected ({rule}): {detail}")]
    Rejected {
        /// Stable rule name (`git_dir_not_directory`, `alternates`, `commondir`,
        /// `grafts`, `replace_refs`, `history_not_from_base`, `merge_commit`,
        /// `branch_missing`, `push_rejected`).
        rule: &'static str,
        /// What was found.
        detail: String,
    },
    /// A libgit2 failure (I/O, missing object, remote refused …).
    #[error("git {op} failed: {source}")]
    Git {
        /// Operation.
        op: &'static str,
        /// The library error.
        #[source]
        source: git2::Error,
    },
    /// Bad input from the caller.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// Field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// A filesystem failure.
    #[error("{op}: {source}")]
    Io {
        /// Operation.
        op: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl GitError {
    fn git(op: &'static str) -> impl FnOnce(git2::Error) -> GitError {
        move |source| GitError::Git { op, source }
    }

    /// Stable code for logs and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            GitError::Rejected { rule, .. } => rule,
            GitError::Git { .. } => "git_error",
            GitError::Invalid { .. } => "invalid_input",
            GitError::Io { .. } => "io_error",
        }
    }
}

impl From<GitError> for userz_core::Error {
    fn from(e: GitError) -> Self {
        match &e {
            GitError::Rejected { .. } | GitError::Invalid { .. } => userz_core::Error::Invalid(e.to_string()),
            // A network or I/O hiccup may pass on retry; a missing object will not,
            // but retries are capped, so erring on "retryable" costs little.
            GitError::Git { .. } | GitError::Io { .. } => {
                userz_core::Error::Effect { port: "vcs", message: e.to_string(), retryable: true }
            }
        }
    }
}

/// Result with [`GitError`].
pub type Result<T, E = GitError> = std::result::Result<T, E>;

/// Checks a branch name the engine chose (`userz/…`): a valid, plain ref name.
pub fn check_branch_name(branch: &str) -> Result<()> {
    let ok = !branch.is_empty()
        && branch.len() <= 200
        && Reference::is_valid_name(&format!("refs/heads/{branch}"))
        && !branch.starts_with('-')
        && branch.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(GitError::Invalid { field: "branch", message: format!("{branch:?} is not a valid branch name") })
    }
}

/// Clones `remote` (a path or URL libgit2 can reach without credentials) into
/// `dir`, which must be empty, and puts the work tree on `branch`:
/// - `existing_branch = false`: a new branch at the tip of `base_branch` (the
///   remote's default branch when `None`);
/// - `existing_branch = true`: the remote's existing `branch` (a revision run
///   continues the same branch).
///
/// The copy keeps no remote, no `branch.*` tracking and no credential or URL
/// rewriting settings. Returns the workspace with the commit the branch started
/// from (the change list is computed against it).
pub fn prepare_workspace(
    remote: &str,
    base_branch: Option<&str>,
    run: RunId,
    branch: &str,
    existing_branch: bool,
    dir: &Path,
) -> Result<Workspace> {
    prepare_workspace_with(remote, None, base_branch, run, branch, existing_branch, dir)
}

/// HTTP Basic credentials for a smart-HTTP remote, held in memory only.
///
/// They reach libgit2 through its credential callback when the server asks
/// for authentication, and nowhere else: not in the remote URL, not in the
/// workspace's config, not in a file or the environment. The callback answers
/// once per operation; a second request (the server refused the credentials)
/// fails the operation instead of looping.
pub struct HttpCredentials {
    username: String,
    password: SecretString,
}

impl std::fmt::Debug for HttpCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCredentials").field("username", &self.username).field("password", &"[REDACTED]").finish()
    }
}

impl HttpCredentials {
    /// Credentials `username`/`password` (for a GitHub installation token:
    /// `x-access-token` and the token).
    pub fn new(username: impl Into<String>, password: SecretString) -> Self {
        Self { username: username.into(), password }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    fn callbacks(&self) -> RemoteCallbacks<'_> {
        let mut callbacks = RemoteCallbacks::new();
        let mut asked = false;
        callbacks.credentials(move |_url, _user_from_url, allowed| {
            if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                return Err(git2::Error::from_str("the remote asks for a credential type other than user/password"));
            }
            if asked {
                // libgit2 asks again when the server refused the first answer.
                return Err(git2::Error::new(
                    git2::ErrorCode::Auth,
                    git2::ErrorClass::Http,
                    "the remote refused the credentials (HTTP 401)",
                ));
            }
            asked = true;
            Cred::userpass_plaintext(&self.username, self.password.expose_secret())
        });
        callbacks
    }
}

/// Whether a libgit2 error is the remote refusing (or asking for) credentials.
pub fn is_auth_error(e: &GitError) -> bool {
    match e {
        GitError::Git { source, .. } => {
            let m = source.message();
            source.code() == git2::ErrorCode::Auth
                || m.contains("authentication required")
                || m.contains("status code: 401")
                || m.contains("(HTTP 401)")
        }
        _ => false,
    }
}

/// The branch `remote`'s `HEAD` points at (its default branch), asked over
/// the transport with optional in-memory credentials. No local repository is
/// created: libgit2 connects an in-memory remote, reads the advertised refs
/// and disconnects.
pub fn remote_default_branch(remote: &str, credentials: Option<&HttpCredentials>) -> Result<String> {
    let mut anon = git2::Remote::create_detached(remote).map_err(GitError::git("remote"))?;
    let callbacks = credentials.map(HttpCredentials::callbacks);
    let connection = anon.connect_auth(git2::Direction::Fetch, callbacks, None).map_err(GitError::git("connect"))?;
    let head = connection.default_branch().map_err(GitError::git("default branch"))?;
    let name = head
        .as_str()
        .map_err(|_| GitError::Invalid { field: "default_branch", message: "the remote's HEAD is not UTF-8".into() })?;
    let branch = name.strip_prefix("refs/heads/").ok_or_else(|| GitError::Invalid {
        field: "default_branch",
        message: format!("the remote's HEAD points at {name:?}, not a branch"),
    })?;
    check_branch_name(branch)?;
    Ok(branch.to_string())
}

/// [`prepare_workspace`] with optional HTTP credentials for the clone. The
/// credentials are used for the fetch only; the workspace keeps no remote, no
/// URL and no credential setting.
pub fn prepare_workspace_with(
    remote: &str,
    credentials: Option<&HttpCredentials>,
    base_branch: Option<&str>,
    run: RunId,
    branch: &str,
    existing_branch: bool,
    dir: &Path,
) -> Result<Workspace> {
    check_branch_name(branch)?;
    if let Some(b) = base_branch {
        check_branch_name(b).map_err(|_| GitError::Invalid {
            field: "base_branch",
            message: format!("{b:?} is not a valid branch name"),
        })?;
    }
    let mut entries = std::fs::read_dir(dir).map_err(|source| GitError::Io { op: "read workspace dir", source })?;
    if entries.next().is_some() {
        return Err(GitError::Invalid { field: "dir", message: format!("{} is not empty", dir.display()) });
    }
    let mut builder = git2::build::RepoBuilder::new();
    if let Some(creds) = credentials {
        let mut fetch = FetchOptions::new();
        fetch.remote_callbacks(creds.callbacks());
        builder.fetch_options(fetch);
    }
    let checkout_branch = if existing_branch { Some(branch) } else { base_branch };
    if let Some(b) = checkout_branch {
        builder.branch(b);
    }
    let repo = builder.clone(remote, dir).map_err(GitError::git("clone"))?;
    let head = repo.head().map_err(GitError::git("head"))?.peel_to_commit().map_err(GitError::git("head commit"))?;
    if !existing_branch {
        repo.branch(branch, &head, true).map_err(GitError::git("create branch"))?;
        repo.set_head(&format!("refs/heads/{branch}")).map_err(GitError::git("set head"))?;
    }
    strip_remote_config(&repo)?;
    Ok(Workspace { run, path: dir.to_path_buf(), branch: branch.to_string(), base_commit: head.id().to_string() })
}

const MINIMAL_CONFIG: &str =
    "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n";

/// Removes every remote (and with it `branch.*.remote`, remote-tracking refs)
/// and any section that could carry credentials or redirect URLs.
fn strip_remote_config(repo: &Repository) -> Result<()> {
    let remotes = repo.remotes().map_err(GitError::git("list remotes"))?;
    for name in remotes.iter().flatten().flatten() {
        repo.remote_delete(name).map_err(GitError::git("delete remote"))?;
    }
    // Then replace the local configuration with the minimum a work tree needs:
    // nothing from the clone (URLs, tracking, includes) survives.
    let path = repo.path().join("config");
    std::fs::write(&path, MINIMAL_CONFIG).map_err(|source| GitError::Io { op: "write config", source })?;
    for leftover in ["FETCH_HEAD", "ORIG_HEAD"] {
        let _ = std::fs::remove_file(repo.path().join(leftover));
    }
    Ok(())
}

/// A run's workspace opened for reading as untrusted data.
pub struct UntrustedWorkspace {
    repo: Repository,
    base: Oid,
    head: Oid,
    branch: String,
}

impl std::fmt::Debug for UntrustedWorkspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UntrustedWorkspace")
            .field("base", &self.base)
            .field("head", &self.head)
            .field("branch", &self.branch)
            .finish_non_exhaustive()
    }
}

impl UntrustedWorkspace {
    /// Checks the structure of `ws.path` and opens it (no repository search,
    /// no work-tree access), resolving the branch head.
    pub fn open(ws: &Workspace) -> Result<Self> {
        check_branch_name(&ws.branch)?;
        let git_dir = ws.path.join(".git");
        check_structure(&git_dir)?;
        let repo = Repository::open_ext(&git_dir, RepositoryOpenFlags::NO_SEARCH, std::iter::empty::<&Path>())
            .map_err(GitError::git("open"))?;
        let base = Oid::from_str(&ws.base_commit)
            .map_err(|_| GitError::Invalid { field: "base_commit", message: format!("{:?}", ws.base_commit) })?;
        let head = match repo.find_branch(&ws.branch, BranchType::Local) {
            Ok(b) => b.get().peel_to_commit().map_err(GitError::git("branch head"))?.id(),
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                return Err(GitError::Rejected { rule: "branch_missing", detail: ws.branch.clone() })
            }
            Err(e) => return Err(GitError::Git { op: "find branch", source: e }),
        };
        repo.find_commit(base).map_err(GitError::git("base commit"))?;
        Ok(Self { repo, base, head, branch: ws.branch.clone() })
    }

    /// The branch head that was read (the one to push).
    pub fn head(&self) -> Oid {
        self.head
    }

    /// Commits on the branch since the base, oldest first.
    pub fn commits(&self) -> Result<Vec<Oid>> {
        if self.head != self.base
            && !self.repo.graph_descendant_of(self.head, self.base).map_err(GitError::git("ancestry"))?
        {
            return Err(GitError::Rejected {
                rule: "history_not_from_base",
                detail: format!("{} does not descend from base {}", self.head, self.base),
            });
        }
        let mut walk = self.repo.revwalk().map_err(GitError::git("revwalk"))?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE).map_err(GitError::git("revwalk"))?;
        walk.push(self.head).map_err(GitError::git("revwalk"))?;
        walk.hide(self.base).map_err(GitError::git("revwalk"))?;
        walk.collect::<std::result::Result<Vec<_>, _>>().map_err(GitError::git("revwalk"))
    }

    /// The change list: every commit's own diff against its parent plus the
    /// overall base-to-head diff, deduplicated. Merge commits are refused (a
    /// merge could bring in a side history the per-commit diffs would not show).
    pub fn changes(&self) -> Result<Vec<Change>> {
        let mut all: BTreeMap<String, Change> = BTreeMap::new();
        for oid in self.commits()? {
            let commit = self.repo.find_commit(oid).map_err(GitError::git("commit"))?;
            if commit.parent_count() != 1 {
                return Err(GitError::Rejected {
                    rule: "merge_commit",
                    detail: format!("commit {oid} has {} parents", commit.parent_count()),
                });
            }
            let parent = commit.parent(0).map_err(GitError::git("parent"))?;
            self.diff(parent.tree_id(), commit.tree_id(), &mut all)?;
        }
        let base_tree = self.repo.find_commit(self.base).map_err(GitError::git("base"))?.tree_id();
        let head_tree = self.repo.find_commit(self.head).map_err(GitError::git("head"))?.tree_id();
        self.diff(base_tree, head_tree, &mut all)?;
        Ok(all.into_values().collect())
    }

    /// The unified diff from the base to the branch head, for people to
    /// read (binary files named, not shown), cut at `max` bytes with a
    /// marker. From git objects only, like [`changes`](Self::changes).
    pub fn patch(&self, max: usize) -> Result<String> {
        let base =
            self.repo.find_commit(self.base).map_err(GitError::git("base"))?.tree().map_err(GitError::git("tree"))?;
        let head =
            self.repo.find_commit(self.head).map_err(GitError::git("head"))?.tree().map_err(GitError::git("tree"))?;
        let diff = self.repo.diff_tree_to_tree(Some(&base), Some(&head), None).map_err(GitError::git("diff"))?;
        let mut out = Vec::new();
        let mut cut = false;
        diff.print(git2::DiffFormat::Patch, |_, _, line| {
            if out.len() >= max {
                cut = true;
                return false;
            }
            if matches!(line.origin(), '+' | '-' | ' ') {
                out.push(line.origin() as u8);
            }
            out.extend_from_slice(line.content());
            true
        })
        .or_else(|e| if cut { Ok(()) } else { Err(e) })
        .map_err(GitError::git("patch"))?;
        let mut text = String::from_utf8_lossy(&out).into_owned();
        if cut {
            text.push_str(&format!("\n[diff cut at {max} bytes]\n"));
        }
        Ok(text)
    }

    fn diff(&self, old: Oid, new: Oid, out: &mut BTreeMap<String, Change>) -> Result<()> {
        let old = self.repo.find_tree(old).map_err(GitError::git("tree"))?;
        let new = self.repo.find_tree(new).map_err(GitError::git("tree"))?;
        let mut opts = DiffOptions::new();
        opts.include_typechange(true).ignore_submodules(false).ignore_filemode(false);
        let mut diff =
            self.repo.diff_tree_to_tree(Some(&old), Some(&new), Some(&mut opts)).map_err(GitError::git("diff"))?;
        let mut find = DiffFindOptions::new();
        find.renames(true).copies(true).copies_from_unmodified(true).rename_limit(10_000);
        diff.find_similar(Some(&mut find)).map_err(GitError::git("find renames"))?;
        for delta in diff.deltas() {
            let old_file = delta.old_file();
            let new_file = delta.new_file();
            let lossy = |p: Option<&[u8]>| p.map(|b| String::from_utf8_lossy(b).into_owned());
            let old_path = lossy(old_file.path_bytes());
            let new_path = lossy(new_file.path_bytes());
            let status = delta.status();
            let (path, old_path) = match status {
                Delta::Deleted => (old_path.clone().unwrap_or_default(), None),
                Delta::Renamed | Delta::Copied => (new_path.clone().unwrap_or_default(), old_path),
                _ => (new_path.or(old_path).unwrap_or_default(), None),
            };
            let mode = |m: FileMode| -> Option<u32> {
                match m {
                    FileMode::Unreadable => None,
                    other => Some(u32::try_from(i32::from(other)).unwrap_or(0)),
                }
            };
            let old_mode = if status == Delta::Added { None } else { mode(old_file.mode()) };
            let new_mode = if status == Delta::Deleted { None } else { mode(new_file.mode()) };
            let object = if status == Delta::Deleted {
                ObjectKind::Deleted
            } else {
                match new_file.mode() {
                    FileMode::Link => {
                        let blob = self.repo.find_blob(new_file.id()).map_err(GitError::git("symlink blob"))?;
                        ObjectKind::Symlink { target: String::from_utf8_lossy(blob.content()).into_owned() }
                    }
                    FileMode::Commit => ObjectKind::Gitlink,
                    _ => ObjectKind::File,
                }
            };
            let change = Change { path, old_path, old_mode, new_mode, object };
            let key = serde_key(&change);
            out.entry(key).or_insert(change);
        }
        Ok(())
    }

    /// The branch name.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// Pushes the checked head to `remote` as `refs/heads/<branch>` (forced: the
    /// `userz/…` branches belong to the engine, and a retried run may rebuild
    /// one). libgit2 runs no pre-push hook; the workspace has no remotes, so the
    /// remote is anonymous and only `remote` is contacted.
    pub fn push_checked_head(&self, remote: &str) -> Result<()> {
        self.push_checked_head_with(remote, None)
    }

    /// [`push_checked_head`](Self::push_checked_head) with optional HTTP
    /// credentials answered from memory. A ref the server rejects fails the
    /// push (libgit2 reports per-ref rejections separately from transport
    /// errors).
    pub fn push_checked_head_with(&self, remote: &str, credentials: Option<&HttpCredentials>) -> Result<()> {
        // Point a ref the agent never saw at the checked head, and push that: if
        // the branch ref were changed after the check, this still pushes the
        // checked commit.
        let staging = format!("refs/userz/checked/{}", self.branch);
        self.repo.reference(&staging, self.head, true, "userz: checked head").map_err(GitError::git("stage ref"))?;
        let mut anon = self.repo.remote_anonymous(remote).map_err(GitError::git("remote"))?;
        let spec = format!("+{staging}:refs/heads/{}", self.branch);
        let rejected = std::cell::RefCell::new(None::<String>);
        {
            let mut callbacks = match credentials {
                Some(c) => c.callbacks(),
                None => RemoteCallbacks::new(),
            };
            callbacks.push_update_reference(|refname, status| {
                if let Some(msg) = status {
                    *rejected.borrow_mut() = Some(format!("{refname}: {msg}"));
                }
                Ok(())
            });
            let mut opts = PushOptions::new();
            opts.remote_callbacks(callbacks);
            anon.push(&[spec.as_str()], Some(&mut opts)).map_err(GitError::git("push"))?;
        }
        if let Some(detail) = rejected.into_inner() {
            return Err(GitError::Rejected { rule: "push_rejected", detail });
        }
        Ok(())
    }
}

fn serde_key(c: &Change) -> String {
    format!("{}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}", c.path, c.old_path, c.old_mode, c.new_mode, c.object)
}

/// Refuses the reader tricks that would make libgit2 read objects or refs from
/// outside the workspace.
fn check_structure(git_dir: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(git_dir).map_err(|source| GitError::Io { op: "stat .git", source })?;
    if !meta.file_type().is_dir() {
        return Err(GitError::Rejected {
            rule: "git_dir_not_directory",
            detail: format!(
                "{} is a {}",
                git_dir.display(),
                if meta.file_type().is_symlink() { "symlink" } else { "file" }
            ),
        });
    }
    let tricks: [(&str, &'static str); 4] = [
        ("commondir", "commondir"),
        ("objects/info/alternates", "alternates"),
        ("objects/info/http-alternates", "alternates"),
        ("info/grafts", "grafts"),
    ];
    for (rel, rule) in tricks {
        let p = git_dir.join(rel);
        if std::fs::symlink_metadata(&p).is_ok() {
            return Err(GitError::Rejected { rule, detail: format!("{} exists", p.display()) });
        }
    }
    // Every directory the reader walks must be a real directory inside the
    // workspace, not a symlink to another run's repository.
    for rel in ["objects", "refs", "refs/heads", "objects/pack"] {
        let p = git_dir.join(rel);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                return Err(GitError::Rejected {
                    rule: "git_dir_not_directory",
                    detail: format!("{} is not a plain directory", p.display()),
                })
            }
            Err(_) if rel == "objects/pack" => {}
            Err(source) => return Err(GitError::Io { op: "stat .git entry", source }),
        }
    }
    let replace = git_dir.join("refs/replace");
    if std::fs::read_dir(&replace).map(|mut d| d.next().is_some()).unwrap_or(false) {
        return Err(GitError::Rejected { rule: "replace_refs", detail: format!("{} is not empty", replace.display()) });
    }
    if let Ok(packed) = std::fs::read_to_string(git_dir.join("packed-refs")) {
        if packed.lines().any(|l| l.contains(" refs/replace/")) {
            return Err(GitError::Rejected { rule: "replace_refs", detail: "packed-refs holds refs/replace/*".into() });
        }
    }
    Ok(())
}

/// Brings a run's result that came back as a git pack (the microVM sandbox:
/// the host never mounts what the guest wrote) into the host's copy of the
/// workspace, as untrusted data.
///
/// The pack is indexed by libgit2 in user space (object ids recomputed from
/// the contents, the trailing checksum verified). Then `head` must name a
/// commit that is `ws.base_commit` or descends from it, and every commit
/// since the base, its tree and every tree and blob under it must parse as
/// the kind its parent entry claims (a pack whose objects lie about their
/// type is refused). Only then is the run's branch moved to `head`; the work
/// tree is not touched (the change reader and the push read commits).
///
/// # Errors
/// [`GitError::Rejected`] with rule `pack_invalid` (the pack did not index),
/// `pack_head_invalid` (no such commit, or not from the base) or
/// `pack_object_kind` (an object is not what it is used as).
pub fn import_result_pack(ws: &Workspace, head: &str, pack: &[u8]) -> Result<Oid> {
    use std::io::Write as _;
    let git_dir = ws.path.join(".git");
    check_structure(&git_dir)?;
    let repo = Repository::open_ext(&git_dir, RepositoryOpenFlags::NO_SEARCH, std::iter::empty::<&Path>())
        .map_err(GitError::git("open"))?;
    let reject = |rule: &'static str, detail: String| GitError::Rejected { rule, detail };
    let odb = repo.odb().map_err(GitError::git("odb"))?;
    if !pack.is_empty() {
        let mut writer = odb.packwriter().map_err(GitError::git("packwriter"))?;
        writer.write_all(pack).map_err(|e| reject("pack_invalid", e.to_string()))?;
        writer.commit().map_err(|e| reject("pack_invalid", e.message().to_string()))?;
    }
    let base = Oid::from_str(&ws.base_commit)
        .map_err(|_| GitError::Invalid { field: "base_commit", message: format!("{:?}", ws.base_commit) })?;
    let head =
        Oid::from_str(head.trim()).map_err(|_| reject("pack_head_invalid", format!("{head:?} is not an object id")))?;
    let commit = repo.find_commit(head).map_err(|e| reject("pack_head_invalid", e.message().to_string()))?;
    if head != base && !repo.graph_descendant_of(head, base).map_err(GitError::git("ancestry"))? {
        return Err(reject("pack_head_invalid", format!("{head} does not descend from base {base}")));
    }
    drop(commit);
    let mut walk = repo.revwalk().map_err(GitError::git("revwalk"))?;
    walk.push(head).map_err(GitError::git("revwalk"))?;
    walk.hide(base).map_err(GitError::git("revwalk"))?;
    let mut seen = std::collections::HashSet::new();
    for oid in walk {
        let oid = oid.map_err(|e| reject("pack_object_kind", e.message().to_string()))?;
        let commit =
            repo.find_commit(oid).map_err(|e| reject("pack_object_kind", format!("commit {oid}: {}", e.message())))?;
        let mut trees = vec![commit.tree_id()];
        while let Some(t) = trees.pop() {
            if !seen.insert(t) {
                continue;
            }
            let tree =
                repo.find_tree(t).map_err(|e| reject("pack_object_kind", format!("tree {t}: {}", e.message())))?;
            for entry in tree.iter() {
                match entry.kind() {
                    Some(git2::ObjectType::Tree) => trees.push(entry.id()),
                    Some(git2::ObjectType::Blob) => {
                        if seen.insert(entry.id()) {
                            let (_, kind) = odb.read_header(entry.id()).map_err(|e| {
                                reject("pack_object_kind", format!("blob {}: {}", entry.id(), e.message()))
                            })?;
                            if kind != git2::ObjectType::Blob {
                                return Err(reject(
                                    "pack_object_kind",
                                    format!("{} is used as a blob but is a {kind}", entry.id()),
                                ));
                            }
                        }
                    }
                    // Submodule links point outside the repository.
                    Some(git2::ObjectType::Commit) => {}
                    other => {
                        return Err(reject("pack_object_kind", format!("entry {:?} of kind {other:?}", entry.name())))
                    }
                }
            }
        }
    }
    repo.reference(&format!("refs/heads/{}", ws.branch), head, true, "userz: result pack")
        .map_err(GitError::git("update branch"))?;
    Ok(head)
}

/// Deletes a workspace directory without following symlinks in it. Missing is
/// fine (discard is idempotent).
pub fn remove_workspace(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(GitError::Io { op: "remove workspace", source }),
    }
}

/// Where a workspace's git directory is.
pub fn git_dir(ws: &Workspace) -> PathBuf {
    ws.path.join(".git")
}

/// The largest diff [`GitChangeReader`] returns for people to read.
pub const PATCH_BYTES: usize = 256 << 10;

/// The [`ChangeReader`] port over [`UntrustedWorkspace`]: change lists from git
/// objects, workspaces deleted on discard.
#[derive(Debug, Clone, Copy, Default)]
pub struct GitChangeReader;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> userz_core::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| userz_core::Error::Effect { port: "vcs", message: format!("git task: {e}"), retryable: true })?
        .map_err(Into::into)
}

#[async_trait]
impl ChangeReader for GitChangeReader {
    async fn changes(&self, workspace: &Workspace) -> userz_core::Result<Vec<Change>> {
        let ws = workspace.clone();
        blocking(move || UntrustedWorkspace::open(&ws)?.changes()).await
    }

    async fn diff(&self, workspace: &Workspace) -> userz_core::Result<Option<String>> {
        let ws = workspace.clone();
        blocking(move || UntrustedWorkspace::open(&ws)?.patch(PATCH_BYTES).map(Some)).await
    }

    async fn discard(&self, workspace: &Workspace) -> userz_core::Result<()> {
        let path = workspace.path.clone();
        if path.as_os_str().is_empty() {
            return Ok(());
        }
        blocking(move || remove_workspace(&path)).await
    }
}
