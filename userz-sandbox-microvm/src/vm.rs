//! One QEMU guest: boot, hand over a task, collect what comes back, destroy.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use userz_core::{Error, Result};

use crate::config::{Accel, MicroVmConfig};
use crate::protocol::{self, tag, GuestExit, GuestTask, Ready};

fn effect(message: impl Into<String>) -> Error {
    Error::Effect { port: "sandbox", message: message.into(), retryable: true }
}

/// A task aborted when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A directory removed (recursively) when dropped.
#[derive(Debug)]
pub(crate) struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// QEMU's option syntax doubles commas inside values.
fn q(p: &Path) -> String {
    p.to_string_lossy().replace(',', ",,")
}

/// The shape of a VM (fixed at boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmShape {
    /// vCPUs.
    pub vcpus: u32,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// Workspace disk size in bytes.
    pub disk_bytes: u64,
}

/// A booted guest waiting for its task. Dropping it kills QEMU and removes
/// its directory (disk image, sockets, console log).
#[derive(Debug)]
pub struct BootedVm {
    child: Option<tokio::process::Child>,
    ctl: UnixStream,
    mux: Option<UnixStream>,
    /// What the guest said when it booted.
    pub ready: Ready,
    /// The shape it was booted with.
    pub shape: VmShape,
    /// The accelerator it runs on.
    pub accel: Accel,
    /// The workspace disk image (written by the host before the task goes in).
    pub disk: PathBuf,
    /// Where the run's egress proxy listens (the relay of the guest's
    /// egress streams connects there).
    pub egress_socket: PathBuf,
    /// How long the boot took.
    pub boot: Duration,
    logs: Vec<String>,
    cgroup: Option<crate::hostcg::VmCgroup>,
    dir: RemoveOnDrop,
}

impl Drop for BootedVm {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let deadline = Instant::now() + Duration::from_secs(2);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// The QEMU command line for a guest in `dir`.
/// QEMU's arguments for a guest of `shape` whose files live in `dir`;
/// `rehearse` asks the guest to rehearse a run before `READY` (warm pool).
pub fn qemu_args(
    config: &MicroVmConfig,
    image: &Path,
    dir: &Path,
    shape: VmShape,
    accel: Accel,
    rehearse: bool,
) -> Vec<String> {
    // Under TCG the default CPU model (qemu64): `-cpu max` makes every boot
    // ~0.35 s slower here, and the guest needs nothing beyond x86-64 v1.
    let (accel_arg, cpu) = match accel {
        Accel::Kvm => ("kvm", "host"),
        _ => ("tcg", "qemu64"),
    };
    let mut a: Vec<String> = vec![
        "-M".into(),
        "q35,smbus=off,sata=off,usb=off,vmport=off".into(),
        "-accel".into(),
        accel_arg.into(),
        "-cpu".into(),
        cpu.into(),
        "-smp".into(),
        shape.vcpus.to_string(),
        "-m".into(),
        format!("{}M", shape.memory_mib),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-no-reboot".into(),
        "-display".into(),
        "none".into(),
        // QEMU's own seccomp filter (no process spawning, no privilege changes).
        "-sandbox".into(),
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny".into(),
        "-kernel".into(),
        config.kernel.to_string_lossy().into_owned(),
        "-initrd".into(),
        image.to_string_lossy().into_owned(),
        "-append".into(),
        format!(
            "console=ttyS0 quiet loglevel=3 panic=-1 oops=panic rdinit=/init userz.scratch={}{}",
            config.scratch_bytes,
            if rehearse { " userz.rehearse=1" } else { "" }
        ),
        "-serial".into(),
        format!("file:{}", q(&dir.join("console.log"))),
        "-chardev".into(),
        format!("socket,id=ctl,path={},server=on,wait=off", q(&dir.join("ctl.sock"))),
        "-device".into(),
        "virtio-serial-pci".into(),
        "-device".into(),
        "virtserialport,chardev=ctl,name=userz.ctl".into(),
        "-drive".into(),
        format!("file={},if=none,id=ws,format=raw,cache=writeback", q(&dir.join("workspace.img"))),
        "-device".into(),
        "virtio-blk-pci,drive=ws".into(),
        // The egress streams (no network device: this port is the guest's
        // only way out, relayed by the host to the run's egress proxy).
        "-chardev".into(),
        format!("socket,id=egress,path={},server=on,wait=off", q(&dir.join("mux.sock"))),
        "-device".into(),
        "virtserialport,chardev=egress,name=userz.egress".into(),
    ];
    a.shrink_to_fit();
    a
}

/// Boots a guest and waits for its `READY`. A `rehearse` guest (the warm
/// pool's) gets a blank file system on its workspace disk and runs through
/// a run's steps on it once before `READY` (see the init's docs): it costs
/// the boot some time and saves the run most of its start.
pub async fn boot(
    config: &MicroVmConfig,
    image: &Path,
    shape: VmShape,
    accel: Accel,
    rehearse: bool,
) -> Result<BootedVm> {
    let started = Instant::now();
    let vms = config.state_root.join("vms");
    fs::create_dir_all(&vms).map_err(|e| effect(format!("{}: {e}", vms.display())))?;
    let dir =
        tempfile::Builder::new().prefix("vm-").tempdir_in(&vms).map_err(|e| effect(format!("vm dir: {e}")))?.keep();
    let dir_guard = RemoveOnDrop(dir.clone());
    let disk = dir.join("workspace.img");
    fs::File::create(&disk)
        .and_then(|f| f.set_len(shape.disk_bytes))
        .map_err(|e| effect(format!("workspace image: {e}")))?;
    if rehearse {
        let blank = dir.join("blank");
        fs::create_dir(&blank).map_err(|e| effect(format!("{}: {e}", blank.display())))?;
        make_workspace_image(config, &blank, &disk, crate::GUEST_UID).await?;
    }
    let mut cmd = tokio::process::Command::new(&config.qemu);
    cmd.args(qemu_args(config, image, &dir, shape, accel, rehearse))
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let cgroup = match &config.host_cgroup {
        Some(cg) => {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let caps = crate::hostcg::QemuCaps {
                // Guest RAM plus QEMU's own (TCG translation cache, devices).
                memory_bytes: (shape.memory_mib << 20) + (512 << 20),
                pids: 256,
                cpu_millis: shape.vcpus * 1000,
            };
            Some(cg.create(&name, caps)?)
        }
        None => None,
    };
    let mut child = cmd.spawn().map_err(|e| {
        Error::Unsupported(format!("microvm.qemu: starting {}: {e} (install qemu-system-x86)", config.qemu.display()))
    })?;
    if let (Some(cg), Some(pid)) = (&cgroup, child.id()) {
        // Before the guest runs anything: the firmware is still starting.
        if let Err(e) = cg.add(pid) {
            let _ = child.start_kill();
            return Err(e);
        }
    }
    let deadline = started + config.boot_timeout;
    let mut ctl = connect(&mut child, &dir.join("ctl.sock"), deadline).await?;
    let mux = connect(&mut child, &dir.join("mux.sock"), deadline).await?;
    let mut logs = Vec::new();
    let ready = loop {
        let frame =
            tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), read_frame(&mut ctl, 1 << 16))
                .await;
        match frame {
            Err(_) => {
                return Err(effect(format!(
                    "the guest did not boot within {:?} ({}); console: {}",
                    config.boot_timeout,
                    accel.as_str(),
                    console_tail(&dir)
                )))
            }
            Ok(Err(e)) => {
                return Err(effect(format!("guest control channel: {e}; console: {}", console_tail(&dir))));
            }
            Ok(Ok((tag::READY, payload))) => {
                break serde_json::from_slice::<Ready>(&payload)
                    .map_err(|e| effect(format!("guest READY is not valid: {e}")))?
            }
            Ok(Ok((tag::LOG, line))) => logs.push(String::from_utf8_lossy(&line).into_owned()),
            Ok(Ok((t, _))) => return Err(effect(format!("unexpected frame {t} before READY"))),
        }
    };
    Ok(BootedVm {
        child: Some(child),
        ctl,
        mux: Some(mux),
        ready,
        shape,
        accel,
        disk,
        egress_socket: dir.join("egress.sock"),
        boot: started.elapsed(),
        logs,
        cgroup,
        dir: dir_guard,
    })
}

/// Connects to one of QEMU's chardev sockets as soon as it exists.
async fn connect(child: &mut tokio::process::Child, sock: &Path, deadline: Instant) -> Result<UnixStream> {
    loop {
        if let Ok(s) = UnixStream::connect(sock).await {
            return Ok(s);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err).await;
            }
            return Err(effect(format!("qemu exited at start ({status}): {}", err.trim())));
        }
        if Instant::now() > deadline {
            return Err(effect(format!("qemu did not open {}", sock.display())));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Relays the guest's egress streams to the proxy listening on `proxy`:
/// each new stream id becomes one connection to it.
async fn relay(mux: UnixStream, proxy: PathBuf) {
    use std::collections::hash_map::{Entry, HashMap};
    use std::sync::Arc;
    use tokio::net::unix::OwnedWriteHalf;
    let (mut rd, wr) = mux.into_split();
    let wr = Arc::new(tokio::sync::Mutex::new(wr));
    let mut streams: HashMap<u32, OwnedWriteHalf> = HashMap::new();
    let mut pumps = tokio::task::JoinSet::new();
    loop {
        let mut head = [0u8; 8];
        if rd.read_exact(&mut head).await.is_err() {
            break;
        }
        let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if len > protocol::MAX_STREAM_CHUNK {
            break;
        }
        let mut data = vec![0u8; len];
        if rd.read_exact(&mut data).await.is_err() {
            break;
        }
        if data.is_empty() {
            if let Some(mut w) = streams.remove(&id) {
                let _ = w.shutdown().await;
            }
            continue;
        }
        let w = match streams.entry(id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(slot) => {
                let Ok(conn) = UnixStream::connect(&proxy).await else {
                    // No proxy: close the guest's stream at once.
                    let mut w = wr.lock().await;
                    let _ = w.write_all(&[&id.to_be_bytes()[..], &[0, 0, 0, 0]].concat()).await;
                    continue;
                };
                let (mut from_proxy, to_proxy) = conn.into_split();
                let wr = wr.clone();
                pumps.spawn(async move {
                    let mut buf = vec![0u8; protocol::MAX_STREAM_CHUNK];
                    loop {
                        let n = from_proxy.read(&mut buf).await.unwrap_or(0);
                        let mut frame = Vec::with_capacity(8 + n);
                        frame.extend_from_slice(&id.to_be_bytes());
                        frame.extend_from_slice(&(n as u32).to_be_bytes());
                        frame.extend_from_slice(&buf[..n]);
                        let mut w = wr.lock().await;
                        if w.write_all(&frame).await.is_err() || n == 0 {
                            return;
                        }
                    }
                });
                slot.insert(to_proxy)
            }
        };
        if w.write_all(&data).await.is_err() {
            streams.remove(&id);
        }
    }
    pumps.abort_all();
}

/// The last lines of a guest's console log (for errors).
fn console_tail(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join("console.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(8).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

async fn read_frame(s: &mut UnixStream, max: usize) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > max {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("frame of {len} bytes over {max}")));
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await?;
    Ok((head[0], payload))
}

/// What [`BootedVm::run`] tells its caller as it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEvent {
    /// The guest handed the program to its launcher.
    Started,
    /// The program's first output (stdout) arrived.
    Output,
}

/// Everything a run brought back.
#[derive(Debug, Default)]
pub struct VmRunOutput {
    /// The guest's exit report (`None`: the VM died or timed out first).
    pub exit: Option<GuestExit>,
    /// Whether the wall clock ran out (the host killed the VM).
    pub timed_out: bool,
    /// Stdout, capped.
    pub stdout: Vec<u8>,
    /// Stderr, capped.
    pub stderr: Vec<u8>,
    /// Collected files by name.
    pub files: Vec<(String, Vec<u8>)>,
    /// The result pack: head and pack bytes.
    pub pack: Option<(String, Vec<u8>)>,
    /// Init diagnostics.
    pub logs: Vec<String>,
    /// Wall time from task to exit.
    pub wall: Duration,
    /// When the program's first output arrived (from the start of
    /// [`BootedVm::run`]).
    pub first_output: Option<Duration>,
    /// When the guest reported the program handed to its launcher (from the
    /// start of [`BootedVm::run`]).
    pub started: Option<Duration>,
    /// Why the channel ended early, if it did.
    pub channel_error: Option<String>,
}

fn push_capped(buf: &mut Vec<u8>, chunk: &[u8], cap: usize) {
    let room = cap.saturating_sub(buf.len());
    buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
}

impl BootedVm {
    /// Sends the guest its task; the guest sets it up and waits for
    /// [`workspace_ready`](Self::workspace_ready).
    ///
    /// # Errors
    /// When the control channel is gone.
    pub async fn send_task(&mut self, task: &GuestTask) -> Result<()> {
        let payload = serde_json::to_vec(task).map_err(|e| effect(format!("task: {e}")))?;
        self.send(tag::TASK, &payload).await
    }

    /// Tells the guest its workspace image is on the disk.
    ///
    /// # Errors
    /// When the control channel is gone.
    pub async fn workspace_ready(&mut self) -> Result<()> {
        self.send(tag::WORKSPACE, &[]).await
    }

    async fn send(&mut self, t: u8, payload: &[u8]) -> Result<()> {
        let mut frame = Vec::with_capacity(payload.len() + 5);
        frame.push(t);
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(payload);
        self.ctl.write_all(&frame).await.map_err(|e| effect(format!("guest control channel: {e}")))
    }

    /// Collects frames until the exit report, the wall clock (`wall_clock`,
    /// measured from now) or the guest's death; `on_event` hears of the
    /// program's start and first output. The VM is destroyed when `self`
    /// drops, which the caller does right after.
    pub async fn run(
        &mut self,
        wall_clock: Duration,
        config: &MicroVmConfig,
        mut on_event: impl FnMut(RunEvent),
    ) -> VmRunOutput {
        let started = Instant::now();
        let mut out = VmRunOutput { logs: std::mem::take(&mut self.logs), ..VmRunOutput::default() };
        let relay = self.mux.take().map(|mux| AbortOnDrop(tokio::spawn(relay(mux, self.egress_socket.clone()))));
        let max = config.pack_cap.max(config.transcript_cap as usize) + 4096;
        let deadline = tokio::time::Instant::now() + wall_clock;
        loop {
            let frame = tokio::time::timeout_at(deadline, read_frame(&mut self.ctl, max)).await;
            match frame {
                Err(_) => {
                    out.timed_out = true;
                    break;
                }
                Ok(Err(e)) => {
                    out.channel_error = Some(e.to_string());
                    break;
                }
                Ok(Ok((t, payload))) => match t {
                    tag::STARTED => {
                        out.started.get_or_insert_with(|| started.elapsed());
                        on_event(RunEvent::Started);
                    }
                    tag::STDOUT => {
                        if out.first_output.is_none() {
                            out.first_output = Some(started.elapsed());
                            on_event(RunEvent::Output);
                        }
                        push_capped(&mut out.stdout, &payload, config.output_cap)
                    }
                    tag::STDERR => push_capped(&mut out.stderr, &payload, config.output_cap),
                    tag::LOG => out.logs.push(String::from_utf8_lossy(&payload).into_owned()),
                    tag::FILE => {
                        if let Some((name, bytes)) = protocol::split_file(&payload) {
                            out.files.push((name, bytes.to_vec()));
                        }
                    }
                    tag::PACK => {
                        if payload.len() >= 40 {
                            let head = String::from_utf8_lossy(&payload[..40]).into_owned();
                            out.pack = Some((head, payload[40..].to_vec()));
                        }
                    }
                    tag::EXIT => {
                        out.exit = serde_json::from_slice(&payload).ok();
                        if out.exit.is_none() {
                            out.channel_error = Some("the exit report is not valid".into());
                        }
                        break;
                    }
                    other => {
                        out.channel_error = Some(format!("unexpected frame {other}"));
                        break;
                    }
                },
            }
        }
        out.wall = started.elapsed();
        self.kill().await;
        drop(relay);
        out
    }

    /// Kills QEMU now and waits for it.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
    }

    /// Whether QEMU is still running.
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().map(|c| matches!(c.try_wait(), Ok(None))).unwrap_or(false)
    }

    /// The VM's directory.
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// The host cgroup directories QEMU runs in, if any.
    pub fn host_cgroups(&self) -> &[PathBuf] {
        self.cgroup.as_ref().map(|c| c.dirs()).unwrap_or(&[])
    }
}

/// Writes an ext4 file system holding `source` (owned by `uid` inside) into
/// `image` (whose size is the cap), in user space: `mkfs.ext4 -d`.
pub async fn make_workspace_image(config: &MicroVmConfig, source: &Path, image: &Path, uid: u32) -> Result<()> {
    let out = tokio::process::Command::new(&config.mkfs)
        .args(["-q", "-F", "-t", "ext4", "-O", "^has_journal", "-m", "0", "-E"])
        .arg(format!("root_owner={uid}:{uid},nodiscard"))
        .arg("-d")
        .arg(source)
        .arg(image)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| Error::Unsupported(format!("microvm.mkfs: running {}: {e}", config.mkfs.display())))?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "limits.disk_bytes: the workspace does not fit a {} byte image: {}",
            fs::metadata(image).map(|m| m.len()).unwrap_or(0),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
