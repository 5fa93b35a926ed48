//! `userz-escape-probe SUBCOMMAND …`: tries one way out of the sandbox and
//! prints a JSON verdict `{"probe": …, "escaped": bool, "detail": …}` on
//! stdout. Used by the sandbox conformance suite
//! (`userz_testkit::conformance::sandbox`); it runs inside the
//! sandbox, so "escaped": true means the sandbox failed.
//!
//! With `--task PATH` it acts as a minimal stand-in for `userz-agent`: it
//! reads the task, tries one refused CONNECT through the egress socket,
//! writes a transcript holding the task and its environment, and reports
//! completion.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const EGRESS_SOCKET: &str = "/run/userz/egress.sock";

/// This program (children that only sleep are copies of it: the sandbox
/// images need no coreutils).
fn self_exe() -> std::path::PathBuf {
    std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into())
}

fn verdict(probe: &str, escaped: bool, detail: Value) {
    println!("{}", json!({ "probe": probe, "escaped": escaped, "detail": detail }));
}

fn arg(args: &[String], i: usize) -> Result<&str, String> {
    args.get(i).map(String::as_str).ok_or_else(|| format!("missing argument {i}"))
}

fn num<T: std::str::FromStr>(args: &[String], i: usize) -> Result<T, String> {
    arg(args, i)?.parse().map_err(|_| format!("argument {i} is not a number"))
}

fn environ_names(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|kv| !kv.is_empty())
        .map(|kv| String::from_utf8_lossy(kv.split(|b| *b == b'=').next().unwrap_or_default()).into_owned())
        .collect()
}

fn status_fields() -> BTreeMap<String, String> {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.to_string(), v.trim().to_string())))
        .collect()
}

/// Sends `CONNECT target` through the egress socket; returns the status code
/// and the rule header.
fn egress_connect(target: &str) -> Result<(u16, String), String> {
    let mut s = UnixStream::connect(EGRESS_SOCKET).map_err(|e| format!("connect {EGRESS_SOCKET}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    while got < buf.len() {
        let n = s.read(&mut buf[got..]).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        got += n;
        if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..got]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let rule = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-userz-egress-rule:").map(|r| r.trim().to_string()))
        .unwrap_or_default();
    Ok((status, rule))
}

fn probe(args: &[String]) -> Result<(), String> {
    let name = arg(args, 0)?;
    match name {
        "read" => {
            let path = arg(args, 1)?;
            let r = fs::read(path);
            verdict(name, r.is_ok(), json!({ "path": path, "error": r.err().map(|e| e.to_string()) }));
        }
        "list" => {
            let path = arg(args, 1)?;
            let r = fs::read_dir(path);
            verdict(name, r.is_ok(), json!({ "path": path, "error": r.err().map(|e| e.to_string()) }));
        }
        "write" => {
            let path = arg(args, 1)?;
            let r = fs::write(path, b"escaped");
            verdict(name, r.is_ok(), json!({ "path": path, "error": r.err().map(|e| e.to_string()) }));
        }
        "env" => {
            let own: Vec<String> = std::env::vars_os().map(|(k, _)| k.to_string_lossy().into_owned()).collect();
            let pid1 = fs::read("/proc/1/environ").map(|b| environ_names(&b));
            let pid1_names = pid1.as_ref().cloned().unwrap_or_default();
            let secret = own.iter().chain(&pid1_names).any(|k| k == "USERZ_HOST_SECRET");
            verdict(
                name,
                secret,
                json!({ "own": own, "pid1": pid1_names, "pid1_error": pid1.err().map(|e| e.to_string()) }),
            );
        }
        "procs" => {
            let mut cmdlines = Vec::new();
            for entry in fs::read_dir("/proc").map_err(|e| e.to_string())?.flatten() {
                let file_name = entry.file_name();
                let Some(pid) = file_name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
                    continue;
                };
                if let Ok(c) = fs::read(entry.path().join("cmdline")) {
                    let argv0 = c.split(|b| *b == 0).next().unwrap_or_default();
                    cmdlines.push(json!({ "pid": pid, "argv0": String::from_utf8_lossy(argv0) }));
                }
            }
            verdict(name, false, json!({ "processes": cmdlines }));
        }
        "status" => {
            let f = status_fields();
            let get = |k: &str| f.get(k).cloned().unwrap_or_default();
            let uid = get("Uid").split_whitespace().next().unwrap_or_default().to_string();
            let escaped =
                uid == "0" || get("CapEff") != "0000000000000000" || get("NoNewPrivs") != "1" || get("Seccomp") != "2";
            verdict(
                name,
                escaped,
                json!({ "uid": uid, "cap_eff": get("CapEff"), "no_new_privs": get("NoNewPrivs"), "seccomp": get("Seccomp") }),
            );
        }
        "ptrace" => {
            // Spawning also proves fork/exec still work under the filter (clone3 → clone fallback).
            let mut child = Command::new(self_exe())
                .args(["sleep", "5"])
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("spawn: {e}"))?;
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let attach = nix::sys::ptrace::attach(pid);
            let _ = child.kill();
            let _ = child.wait();
            let traceme = nix::sys::ptrace::traceme();
            verdict(
                name,
                attach.is_ok() || traceme.is_ok(),
                json!({ "attach": format!("{attach:?}"), "traceme": format!("{traceme:?}"), "spawned": true }),
            );
        }
        "mount" => {
            use nix::mount::{mount, MsFlags};
            let r = mount(None::<&str>, "/tmp", Some("tmpfs"), MsFlags::empty(), None::<&str>);
            verdict(name, r.is_ok(), json!({ "result": format!("{r:?}") }));
        }
        "unshare" => {
            use nix::sched::{unshare, CloneFlags};
            let user = unshare(CloneFlags::CLONE_NEWUSER);
            let ns = unshare(CloneFlags::CLONE_NEWNS);
            let net = unshare(CloneFlags::CLONE_NEWNET);
            verdict(
                name,
                user.is_ok() || ns.is_ok() || net.is_ok(),
                json!({ "newuser": format!("{user:?}"), "newns": format!("{ns:?}"), "newnet": format!("{net:?}") }),
            );
        }
        "module" => {
            use nix::kmod::{finit_module, init_module, ModuleInitFlags};
            let empty = CString::default();
            let init = init_module(&[0u8; 64], &empty);
            let finit = fs::File::open("/proc/self/exe")
                .map_err(|e| e.to_string())
                .and_then(|f| finit_module(&f, &empty, ModuleInitFlags::empty()).map_err(|e| format!("{e:?}")));
            verdict(
                name,
                init.is_ok() || finit.is_ok(),
                json!({ "init_module": format!("{init:?}"), "finit_module": format!("{finit:?}") }),
            );
        }
        "tcp" => {
            // `tcp ADDR MS [ADDR MS]…`: one verdict per address.
            for i in (1..args.len()).step_by(2) {
                let addr: SocketAddr = arg(args, i)?.parse().map_err(|e| format!("address: {e}"))?;
                let timeout = Duration::from_millis(num(args, i + 1)?);
                let r = TcpStream::connect_timeout(&addr, timeout);
                verdict(name, r.is_ok(), json!({ "addr": addr.to_string(), "error": r.err().map(|e| e.to_string()) }));
            }
        }
        "dns" => {
            // `dns ADDR`: a DNS query for example.com over UDP; any answer
            // within a second is an escape.
            let addr: SocketAddr = arg(args, 1)?.parse().map_err(|e| format!("address: {e}"))?;
            let query: [u8; 29] = [
                0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o',
                b'm', 0, 0, 1, 0, 1,
            ];
            let r = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| {
                s.set_read_timeout(Some(Duration::from_secs(1)))?;
                s.send_to(&query, addr)?;
                let mut buf = [0u8; 512];
                s.recv(&mut buf)
            });
            verdict(name, r.is_ok(), json!({ "addr": addr.to_string(), "error": r.err().map(|e| e.to_string()) }));
        }
        "egress" => {
            // One verdict line per target.
            for target in args.iter().skip(1) {
                let (status, rule) = egress_connect(target)?;
                verdict(name, status == 200, json!({ "target": target, "status": status, "rule": rule }));
            }
        }
        "fork-bomb" => {
            let max: usize = num(args, 1)?;
            let mut children = Vec::new();
            let mut error = None;
            while children.len() < max {
                match Command::new(self_exe()).args(["sleep", "30"]).stdout(Stdio::null()).spawn() {
                    Ok(c) => children.push(c),
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
            let spawned = children.len();
            for mut c in children {
                let _ = c.kill();
                let _ = c.wait();
            }
            verdict(name, spawned >= max, json!({ "spawned": spawned, "error": error }));
        }
        "memory" => {
            let mib: usize = num(args, 1)?;
            let mut blocks: Vec<Vec<u8>> = Vec::new();
            for _ in 0..mib {
                // Touch every page so it is really charged.
                blocks.push(vec![0xA5; 1 << 20]);
            }
            verdict(name, true, json!({ "allocated_mib": blocks.len() }));
        }
        "spin" => {
            let threads: usize = num(args, 1)?;
            let ms: u64 = num(args, 2)?;
            let end = Instant::now() + Duration::from_millis(ms);
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    std::thread::spawn(move || {
                        let mut x: u64 = 0;
                        while Instant::now() < end {
                            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        }
                        x
                    })
                })
                .collect();
            let sum = handles.into_iter().map(|h| h.join().unwrap_or_default()).fold(0u64, u64::wrapping_add);
            verdict(name, false, json!({ "threads": threads, "ms": ms, "checksum": sum }));
        }
        "fill" => {
            let path = arg(args, 1)?;
            let cap: u64 = num(args, 2)?;
            let mut f = fs::File::create(path).map_err(|e| format!("create {path}: {e}"))?;
            let chunk = vec![0x5Au8; 1 << 20];
            let mut written: u64 = 0;
            let error = loop {
                match f.write(&chunk) {
                    Ok(0) => break Some("wrote 0 bytes".to_string()),
                    Ok(n) => written += n as u64,
                    Err(e) => break Some(format!("{e} (os error {:?})", e.raw_os_error())),
                }
                if written > cap * 4 {
                    break None;
                }
            };
            let synced = f.sync_all().map_err(|e| e.to_string()).err();
            verdict(name, written > cap, json!({ "written": written, "error": error, "sync_error": synced }));
        }
        "exec" => {
            let path = arg(args, 1)?;
            let r = Command::new(path).stdout(Stdio::null()).status();
            verdict(name, r.is_ok(), json!({ "path": path, "error": r.err().map(|e| e.to_string()) }));
        }
        "sleep" => {
            std::thread::sleep(Duration::from_secs(num(args, 1)?));
            verdict(name, false, json!({}));
        }
        "find-secret" => {
            // Every needle (args 1.., given reversed so that this process's own
            // command line does not contain them) searched in: the environment,
            // every process's environ and cmdline, and every readable file
            // outside /proc, /sys, /dev and the read-only host system directories.
            let owned: Vec<Vec<u8>> = args[1..].iter().map(|n| n.bytes().rev().collect()).collect();
            if owned.is_empty() || owned.iter().any(|n| n.len() < 8) {
                return Err("find-secret needs needles of at least 8 bytes".into());
            }
            let mut found = Vec::new();
            let mut scanned = 0u64;
            // memmem: the scan also runs under CPU emulation (microVM tests).
            let finders: Vec<memchr::memmem::Finder<'_>> = owned.iter().map(memchr::memmem::Finder::new).collect();
            let mut check = |place: String, bytes: &[u8]| {
                scanned += 1;
                for n in &finders {
                    if n.find(bytes).is_some() {
                        found.push(place.clone());
                    }
                }
            };
            let env: Vec<u8> = std::env::vars_os()
                .flat_map(|(k, v)| [k.into_encoded_bytes(), b"=".to_vec(), v.into_encoded_bytes(), vec![0]])
                .flatten()
                .collect();
            check("env".into(), &env);
            let mut procs = 0;
            for entry in fs::read_dir("/proc").map_err(|e| e.to_string())?.flatten() {
                let file_name = entry.file_name();
                if !file_name.to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
                    continue;
                }
                procs += 1;
                for f in ["environ", "cmdline"] {
                    if let Ok(b) = fs::read(entry.path().join(f)) {
                        check(format!("{}/{f}", entry.path().display()), &b);
                    }
                }
            }
            const SKIP: [&str; 9] = ["/proc", "/sys", "/dev", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"];
            // "/" itself may not be listable (Landlock grants only the paths the
            // sandbox uses), so the known roots are walked as well.
            let roots = ["/", "/workspace", "/tmp", "/userz", "/run", "/etc", "/home", "/root", "/var", "/opt", "/srv"];
            let mut stack: Vec<std::path::PathBuf> = roots.iter().map(std::path::PathBuf::from).collect();
            let mut seen = std::collections::HashSet::new();
            let mut files = 0u64;
            while let Some(dir) = stack.pop() {
                if !seen.insert(dir.clone()) {
                    continue;
                }
                let Ok(entries) = fs::read_dir(&dir) else { continue };
                for e in entries.flatten() {
                    let path = e.path();
                    if SKIP.iter().any(|s| path == std::path::Path::new(s)) {
                        continue;
                    }
                    let Ok(meta) = fs::symlink_metadata(&path) else { continue };
                    if meta.is_dir() {
                        stack.push(path);
                    } else if meta.is_file() && meta.len() <= 64 << 20 {
                        if let Ok(b) = fs::read(&path) {
                            files += 1;
                            check(path.display().to_string(), &b);
                        }
                    } else if meta.file_type().is_symlink() {
                        if let Ok(t) = fs::read_link(&path) {
                            check(path.display().to_string(), t.as_os_str().as_encoded_bytes());
                        }
                    }
                }
            }
            verdict(
                name,
                !found.is_empty(),
                json!({ "found": found, "files": files, "processes": procs, "scanned": scanned }),
            );
        }
        _ => return Err(format!("unknown probe {name}")),
    }
    Ok(())
}

/// The stand-in agent: reads the task, tries one refused CONNECT, writes a
/// transcript (the task and the environment it saw) and a completed result.
fn fake_agent(task_path: &str) -> Result<(), String> {
    let task: Value =
        serde_json::from_slice(&fs::read(task_path).map_err(|e| format!("task: {e}"))?).map_err(|e| e.to_string())?;
    let field = |k: &str| task.get(k).and_then(Value::as_str).map(str::to_string).ok_or(format!("task.{k}"));
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let denied = egress_connect("denied.example:443");
    // A hostile guest's result, for the host's pack checks: the report text
    // names the kind of bad pack `--export-pack` then writes.
    let prompt = field("prompt").unwrap_or_default();
    for kind in ["corrupt-pack", "lying-pack"] {
        if prompt.contains(kind) {
            let ws = field("workspace")?;
            fs::write(std::path::Path::new(&ws).join(".probe-pack"), kind).map_err(|e| format!("marker: {e}"))?;
        }
    }
    let transcript = json!({ "type": "probe", "task": task, "env": env, "egress": format!("{denied:?}") });
    fs::write(field("transcript")?, format!("{transcript}\n")).map_err(|e| format!("transcript: {e}"))?;
    let result = json!({
        "stop": { "kind": "completed" },
        "usage": { "provider": "probe", "model": "probe-1", "tokens_in": 7, "tokens_out": 3, "cost_micros": 0 },
        "steps": 1,
        "commits": 0
    });
    fs::write(field("result")?, result.to_string()).map_err(|e| format!("result: {e}"))
}

/// The stand-in agent's `--export-pack OUT --base B --branch BR --workspace W`:
/// a bad pack of the kind the task asked for (see [`fake_agent`]), or an
/// empty one (no commits) otherwise.
fn fake_export(args: &[String]) -> Result<(), String> {
    let get = |flag: &str| {
        args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned().ok_or(format!("missing {flag}"))
    };
    let (out, base, ws) = (get("--export-pack")?, get("--base")?, get("--workspace")?);
    let e = |e: git2::Error| e.to_string();
    let repo = git2::Repository::open(&ws).map_err(e)?;
    let base = git2::Oid::from_str(&base).map_err(e)?;
    let kind = fs::read_to_string(std::path::Path::new(&ws).join(".probe-pack")).unwrap_or_default();
    let odb = repo.odb().map_err(e)?;
    let pack = |objects: &[git2::Oid]| -> Result<Vec<u8>, String> {
        let mut pb = repo.packbuilder().map_err(e)?;
        for o in objects {
            pb.insert_object(*o, None).map_err(e)?;
        }
        let mut buf = git2::Buf::new();
        pb.write_buf(&mut buf).map_err(e)?;
        Ok(buf.to_vec())
    };
    let commit_text = |tree: git2::Oid| {
        format!("tree {tree}\nparent {base}\nauthor P <p@x> 0 +0000\ncommitter P <p@x> 0 +0000\n\nprobe\n")
    };
    let (head, bytes) = match kind.as_str() {
        "corrupt-pack" => {
            let blob = odb.write(git2::ObjectType::Blob, b"changed by the probe\n").map_err(e)?;
            let mut tb = repo.treebuilder(None).map_err(e)?;
            tb.insert("probe.txt", blob, 0o100644).map_err(e)?;
            let tree = tb.write().map_err(e)?;
            let commit = odb.write(git2::ObjectType::Commit, commit_text(tree).as_bytes()).map_err(e)?;
            let mut bytes = pack(&[commit, tree, blob])?;
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            (commit, bytes)
        }
        "lying-pack" => {
            // The commit's tree is a blob.
            let blob = odb.write(git2::ObjectType::Blob, b"100644 x\0aaaaaaaaaaaaaaaaaaaa").map_err(e)?;
            let commit = odb.write(git2::ObjectType::Commit, commit_text(blob).as_bytes()).map_err(e)?;
            (commit, pack(&[commit, blob])?)
        }
        _ => (base, pack(&[])?),
    };
    fs::write(&out, bytes).and_then(|()| fs::write(format!("{out}.head"), head.to_string())).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = if args.first().map(String::as_str) == Some("--task") {
        arg(&args, 1).and_then(fake_agent)
    } else if args.first().map(String::as_str) == Some("--export-pack") {
        fake_export(&args)
    } else {
        probe(&args)
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("userz-escape-probe: {e}");
            ExitCode::from(2)
        }
    }
}
