//! `userz-vm-init`: PID 1 of a Userz microVM guest.
//!
//! Runs as root inside the guest (its own kernel, nothing of the host), and:
//!
//! 1. mounts `/proc` (`hidepid=invisible`), `/sys`, `/dev`, `/run` and a
//!    cgroup2 hierarchy, loads the virtio modules listed in
//!    `/lib/modules/userz.order` and finds the `userz.ctl` control port (the
//!    guest has no network device at all);
//! 2. does everything that does not depend on the task (a capped scratch
//!    `/tmp`, `/run/userz/egress.sock` whose connections become streams over
//!    the `userz.egress` port, relayed by the host to the run's egress proxy,
//!    the run's cgroup, `/` remounted read-only); a warm-pool guest
//!    (`userz.rehearse=1`) then rehearses a run once on a blank file system
//!    the host put on the disk (mount, hand-over, the agent's `--version`),
//!    so that the code a run goes through is already translated when the
//!    emulator (TCG) runs the guest; it starts the program's *launcher*
//!    (below), says `READY` and waits for the host's task (a warm-pool guest
//!    waits here);
//! 3. mounts the workspace disk (`/dev/vda`, `nosuid,nodev,noexec`; the
//!    disk's buffers flushed first, the host wrote the image after boot),
//!    gives it to the run's uid and writes the task files under `/run/userz`;
//! 4. hands the program to the launcher: a copy of this init already in the
//!    run's cgroup as the run's uid (no capabilities, `no_new_privs`, the same
//!    seccomp filter as the process backend), which execs it in the
//!    workspace; streams its output, waits, kills what is left;
//! 5. optionally exports the run's commits as a pack (the agent binary does
//!    that, as the run's uid), sends the collected files, the pack and the
//!    exit report, and powers off.
//!
//! There is no shell in the image and nothing here starts one.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::{chown, lchown, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount, MsFlags};
use serde::{Deserialize, Serialize};
use userz_sandbox_microvm::protocol::{self, tag, ExportSpec, GuestExit, GuestTask, Ready};

const CTL_NAME: &str = "userz.ctl";
const EGRESS_PORT: &str = "userz.egress";
const MODULE_ORDER: &str = "/lib/modules/userz.order";
const AGENT: &str = "/userz/bin/userz-agent";
const WORKSPACE: &str = "/workspace";
const RUN_DIR: &str = "/run/userz";
const CGROUP: &str = "/sys/fs/cgroup/run";
/// The uid (and gid) programs run as (`userz_sandbox_microvm::GUEST_UID`).
const GUEST_UID: u32 = 1000;
const SECCOMP_FILE: &str = "/etc/userz/seccomp.bpf";

type Ctl = Arc<Mutex<fs::File>>;

fn send(ctl: &Ctl, t: u8, payload: &[u8]) {
    if let Ok(mut f) = ctl.lock() {
        let _ = protocol::write_frame(&mut *f, t, payload);
    }
}

fn err(what: &str) -> impl FnOnce(io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn nix_err(what: &str) -> impl FnOnce(nix::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn mount_basics() -> Result<(), String> {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), "/proc", Some("proc"), nosuid, Some("hidepid=invisible")).map_err(nix_err("mount /proc"))?;
    mount(Some("sysfs"), "/sys", Some("sysfs"), nosuid, None::<&str>).map_err(nix_err("mount /sys"))?;
    mount(Some("devtmpfs"), "/dev", Some("devtmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, None::<&str>)
        .map_err(nix_err("mount /dev"))?;
    mount(Some("tmpfs"), "/run", Some("tmpfs"), nosuid, Some("size=16m,mode=0755")).map_err(nix_err("mount /run"))?;
    mount(Some("cgroup2"), "/sys/fs/cgroup", Some("cgroup2"), nosuid, None::<&str>)
        .map_err(nix_err("mount cgroup2"))?;
    Ok(())
}

fn load_modules(list: &str) -> Result<(), String> {
    let order = fs::read_to_string(list).map_err(err(list))?;
    for path in order.lines().filter(|l| !l.trim().is_empty()) {
        let f = fs::File::open(path).map_err(err(path))?;
        match nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty()) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(format!("loading {path}: {e}")),
        }
    }
    Ok(())
}

/// The `/dev` node of the virtio-serial port named `name`.
fn find_port(name: &str, wait: Duration) -> Result<String, String> {
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(entries) = fs::read_dir("/sys/class/virtio-ports") {
            for e in entries.flatten() {
                if fs::read_to_string(e.path().join("name")).map(|n| n.trim() == name).unwrap_or(false) {
                    let dev = format!("/dev/{}", e.file_name().to_string_lossy());
                    if Path::new(&dev).exists() {
                        return Ok(dev);
                    }
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no virtio-serial port named {name}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn uname_release() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}

/// Gives `root` and everything below it (symlinks not followed) to `uid`.
fn hand_over(root: &Path, uid: u32) -> io::Result<()> {
    lchown(root, Some(uid), Some(uid))?;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let p = e.path();
            lchown(&p, Some(uid), Some(uid))?;
            if e.file_type()?.is_dir() {
                stack.push(p);
            }
        }
    }
    Ok(())
}

fn mount_workspace(uid: u32) -> Result<(), String> {
    // The host writes a new image into the disk after boot, behind this
    // guest's back: drop whatever of the disk is cached first.
    let disk = fs::File::open("/dev/vda").map_err(err("/dev/vda"))?;
    nix::fcntl::posix_fadvise(&disk, 0, 0, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED)
        .map_err(nix_err("dropping /dev/vda's cache"))?;
    drop(disk);
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("/dev/vda"), WORKSPACE, Some("ext4"), flags, None::<&str>).map_err(nix_err("mount /workspace"))?;
    hand_over(Path::new(WORKSPACE), uid).map_err(err("chown /workspace"))
}

/// A warm-pool guest's rehearsal, before `READY`: the steps of a run on the
/// blank file system the host wrote for it, the cgroup caps, and the
/// agent's `--version` through a launcher. Under TCG every kernel and
/// program path runs slowly the first time (it is being translated); a
/// rehearsed guest starts the run's agent several times sooner. Nothing of the run exists yet, and
/// nothing of the rehearsal stays: the file system is unmounted and
/// replaced, the launcher's cgroup is emptied.
fn rehearse() -> Result<(), String> {
    mount_workspace(GUEST_UID)?;
    umount(WORKSPACE).map_err(nix_err("umount /workspace"))?;
    // The caps a task writes, at their defaults (no task has set any yet).
    for (file, value) in [("pids.max", "max"), ("memory.max", "max"), ("cpu.max", "max 100000")] {
        write_cg(file, value)?;
    }
    let status = Launcher::start(GUEST_UID)?.run(&[AGENT.to_string(), "--version".to_string()], &[], None)?;
    if !status.success() {
        return Err(format!("rehearsal: {AGENT} --version exited with {status}"));
    }
    Ok(())
}

fn rehearsing() -> bool {
    fs::read_to_string("/proc/cmdline").unwrap_or_default().split_whitespace().any(|a| a == "userz.rehearse=1")
}

fn write_cg(file: &str, value: &str) -> Result<(), String> {
    fs::write(Path::new(CGROUP).join(file), value).map_err(|e| format!("{CGROUP}/{file} <- {value}: {e}"))
}

fn read_cg_key(file: &str, key: &str) -> u64 {
    fs::read_to_string(Path::new(CGROUP).join(file))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

fn cgroup_limits(task: &GuestTask) -> Result<(), String> {
    write_cg("pids.max", &task.pids.to_string())?;
    write_cg("memory.max", &task.memory_bytes.to_string())?;
    let _ = write_cg("memory.swap.max", "0");
    write_cg("cpu.max", &format!("{} 100000", u64::from(task.cpu_millis.max(10)) * 100))
}

/// The scratch size the host put on the kernel command line (`userz.scratch=`).
fn boot_scratch() -> u64 {
    fs::read_to_string("/proc/cmdline")
        .unwrap_or_default()
        .split_whitespace()
        .find_map(|a| a.strip_prefix("userz.scratch=").and_then(|v| v.parse().ok()))
        .unwrap_or(64 << 20)
}

/// Everything that does not depend on the task, done before `READY` so a
/// pool guest only has the workspace and the task left: the scratch `/tmp`,
/// the output directory, the egress streams, the run's cgroup, and the root
/// remounted read-only.
fn boot_setup() -> Result<(), String> {
    let scratch = format!("size={},mode=1777", boot_scratch());
    mount(Some("tmpfs"), "/tmp", Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(scratch.as_str()))
        .map_err(nix_err("mount /tmp"))?;
    fs::create_dir_all(format!("{RUN_DIR}/out")).map_err(err("out dir"))?;
    chown(format!("{RUN_DIR}/out"), Some(GUEST_UID), Some(GUEST_UID)).map_err(err("chown out"))?;
    fs::set_permissions(RUN_DIR, fs::Permissions::from_mode(0o755)).map_err(err("chmod run"))?;
    let egress = find_port(EGRESS_PORT, Duration::from_secs(5))?;
    egress_mux(GUEST_UID, &egress)?;
    fs::write("/sys/fs/cgroup/cgroup.subtree_control", "+pids +memory +cpu").map_err(err("cgroup.subtree_control"))?;
    fs::create_dir_all(CGROUP).map_err(err(CGROUP))?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>)
        .map_err(nix_err("remounting / read-only"))
}

/// Serves `/run/userz/egress.sock`: each connection becomes a stream of the
/// `userz.egress` port (frames `id: u32, len: u32, bytes`; `len` 0 closes
/// the stream's direction), which the host relays to the run's egress proxy.
/// The guest has no network device: this is its only way out.
fn egress_mux(uid: u32, port: &str) -> Result<(), String> {
    let path = format!("{RUN_DIR}/egress.sock");
    let listener = UnixListener::bind(&path).map_err(err("bind egress.sock"))?;
    chown(&path, Some(uid), Some(uid)).map_err(err("chown egress.sock"))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(err("chmod egress.sock"))?;
    let dev = fs::OpenOptions::new().read(true).write(true).open(port).map_err(err(port))?;
    let mut reader = dev.try_clone().map_err(err(port))?;
    let writer = Arc::new(Mutex::new(dev));
    let streams: Arc<Mutex<HashMap<u32, UnixStream>>> = Arc::new(Mutex::new(HashMap::new()));
    let from_host = streams.clone();
    std::thread::spawn(move || loop {
        let Ok((id, data)) = protocol::read_stream_frame(&mut reader) else { return };
        let mut map = from_host.lock().unwrap_or_else(|p| p.into_inner());
        if data.is_empty() {
            if let Some(s) = map.remove(&id) {
                let _ = s.shutdown(Shutdown::Write);
            }
        } else if let Some(s) = map.get_mut(&id) {
            if s.write_all(&data).is_err() {
                map.remove(&id);
            }
        }
    });
    std::thread::spawn(move || {
        for (id, conn) in (1u32..).zip(listener.incoming()) {
            let Ok(conn) = conn else { continue };
            let Ok(mut read_half) = conn.try_clone() else { continue };
            streams.lock().unwrap_or_else(|p| p.into_inner()).insert(id, conn);
            let writer = writer.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 32 << 10];
                loop {
                    let n = read_half.read(&mut buf).unwrap_or(0);
                    let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
                    if protocol::write_stream_frame(&mut *w, id, &buf[..n]).is_err() || n == 0 {
                        return;
                    }
                }
            });
        }
    });
    Ok(())
}

/// What the init sends a launcher: the program and its environment.
#[derive(Serialize, Deserialize)]
struct Launch {
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

/// A copy of this init (`/init launch UID`) already confined as `uid` in
/// the run's cgroup, waiting on its stdin for the program to exec.
struct Launcher {
    child: std::process::Child,
}

impl Launcher {
    fn start(uid: u32) -> Result<Self, String> {
        let child = Command::new("/init")
            .arg(LAUNCH)
            .arg(uid.to_string())
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting the launcher: {e}"))?;
        Ok(Self { child })
    }

    /// Execs `argv` in the launcher (cwd `/workspace`, environment `env`
    /// only), streams its output to `ctl` (or drops it) and returns its
    /// status once it ended; what it left behind is killed.
    /// With `ctl`, a `STARTED` frame follows the hand-over.
    fn run(
        mut self,
        argv: &[String],
        env: &[(String, String)],
        ctl: Option<&Ctl>,
    ) -> Result<std::process::ExitStatus, String> {
        let launch =
            serde_json::to_vec(&Launch { argv: argv.to_vec(), env: env.to_vec() }).map_err(|e| e.to_string())?;
        let out = self.child.stdout.take().map(|o| pump(o, ctl.cloned(), tag::STDOUT));
        let errs = self.child.stderr.take().map(|e| pump(e, ctl.cloned(), tag::STDERR));
        let sent = match self.child.stdin.take() {
            // Dropping the pipe after the message is the launcher's go.
            Some(mut go) => go.write_all(&launch).map_err(|e| format!("launcher: {e}")),
            None => Err("launcher: no stdin".into()),
        };
        if let (Ok(()), Some(ctl)) = (&sent, ctl) {
            send(ctl, tag::STARTED, &[]);
        }
        let status = self.child.wait().map_err(|e| format!("wait: {e}"));
        // What the program left behind (daemons, sleepers) goes with it.
        let _ = write_cg("cgroup.kill", "1");
        for p in [out, errs].into_iter().flatten() {
            let _ = p.join();
        }
        sent?;
        status
    }
}

fn pump(mut r: impl Read + Send + 'static, ctl: Option<Ctl>, t: u8) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 << 10];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let Some(ctl) = &ctl {
                        send(ctl, t, &buf[..n]);
                    }
                }
            }
        }
    })
}

const LAUNCH: &str = "launch";

/// `/init launch UID`: joins the run's cgroup, drops to `UID` (no groups,
/// no capabilities), sets `no_new_privs`, installs the seccomp filter; then
/// reads a [`Launch`] from stdin up to its end and execs it in the
/// workspace with stdin on `/dev/null`. Returns only on failure.
fn launch(args: &[String]) -> String {
    let (Some(uid), None) = (args.first().and_then(|u| u.parse::<u32>().ok()), args.get(1)) else {
        return "usage: /init launch UID".into();
    };
    if uid == 0 {
        return "refusing uid 0".into();
    }
    if let Err(e) = fs::write(Path::new(CGROUP).join("cgroup.procs"), "0") {
        return format!("joining {CGROUP}: {e}");
    }
    let id = nix::unistd::Uid::from_raw(uid);
    let gid = nix::unistd::Gid::from_raw(uid);
    let dropped = nix::unistd::setgroups(&[])
        .and_then(|()| nix::unistd::setresgid(gid, gid, gid))
        .and_then(|()| nix::unistd::setresuid(id, id, id))
        .and_then(|()| nix::sys::prctl::set_no_new_privs());
    if let Err(e) = dropped {
        return format!("dropping privileges: {e}");
    }
    // Compiled by the host into the read-only image.
    let programs = match fs::read(SECCOMP_FILE).map_err(|e| e.to_string()).and_then(|b| protocol::decode_filters(&b)) {
        Ok(p) => p,
        Err(e) => return format!("seccomp: {SECCOMP_FILE}: {e}"),
    };
    for p in &programs {
        if let Err(e) = seccompiler::apply_filter(p) {
            return format!("seccomp: {e}");
        }
    }
    let mut message = Vec::new();
    if let Err(e) = io::stdin().lock().take(16 << 20).read_to_end(&mut message) {
        return format!("reading the launch: {e}");
    }
    let launch: Launch = match serde_json::from_slice(&message) {
        Ok(l) => l,
        Err(e) => return format!("launch: {e}"),
    };
    let Some(program) = launch.argv.first() else { return "launch: no program".into() };
    let null = match fs::File::open("/dev/null") {
        Ok(f) => f,
        Err(e) => return format!("/dev/null: {e}"),
    };
    if let Err(e) = nix::unistd::dup2_stdin(&null) {
        return format!("stdin: {e}");
    }
    let e = Command::new(program)
        .args(&launch.argv[1..])
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(WORKSPACE)
        .exec();
    format!("exec {program}: {e}")
}

fn disk_full() -> bool {
    match nix::sys::statvfs::statvfs(WORKSPACE) {
        #[allow(clippy::unnecessary_cast)]
        Ok(s) => {
            let frsize = s.fragment_size() as u64;
            let total = s.blocks() as u64 * frsize;
            let avail = s.blocks_available() as u64 * frsize;
            avail < (2 << 20).max(total / 50)
        }
        Err(_) => false,
    }
}

fn export(spec: &ExportSpec, uid: u32) -> Result<Vec<u8>, String> {
    let out = format!("{RUN_DIR}/out/result.pack");
    let argv: Vec<String> =
        [AGENT, "--export-pack", &out, "--base", &spec.base, "--branch", &spec.branch, "--workspace", WORKSPACE]
            .iter()
            .map(|s| s.to_string())
            .collect();
    // Its own caps again: the cgroup limits stay, the pids are fresh.
    let status = Launcher::start(uid)?.run(&argv, &[("HOME".into(), "/tmp".into())], None)?;
    if !status.success() {
        return Err(format!("the pack export exited with {status}"));
    }
    fs::read(&out).map_err(err("result.pack"))
}

fn read_capped(path: &str, cap: u64) -> Option<Vec<u8>> {
    let f = fs::File::open(path).ok()?;
    let mut v = Vec::new();
    f.take(cap).read_to_end(&mut v).ok()?;
    Some(v)
}

fn run_task(ctl: &Ctl, reader: &mut fs::File, task: &GuestTask, launcher: Launcher) -> GuestExit {
    let mut exit = GuestExit::default();
    let mut clock = Instant::now();
    let mut phase = |exit: &mut GuestExit, name: &str| {
        exit.phases_ms.push((name.to_string(), clock.elapsed().as_millis() as u64));
        clock = Instant::now();
    };
    if task.uid == 0 {
        exit.init_error = Some("task.uid: the program never runs as root".into());
        return exit;
    }
    if task.uid != GUEST_UID {
        exit.init_error = Some(format!("task.uid: this guest runs programs as {GUEST_UID}"));
        return exit;
    }
    let setup = (|| -> Result<(), String> {
        if task.scratch_bytes != boot_scratch() {
            let scratch = format!("size={},mode=1777", task.scratch_bytes);
            let flags = MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
            mount(None::<&str>, "/tmp", None::<&str>, flags, Some(scratch.as_str())).map_err(nix_err("resize /tmp"))?;
        }
        for f in &task.files {
            if !f.path.starts_with(RUN_DIR) || f.path.contains("..") {
                return Err(format!("task.files: {} is not under {RUN_DIR}", f.path));
            }
            fs::write(&f.path, &f.contents).map_err(err(&f.path))?;
        }
        cgroup_limits(task)
    })();
    if let Err(e) = setup {
        exit.init_error = Some(e);
        return exit;
    }
    phase(&mut exit, "setup");
    // The host writes the workspace image meanwhile.
    let written = match protocol::read_frame(reader, 16) {
        Ok((tag::WORKSPACE, _)) => mount_workspace(task.uid),
        Ok((t, _)) => Err(format!("expected the workspace frame, got {t}")),
        Err(e) => Err(format!("waiting for the workspace: {e}")),
    };
    if let Err(e) = written {
        exit.init_error = Some(e);
        return exit;
    }
    phase(&mut exit, "workspace");
    match launcher.run(&task.argv, &task.env, Some(ctl)) {
        Ok(status) => {
            exit.code = status.code();
            exit.signal = status.signal();
        }
        Err(e) => exit.init_error = Some(e),
    }
    exit.oom_kills = read_cg_key("memory.events", "oom_kill ");
    exit.pids_max_hits = read_cg_key("pids.events", "max ");
    exit.cpu_ms = read_cg_key("cpu.stat", "usage_usec ") / 1000;
    exit.peak_memory_bytes =
        fs::read_to_string(Path::new(CGROUP).join("memory.peak")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    exit.disk_full = disk_full();
    phase(&mut exit, "program");
    for (name, path) in &task.collect {
        if let Some(bytes) = read_capped(path, task.collect_cap) {
            send(ctl, tag::FILE, &protocol::file_payload(name, &bytes));
        }
    }
    if let Some(spec) = &task.export {
        match export(spec, task.uid) {
            Ok(pack) => {
                let head = fs::read_to_string(format!("{RUN_DIR}/out/result.pack.head")).unwrap_or_default();
                let mut payload = head.trim().as_bytes().to_vec();
                payload.extend_from_slice(&pack);
                send(ctl, tag::PACK, &payload);
            }
            Err(e) => exit.export_error = Some(e),
        }
    }
    phase(&mut exit, "export");
    exit
}

fn uptime_ms() -> u64 {
    fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
        .map(|s| (s * 1000.0) as u64)
        .unwrap_or(0)
}

fn run() -> Result<(), String> {
    // On the serial console: what a bare boot is timed to (benches/).
    eprintln!("userz-vm-init: started");
    mount_basics()?;
    let started_at = uptime_ms();
    load_modules(MODULE_ORDER)?;
    let port = find_port(CTL_NAME, Duration::from_secs(10))?;
    boot_setup()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new("/dev/vda").exists() {
        if Instant::now() > deadline {
            return Err("no /dev/vda (the workspace disk)".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if rehearsing() {
        rehearse()?;
    }
    let launcher = Launcher::start(GUEST_UID)?;
    let ctl: Ctl = Arc::new(Mutex::new(fs::OpenOptions::new().read(true).write(true).open(&port).map_err(err(&port))?));
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().to_string();
    let ready = Ready { kernel: uname_release(), boot_id, uptime_ms: (started_at, uptime_ms()) };
    let ready = serde_json::to_vec(&ready).map_err(|e| e.to_string())?;
    send(&ctl, tag::READY, &ready);
    let mut reader = ctl.lock().map_err(|_| "ctl lock")?.try_clone().map_err(err("ctl"))?;
    let (t, payload) = protocol::read_frame(&mut reader, 16 << 20).map_err(err("reading the task"))?;
    if t != tag::TASK {
        return Err(format!("expected a task frame, got {t}"));
    }
    let task: GuestTask = serde_json::from_slice(&payload).map_err(|e| format!("task: {e}"))?;
    let exit = run_task(&ctl, &mut reader, &task, launcher);
    let report = serde_json::to_vec(&exit).map_err(|e| e.to_string())?;
    send(&ctl, tag::EXIT, &report);
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(LAUNCH) {
        eprintln!("userz-vm-init: {}", launch(&args[1..]));
        std::process::exit(126);
    }
    if let Err(e) = run() {
        eprintln!("userz-vm-init: {e}");
    }
    nix::unistd::sync();
    let _ = io::stderr().flush();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}
