//! `userz-sandbox-exec host|inner …`: see [`userz_sandbox_process::exec`].

use std::ffi::OsString;
use std::process::ExitCode;

use userz_sandbox_process::exec::{HostArgs, InnerArgs};

const USAGE: &str =
    "usage: userz-sandbox-exec host [--cgroup-procs FILE]... [--uid N --gid N] -- PROGRAM ARGS...\n       \
                     userz-sandbox-exec inner [--exec P]... [--read P]... [--write P]... -- PROGRAM ARGS...";

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.is_empty() {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let mode = args.remove(0);
    let failure = match mode.to_str() {
        Some("host") => HostArgs::parse(args).map(HostArgs::run),
        Some("inner") => InnerArgs::parse(args).map(InnerArgs::run),
        _ => Err(format!("unknown mode {mode:?}\n{USAGE}")),
    };
    // `run` only returns when it could not exec the target.
    match failure {
        Ok(e) | Err(e) => eprintln!("userz-sandbox-exec: {e}"),
    }
    ExitCode::from(126)
}
