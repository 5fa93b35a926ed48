//! `userz-server`: the reference server and its admin CLI.
//!
//! With no arguments it serves on embedded defaults (`127.0.0.1:8080`, the
//! SQLite store and blobs in `./.userz-data`), creating a demo org, App and
//! repository on first start. `-c userz.toml` (see the file beside this
//! crate) or `USERZ_*` variables choose another store, cache, model or
//! sandbox; `userz-server admin …` runs the operator commands (`--help`).
//! Everything is assembled by the `userz-server` library.

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::process::ExitCode {
    userz_server::cli::main().await
}
