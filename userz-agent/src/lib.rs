//! # userz-agent
//!
//! The coding agent that runs inside a run's sandbox. This crate holds its tool
//! layer so far: file tools confined to the workspace. The model loop, the git
//! tools and the binary come next (see the crate README for what is missing).
//!
//! Every path the model names goes through [`Workspace`]: absolute paths and
//! `..` components are refused with their own codes, and every file access goes
//! through a `cap-std` directory handle, so a symlink (planted by the repository
//! or by the agent itself) cannot lead outside the workspace. Nothing in this
//! crate spawns a process.

pub mod tools;

pub use tools::{ToolError, Workspace};
