//! First start: a demo org, App and Repo, with a local bare repository served
//! through the branch-only provider, so the whole loop runs with no account
//! anywhere.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use userz_core::domain::repo::Provider;
use userz_core::ids::{AppId, OrgId, RepoId, UserId};
use userz_engine::admin::{NewApp, NewRepo};

use crate::ServerError;

/// What the first start created (not secret: the public key is public).
/// `demo.json` holds the ids as the CLI and the README write them
/// (`org_…`); files of older starts with bare UUIDs still load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoInfo {
    /// Org.
    #[serde(with = "shown_id")]
    pub org: OrgId,
    /// Owner.
    #[serde(with = "shown_id")]
    pub owner: UserId,
    /// Owner's e-mail (signs in to the dashboard).
    pub owner_email: String,
    /// App.
    #[serde(with = "shown_id")]
    pub app: AppId,
    /// The App's `pub_` key.
    pub public_key: String,
    /// Repo.
    #[serde(with = "shown_id")]
    pub repo: RepoId,
    /// The local bare repository branches are pushed to.
    pub repository: PathBuf,
}

const MARKER: &str = "demo.json";

/// An id in its shown form (`org_…`), read back in either form.
mod shown_id {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(id: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Reads what an earlier start created.
pub fn load(data_dir: &Path) -> Result<Option<DemoInfo>, ServerError> {
    let path = data_dir.join(MARKER);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map(Some).map_err(|e| ServerError::Setup(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ServerError::Setup(format!("{}: {e}", path.display()))),
    }
}

/// Creates the demo data through the admin API (on first start only: the
/// marker file written at the end says it is done).
pub async fn create(
    admin: &userz_engine::admin::Admin,
    data_dir: &Path,
    owner_email: &str,
    allowed_origin: &str,
) -> Result<DemoInfo, ServerError> {
    let repository = data_dir.join("demo-repo.git");
    if !repository.exists() {
        seed_repository(&repository)?;
    }
    let fail = |what: &str, e: userz_engine::admin::AdminError| ServerError::Setup(format!("demo {what}: {e}"));
    let owner = UserId::new();
    let org = admin.create_org("Demo", owner, owner_email).await.map_err(|e| fail("org", e))?;
    let mut new_app = NewApp::named("Demo web app");
    new_app.allowed_origins = vec![allowed_origin.to_string()];
    let created = admin.create_app(org, new_app).await.map_err(|e| fail("app", e))?;
    let remote = repository.to_str().ok_or_else(|| ServerError::Setup("data dir path is not UTF-8".into()))?;
    let repo = admin
        .create_repo(
            org,
            created.app,
            NewRepo {
                provider: Provider::Git { remote: remote.to_string() },
                base_branch: Some("main".into()),
                branch_prefix: None,
                forbidden_paths: Vec::new(),
            },
        )
        .await
        .map_err(|e| fail("repo", e))?;
    let info = DemoInfo {
        org,
        owner,
        owner_email: owner_email.to_string(),
        app: created.app,
        public_key: created.public_key,
        repo,
        repository,
    };
    let path = data_dir.join(MARKER);
    let bytes = serde_json::to_vec_pretty(&info).map_err(|e| ServerError::Setup(e.to_string()))?;
    std::fs::write(&path, bytes).map_err(|e| ServerError::Setup(format!("{}: {e}", path.display())))?;
    Ok(info)
}

const DEMO_FILES: &[(&str, &str)] = &[
    ("README.md", "# Demo web app\n\nA tiny page whose Save button does nothing.\n"),
    (
        "index.html",
        "<!doctype html>\n<html><body>\n<textarea id=\"doc\"></textarea>\n<button id=\"save\">Save</button>\n\
         <script src=\"src/app.js\"></script>\n</body></html>\n",
    ),
    (
        "src/app.js",
        "function save() {\n  return null;\n}\n\ndocument.getElementById('save').addEventListener('click', save);\n",
    ),
];

/// A bare repository with one commit on `main`, written through libgit2.
fn seed_repository(path: &Path) -> Result<(), ServerError> {
    let err = |e: git2::Error| ServerError::Setup(format!("demo repository {}: {e}", path.display()));
    let repo = git2::Repository::init_bare(path).map_err(err)?;
    let mut root = repo.treebuilder(None).map_err(err)?;
    let mut src = repo.treebuilder(None).map_err(err)?;
    for (name, body) in DEMO_FILES {
        let blob = repo.blob(body.as_bytes()).map_err(err)?;
        match name.strip_prefix("src/") {
            Some(file) => src.insert(file, blob, 0o100644).map_err(err)?,
            None => root.insert(name, blob, 0o100644).map_err(err)?,
        };
    }
    let src_tree = src.write().map_err(err)?;
    root.insert("src", src_tree, 0o040000).map_err(err)?;
    let tree = repo.find_tree(root.write().map_err(err)?).map_err(err)?;
    let sig = git2::Signature::now("Userz demo", "demo@userz.invalid").map_err(err)?;
    repo.commit(Some("refs/heads/main"), &sig, &sig, "Demo app", &tree, &[]).map_err(err)?;
    repo.set_head("refs/heads/main").map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn demo_json_holds_the_ids_as_shown_and_reads_older_uuid_files() {
        let info = DemoInfo {
            org: OrgId::new(),
            owner: UserId::new(),
            owner_email: "o@example.test".into(),
            app: AppId::new(),
            public_key: "pub_x".into(),
            repo: RepoId::new(),
            repository: PathBuf::from("/r.git"),
        };
        let json: serde_json::Value = serde_json::to_value(&info).unwrap();
        assert_eq!(json["org"], info.org.to_string());
        assert!(json["app"].as_str().unwrap().starts_with("app_"), "{json}");
        assert_eq!(serde_json::from_value::<DemoInfo>(json).unwrap(), info);
        let mut old = serde_json::to_value(&info).unwrap();
        old["org"] = serde_json::Value::String(info.org.as_uuid().to_string());
        assert_eq!(serde_json::from_value::<DemoInfo>(old).unwrap().org, info.org);
    }

    #[test]
    fn the_demo_repository_has_main_with_the_files() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("r.git");
        seed_repository(&path).unwrap();
        let repo = git2::Repository::open_bare(&path).unwrap();
        let head = repo.head().unwrap();
        assert_eq!(head.name().unwrap(), "refs/heads/main");
        let tree = head.peel_to_tree().unwrap();
        let app = tree.get_path(Path::new("src/app.js")).unwrap();
        let blob = repo.find_blob(app.id()).unwrap();
        assert!(std::str::from_utf8(blob.content()).unwrap().contains("return null;"));
    }
}
