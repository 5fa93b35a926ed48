//! Workspace-confined file tools: `read_file`, `write_file`, `edit_file`,
//! `search`.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use serde::Serialize;

/// Why a tool call was refused. `code()` is the stable name the model sees.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The path was absolute.
    #[error("absolute paths are not allowed: {0}")]
    AbsolutePath(String),
    /// The path had a `..` component.
    #[error("'..' is not allowed in paths: {0}")]
    ParentComponent(String),
    /// The path was empty.
    #[error("empty path")]
    EmptyPath,
    /// The path named git's own data.
    #[error("the .git directory is off limits: {0}")]
    GitInternal(String),
    /// Resolving the path left the workspace (a symlink pointing outside).
    #[error("path leads outside the workspace: {0}")]
    EscapesWorkspace(String),
    /// Nothing at the path.
    #[error("not found: {0}")]
    NotFound(String),
    /// The file is larger than the tool reads.
    #[error("{path} is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// `edit_file`: the search text does not occur.
    #[error("the text to replace does not occur in {0}")]
    NoMatch(String),
    /// `edit_file`: the search text occurs more than once.
    #[error("the text to replace occurs {count} times in {path}; it must be unique")]
    NotUnique {
        /// The file.
        path: String,
        /// Occurrences.
        count: usize,
    },
    /// `search`: the pattern is not a valid regex.
    #[error("invalid pattern: {0}")]
    InvalidPattern(String),
    /// `git_add`: a directory on the way to the path is a symbolic link (git
    /// never records a path beyond a symlink).
    #[error("a directory on the way to {0} is a symbolic link")]
    BeyondSymlink(String),
    /// `git_add`: the path is ignored by `.gitignore` (it is never staged).
    #[error("{0} is ignored by .gitignore")]
    IgnoredPath(String),
    /// The workspace is not a git work tree (or its work tree is elsewhere).
    #[error("not a git work tree: {0}")]
    NotARepository(String),
    /// `git_commit`: the index has the same tree as `HEAD`.
    #[error("nothing to commit: the index matches HEAD")]
    EmptyCommit,
    /// `git_commit`: the message is empty.
    #[error("the commit message is empty")]
    EmptyMessage,
    /// `git_commit`: the task's author name or email is not usable in a signature.
    #[error("bad commit author: {0}")]
    BadAuthor(String),
    /// No tool has this name.
    #[error("no tool named {0:?}")]
    UnknownTool(String),
    /// Any other libgit2 failure.
    #[error("git: {0}")]
    Git(String),
    /// Any other I/O failure.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
}

impl ToolError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ToolError::AbsolutePath(_) => "absolute_path",
            ToolError::ParentComponent(_) => "parent_component",
            ToolError::EmptyPath => "empty_path",
            ToolError::GitInternal(_) => "git_internal",
            ToolError::EscapesWorkspace(_) => "escapes_workspace",
            ToolError::NotFound(_) => "not_found",
            ToolError::TooLarge { .. } => "too_large",
            ToolError::NoMatch(_) => "no_match",
            ToolError::NotUnique { .. } => "not_unique",
            ToolError::InvalidPattern(_) => "invalid_pattern",
            ToolError::BeyondSymlink(_) => "beyond_symlink",
            ToolError::IgnoredPath(_) => "ignored_path",
            ToolError::NotARepository(_) => "not_a_repository",
            ToolError::EmptyCommit => "empty_commit",
            ToolError::EmptyMessage => "empty_message",
            ToolError::BadAuthor(_) => "bad_author",
            ToolError::UnknownTool(_) => "unknown_tool",
            ToolError::Git(_) => "git",
            ToolError::Io { .. } => "io",
        }
    }
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hit {
    /// Workspace-relative path.
    pub path: String,
    /// 1-based line number.
    pub line: usize,
    /// The line (truncated to 400 characters).
    pub text: String,
}

/// The agent's view of the repository: every path is relative to it.
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    dir: Dir,
    max_read: u64,
    max_hits: usize,
}

impl Workspace {
    /// Opens the workspace at `root` (the host or sandbox path of the checkout).
    pub fn open(root: impl AsRef<Path>) -> Result<Self, ToolError> {
        let root = root.as_ref().to_path_buf();
        let dir = Dir::open_ambient_dir(&root, ambient_authority())
            .map_err(|e| ToolError::Io { path: root.display().to_string(), message: e.to_string() })?;
        Ok(Self { root, dir, max_read: 1 << 20, max_hits: 200 })
    }

    /// Largest file `read_file` returns (default 1 MiB).
    pub fn with_max_read(mut self, bytes: u64) -> Self {
        self.max_read = bytes;
        self
    }

    /// Most hits `search` returns (default 200).
    pub fn with_max_hits(mut self, n: usize) -> Self {
        self.max_hits = n;
        self
    }

    /// Checks a model-supplied path and returns it as a relative path.
    pub fn confine(&self, path: &str) -> Result<PathBuf, ToolError> {
        if path.trim().is_empty() {
            return Err(ToolError::EmptyPath);
        }
        let p = Path::new(path);
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                Component::Prefix(_) | Component::RootDir => return Err(ToolError::AbsolutePath(path.into())),
                Component::ParentDir => return Err(ToolError::ParentComponent(path.into())),
                Component::CurDir => {}
                Component::Normal(n) => {
                    if out.as_os_str().is_empty() && n.to_string_lossy().eq_ignore_ascii_case(".git") {
                        return Err(ToolError::GitInternal(path.into()));
                    }
                    out.push(n);
                }
            }
        }
        if out.as_os_str().is_empty() {
            return Err(ToolError::EmptyPath);
        }
        Ok(out)
    }

    /// The workspace root as opened.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Checks a path for `git_add`: the [`confine`](Self::confine) rules, no
    /// `.git` component anywhere, and no symlinked directory on the way (git
    /// never records a path beyond a symlink, and following one could read
    /// outside the workspace). Returns the relative path and whether something
    /// exists there (a deleted file is staged as a removal).
    pub fn confine_for_git(&self, path: &str) -> Result<(PathBuf, bool), ToolError> {
        let rel = self.confine(path)?;
        if rel.components().any(|c| c.as_os_str().to_string_lossy().eq_ignore_ascii_case(".git")) {
            return Err(ToolError::GitInternal(path.into()));
        }
        let mut prefix = PathBuf::new();
        let mut parts = rel.components().peekable();
        while let Some(c) = parts.next() {
            prefix.push(c);
            let meta = match self.dir.symlink_metadata(&prefix) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((rel, false)),
                Err(e) => return Err(Self::io_err(path, e)),
            };
            if parts.peek().is_some() && meta.file_type().is_symlink() {
                return Err(ToolError::BeyondSymlink(path.into()));
            }
        }
        Ok((rel, true))
    }

    fn io_err(path: &str, e: std::io::Error) -> ToolError {
        match e.kind() {
            std::io::ErrorKind::NotFound => ToolError::NotFound(path.into()),
            // cap-std reports a resolution that leaves the directory as PermissionDenied.
            std::io::ErrorKind::PermissionDenied => ToolError::EscapesWorkspace(path.into()),
            _ => ToolError::Io { path: path.into(), message: e.to_string() },
        }
    }

    /// Reads a UTF-8 text file (invalid sequences replaced).
    pub fn read_file(&self, path: &str) -> Result<String, ToolError> {
        let rel = self.confine(path)?;
        let meta = self.dir.metadata(&rel).map_err(|e| Self::io_err(path, e))?;
        if meta.len() > self.max_read {
            return Err(ToolError::TooLarge { path: path.into(), size: meta.len(), limit: self.max_read });
        }
        let bytes = self.dir.read(&rel).map_err(|e| Self::io_err(path, e))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Writes (creates or replaces) a file, creating parent directories.
    pub fn write_file(&self, path: &str, content: &str) -> Result<(), ToolError> {
        let rel = self.confine(path)?;
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            if self.dir.symlink_metadata(parent).is_ok() {
                // It exists (possibly as a symlink): resolving it through the
                // confined handle refuses a link that leaves the workspace.
                self.dir.metadata(parent).map_err(|e| Self::io_err(path, e))?;
            } else {
                self.dir.create_dir_all(parent).map_err(|e| Self::io_err(path, e))?;
            }
        }
        // A symlink at the target itself is replaced, never written through.
        if let Ok(m) = self.dir.symlink_metadata(&rel) {
            if m.file_type().is_symlink() {
                self.dir.remove_file(&rel).map_err(|e| Self::io_err(path, e))?;
            }
        }
        let mut f = self.dir.create(&rel).map_err(|e| Self::io_err(path, e))?;
        f.write_all(content.as_bytes()).map_err(|e| Self::io_err(path, e))
    }

    /// Replaces the single occurrence of `old` with `new`.
    pub fn edit_file(&self, path: &str, old: &str, new: &str) -> Result<(), ToolError> {
        if old.is_empty() {
            return Err(ToolError::NoMatch(path.into()));
        }
        let text = self.read_file(path)?;
        let count = text.matches(old).count();
        match count {
            0 => Err(ToolError::NoMatch(path.into())),
            1 => self.write_file(path, &text.replacen(old, new, 1)),
            count => Err(ToolError::NotUnique { path: path.into(), count }),
        }
    }

    /// Searches files (respecting `.gitignore`, never following symlinks) for
    /// lines matching `pattern`.
    pub fn search(&self, pattern: &str) -> Result<Vec<Hit>, ToolError> {
        let re = regex::Regex::new(pattern).map_err(|e| ToolError::InvalidPattern(e.to_string()))?;
        let mut hits = Vec::new();
        let walker = ignore::WalkBuilder::new(&self.root)
            .follow_links(false)
            .hidden(false)
            .git_ignore(true)
            .require_git(false)
            .build();
        for entry in walker.flatten() {
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(&self.root) else { continue };
            let rel_s = rel.to_string_lossy().to_string();
            if rel.components().next().is_some_and(|c| c.as_os_str().eq_ignore_ascii_case(".git")) {
                continue;
            }
            // Read through the confined handle, never the walker's path.
            let Ok(text) = self.read_file(&rel_s) else { continue };
            for (i, line) in text.lines().enumerate() {
                if re.is_match(line) {
                    hits.push(Hit { path: rel_s.clone(), line: i + 1, text: line.chars().take(400).collect() });
                    if hits.len() >= self.max_hits {
                        return Ok(hits);
                    }
                }
            }
        }
        Ok(hits)
    }
}
