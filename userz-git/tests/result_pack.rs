//! `import_result_pack`: a run's commits coming back as a git pack (the
//! microVM sandbox) are indexed and checked in user space before the branch
//! moves. A corrupted pack, a pack whose objects lie about their type, and a
//! head that is not a commit from the base are refused with their rule, and
//! the branch stays where it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::git;
use git2::{ObjectType, Oid, Repository};
use userz_core::ids::RunId;
use userz_core::ports::Workspace;
use userz_git::{import_result_pack, prepare_workspace, GitError, UntrustedWorkspace};

/// The host's prepared workspace and a copy of it standing in for the guest's disk.
fn fixture(tmp: &Path) -> (Workspace, Repository) {
    let seed = tmp.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(tmp, &["init", "-q", seed.to_str().unwrap()]);
    std::fs::write(seed.join("app.js"), "console.log('v1')\n").unwrap();
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-qm", "seed"]);
    let bare = tmp.join("remote.git");
    git(tmp, &["clone", "-q", "--bare", seed.to_str().unwrap(), bare.to_str().unwrap()]);
    let dir = tmp.join("ws");
    std::fs::create_dir(&dir).unwrap();
    let ws = prepare_workspace(bare.to_str().unwrap(), None, RunId::new(), "userz/fix-1", false, &dir).unwrap();
    let guest = tmp.join("guest");
    git(tmp, &["clone", "-q", "-b", "userz/fix-1", dir.to_str().unwrap(), guest.to_str().unwrap()]);
    (ws, Repository::open(&guest).unwrap())
}

fn pack_of(repo: &Repository, objects: &[Oid]) -> Vec<u8> {
    let mut pb = repo.packbuilder().unwrap();
    for o in objects {
        pb.insert_object(*o, None).unwrap();
    }
    let mut buf = git2::Buf::new();
    pb.write_buf(&mut buf).unwrap();
    buf.to_vec()
}

/// A real commit on the guest's branch and the pack the guest would send.
fn guest_commit(ws: &Workspace, guest: &Repository) -> (Oid, Vec<u8>) {
    let dir = guest.workdir().unwrap();
    std::fs::write(dir.join("app.js"), "console.log('v2')\n").unwrap();
    git(dir, &["commit", "-qam", "fix"]);
    let head = guest.head().unwrap().peel_to_commit().unwrap().id();
    let mut walk = guest.revwalk().unwrap();
    walk.push(head).unwrap();
    walk.hide(Oid::from_str(&ws.base_commit).unwrap()).unwrap();
    let mut pb = guest.packbuilder().unwrap();
    pb.insert_walk(&mut walk).unwrap();
    let mut buf = git2::Buf::new();
    pb.write_buf(&mut buf).unwrap();
    (head, buf.to_vec())
}

fn branch_head(ws: &Workspace) -> String {
    git(&ws.path, &["rev-parse", &ws.branch])
}

fn rule(e: GitError) -> &'static str {
    match e {
        GitError::Rejected { rule, .. } => rule,
        other => panic!("not a rejection: {other}"),
    }
}

#[test]
fn a_valid_pack_moves_the_branch_and_the_change_list_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (ws, guest) = fixture(tmp.path());
    let (head, pack) = guest_commit(&ws, &guest);
    assert_eq!(import_result_pack(&ws, &head.to_string(), &pack).unwrap(), head);
    assert_eq!(branch_head(&ws), head.to_string());
    let changes = UntrustedWorkspace::open(&ws).unwrap().changes().unwrap();
    assert_eq!(changes.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["app.js"]);
    // No commits at all: an empty pack and the base as head change nothing.
    let tmp2 = tempfile::tempdir().unwrap();
    let (ws2, _) = fixture(tmp2.path());
    import_result_pack(&ws2, &ws2.base_commit, &[]).unwrap();
    assert_eq!(branch_head(&ws2), ws2.base_commit);
}

#[test]
fn a_corrupted_pack_is_refused_and_the_branch_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let (ws, guest) = fixture(tmp.path());
    let (head, mut pack) = guest_commit(&ws, &guest);
    let mid = pack.len() / 2;
    pack[mid] ^= 0xff;
    assert_eq!(rule(import_result_pack(&ws, &head.to_string(), &pack).unwrap_err()), "pack_invalid");
    let truncated = &pack[..pack.len() - 30];
    assert_eq!(rule(import_result_pack(&ws, &head.to_string(), truncated).unwrap_err()), "pack_invalid");
    assert_eq!(rule(import_result_pack(&ws, &head.to_string(), b"PACK garbage").unwrap_err()), "pack_invalid");
    assert_eq!(branch_head(&ws), ws.base_commit);
}

#[test]
fn a_pack_whose_objects_lie_about_their_type_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (ws, guest) = fixture(tmp.path());
    let odb = guest.odb().unwrap();
    // A blob whose bytes look like a tree entry, named as the commit's tree.
    let blob = odb.write(ObjectType::Blob, b"100644 app.js\0aaaaaaaaaaaaaaaaaaaa").unwrap();
    let text =
        format!("tree {blob}\nparent {}\nauthor A <a@x> 0 +0000\ncommitter A <a@x> 0 +0000\n\nlie\n", ws.base_commit);
    let commit = odb.write(ObjectType::Commit, text.as_bytes()).unwrap();
    let pack = pack_of(&guest, &[commit, blob]);
    assert_eq!(rule(import_result_pack(&ws, &commit.to_string(), &pack).unwrap_err()), "pack_object_kind");
    // A real tree whose entry names a tree as if it were a file.
    let sub = guest.treebuilder(None).unwrap().write().unwrap();
    let mut entry = b"100644 app.js\0".to_vec();
    entry.extend_from_slice(sub.as_bytes());
    let tree = odb.write(ObjectType::Tree, &entry).unwrap();
    let text =
        format!("tree {tree}\nparent {}\nauthor A <a@x> 0 +0000\ncommitter A <a@x> 0 +0000\n\nlie\n", ws.base_commit);
    let commit = odb.write(ObjectType::Commit, text.as_bytes()).unwrap();
    let pack = pack_of(&guest, &[commit, tree, sub]);
    assert_eq!(rule(import_result_pack(&ws, &commit.to_string(), &pack).unwrap_err()), "pack_object_kind");
    // The head named is a blob, not a commit.
    let pack = pack_of(&guest, &[blob]);
    assert_eq!(rule(import_result_pack(&ws, &blob.to_string(), &pack).unwrap_err()), "pack_head_invalid");
    assert_eq!(branch_head(&ws), ws.base_commit);
}

#[test]
fn a_head_that_does_not_descend_from_the_base_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (ws, guest) = fixture(tmp.path());
    let tree = guest.head().unwrap().peel_to_tree().unwrap().id();
    let text = format!("tree {tree}\nauthor A <a@x> 0 +0000\ncommitter A <a@x> 0 +0000\n\norphan\n");
    let orphan = guest.odb().unwrap().write(ObjectType::Commit, text.as_bytes()).unwrap();
    let pack = pack_of(&guest, &[orphan]);
    assert_eq!(rule(import_result_pack(&ws, &orphan.to_string(), &pack).unwrap_err()), "pack_head_invalid");
    assert_eq!(rule(import_result_pack(&ws, "not-an-id", &[]).unwrap_err()), "pack_head_invalid");
    assert_eq!(branch_head(&ws), ws.base_commit);
}
