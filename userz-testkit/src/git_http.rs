//! A real git smart-HTTP server for tests: `git http-backend` (CGI) behind
//! lighttpd on `127.0.0.1`, requiring a token as the HTTP Basic password.
//!
//! Each [`GitHttpServer`] owns a temporary directory with its bare
//! repositories and a generated lighttpd configuration, and its own lighttpd
//! process, stopped when the server is dropped. The token is never written:
//! the password file holds its SHA-1 digest in lighttpd's `{SHA}` form, and the
//! `Authorization` header is removed before the CGI runs, so `git
//! http-backend` sees only `REMOTE_USER`. `scripts/services.sh` installs
//! lighttpd when missing.
//!
//! Repositories live under `/git/<owner>/<name>.git` (GitLab-style nested
//! groups, `/git/<group>/<sub>/<name>.git`, work too);
//! [`GitHttpServer::git_base`] is the base URL a provider is configured with.
//! The accepted user name is [`GIT_HTTP_USER`] unless the server is started
//! with [`GitHttpServer::start_with_user`] (GitLab documents `oauth2` for
//! tokens).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// User name the server accepts (the one GitHub documents for installation
/// tokens).
pub const GIT_HTTP_USER: &str = "x-access-token";

/// A running lighttpd + `git http-backend` with its repositories.
#[derive(Debug)]
pub struct GitHttpServer {
    child: Child,
    root: tempfile::TempDir,
    addr: SocketAddr,
}

fn find_lighttpd() -> io::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join("lighttpd")).find(|p| p.is_file()).ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "lighttpd not found: scripts/services.sh installs the Debian package")
    })
}

fn git_http_backend() -> io::Result<PathBuf> {
    let out = Command::new("git").arg("--exec-path").stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other("`git --exec-path` failed"));
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let backend = dir.join("git-http-backend");
    if backend.is_file() {
        Ok(backend)
    } else {
        Err(io::Error::new(io::ErrorKind::NotFound, format!("{} is missing", backend.display())))
    }
}

/// `owner/name`, or `group/sub/…/name` (at least two segments).
fn check_location(location: &str) -> io::Result<()> {
    let invalid = || io::Error::new(io::ErrorKind::InvalidInput, format!("{location:?} is not owner/name"));
    let ok = |s: &str| {
        !s.is_empty() && s != "." && s != ".." && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let segments: Vec<&str> = location.split('/').collect();
    if segments.len() >= 2 && segments.iter().all(|s| ok(s)) {
        Ok(())
    } else {
        Err(invalid())
    }
}

impl GitHttpServer {
    /// Starts a server that accepts `x-access-token:<token>` and nothing else.
    pub async fn start(token: &str) -> io::Result<Self> {
        Self::start_with_user(GIT_HTTP_USER, token).await
    }

    /// Starts a server that accepts `<user>:<token>` and nothing else.
    pub async fn start_with_user(user: &str, token: &str) -> io::Result<Self> {
        if user.is_empty() || !user.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{user:?} is not a plain user name")));
        }
        let (user, token) = (user.to_string(), token.to_string());
        tokio::task::spawn_blocking(move || Self::start_blocking(&user, &token)).await.map_err(io::Error::other)?
    }

    fn start_blocking(user: &str, token: &str) -> io::Result<Self> {
        let lighttpd = find_lighttpd()?;
        let backend = git_http_backend()?;
        let root = tempfile::Builder::new().prefix("userz-git-http-").tempdir()?;
        let repos = root.path().join("repos");
        std::fs::create_dir_all(&repos)?;
        let digest = sha1_smol::Sha1::from(token.as_bytes()).digest().bytes();
        let users = root.path().join("users");
        std::fs::write(
            &users,
            format!("{user}:{{SHA}}{}\n", base64::engine::general_purpose::STANDARD.encode(digest)),
        )?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let conf = root.path().join("lighttpd.conf");
        let q = |p: &Path| format!("\"{}\"", p.display());
        std::fs::write(
            &conf,
            format!(
                r#"server.document-root = {repos}
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = {errorlog}
server.modules = ("mod_alias", "mod_auth", "mod_authn_file", "mod_setenv", "mod_cgi")
alias.url = ("/git/" => "{backend}/")
cgi.assign = ("" => "")
setenv.set-environment = ("GIT_PROJECT_ROOT" => {repos}, "GIT_HTTP_EXPORT_ALL" => "1")
# The CGI must not see the credentials: mod_auth has checked them by now.
setenv.set-request-header = ("Authorization" => "")
auth.backend = "htpasswd"
auth.backend.htpasswd.userfile = {users}
auth.require = ("/" => ("method" => "basic", "realm" => "userz-git", "require" => "valid-user"))
"#,
                repos = q(&repos),
                errorlog = q(&root.path().join("error.log")),
                backend = backend.display(),
                users = q(&users),
            ),
        )?;
        let child = Command::new(lighttpd)
            .arg("-D")
            .arg("-f")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut server = Self { child, root, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                let log = std::fs::read_to_string(server.root.path().join("error.log")).unwrap_or_default();
                return Err(io::Error::other(format!("lighttpd exited with {status}: {log}")));
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "lighttpd did not listen within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The base URL repositories are under (`http://127.0.0.1:PORT/git`).
    pub fn git_base(&self) -> String {
        format!("http://{}/git", self.addr)
    }

    /// The clone URL of `owner/name`.
    pub fn url_for(&self, location: &str) -> String {
        format!("{}/{location}.git", self.git_base())
    }

    /// The directory holding the server's repositories and configuration.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The bare repository of `owner/name` on disk.
    pub fn repo_path(&self, location: &str) -> PathBuf {
        self.root.path().join("repos").join(format!("{location}.git"))
    }

    /// Creates the bare repository `owner/name` (pushes allowed), seeded with
    /// one commit on `main` (a `README.md`). Returns the commit id.
    pub fn create_repo(&self, location: &str) -> io::Result<String> {
        check_location(location)?;
        let path = self.repo_path(location);
        let mut opts = git2::RepositoryInitOptions::new();
        opts.bare(true).initial_head("main").mkpath(true);
        let repo = git2::Repository::init_opts(&path, &opts).map_err(io::Error::other)?;
        repo.config().and_then(|mut c| c.set_bool("http.receivepack", true)).map_err(io::Error::other)?;
        let blob = repo.blob(format!("# {location}\n\nSeeded by the userz test git server.\n").as_bytes());
        let blob = blob.map_err(io::Error::other)?;
        let mut tree = repo.treebuilder(None).map_err(io::Error::other)?;
        tree.insert("README.md", blob, 0o100_644).map_err(io::Error::other)?;
        let tree = repo.find_tree(tree.write().map_err(io::Error::other)?).map_err(io::Error::other)?;
        let sig = git2::Signature::now("Userz Test", "test@userz.invalid").map_err(io::Error::other)?;
        let commit = repo.commit(Some("refs/heads/main"), &sig, &sig, "Initial commit", &tree, &[]);
        Ok(commit.map_err(io::Error::other)?.to_string())
    }

    /// The commit `refs/heads/<branch>` of `owner/name` points at, if any.
    pub fn branch_head(&self, location: &str, branch: &str) -> io::Result<Option<String>> {
        let repo = git2::Repository::open_bare(self.repo_path(location)).map_err(io::Error::other)?;
        let found = repo.find_reference(&format!("refs/heads/{branch}"));
        match found {
            Ok(r) => Ok(r.target().map(|o| o.to_string())),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(io::Error::other(e)),
        }
    }

    /// Messages of the commits reachable from `branch`, newest first.
    pub fn branch_log(&self, location: &str, branch: &str) -> io::Result<Vec<String>> {
        let repo = git2::Repository::open_bare(self.repo_path(location)).map_err(io::Error::other)?;
        let mut walk = repo.revwalk().map_err(io::Error::other)?;
        walk.push_ref(&format!("refs/heads/{branch}")).map_err(io::Error::other)?;
        let mut out = Vec::new();
        for oid in walk {
            let commit = repo.find_commit(oid.map_err(io::Error::other)?).map_err(io::Error::other)?;
            out.push(commit.message().unwrap_or_default().to_string());
        }
        Ok(out)
    }

    /// lighttpd's error log so far (it notes refused credentials).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
