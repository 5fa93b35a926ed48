//! The control channel between the host and the guest init: length-prefixed
//! frames over one virtio-serial port (`userz.ctl`).
//!
//! A frame is `tag: u8`, `len: u32` (big-endian), then `len` bytes. Every
//! reader caps `len` ([`MAX_FRAME`]), so a hostile guest cannot make the host
//! allocate more than that per frame; the host also caps what it keeps of
//! each stream.
//!
//! | tag | direction | payload |
//! | --- | --- | --- |
//! | `R` | guest → host | [`Ready`] (JSON): the guest booted and waits |
//! | `T` | host → guest | [`GuestTask`] (JSON): what to run |
//! | `W` | host → guest | (empty) the workspace image is on the disk; follows `T` |
//! | `S` | guest → host | (empty) the program was handed to its launcher |
//! | `O`, `E` | guest → host | a chunk of the program's stdout / stderr |
//! | `F` | guest → host | a file: `name_len: u16`, name, contents |
//! | `P` | guest → host | the result pack: 40 hex digits of the branch head, then a git pack |
//! | `X` | guest → host | [`GuestExit`] (JSON): how the program ended; the last frame |
//! | `L` | guest → host | a diagnostic line of the init |

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 256 << 20;

/// Frame tags.
pub mod tag {
    /// Guest booted.
    pub const READY: u8 = b'R';
    /// Host's task.
    pub const TASK: u8 = b'T';
    /// Host: the workspace image is written (after the task: the guest
    /// sets the task up while the host writes the image).
    pub const WORKSPACE: u8 = b'W';
    /// The program was handed to its launcher (the workspace is mounted).
    pub const STARTED: u8 = b'S';
    /// Program stdout chunk.
    pub const STDOUT: u8 = b'O';
    /// Program stderr chunk.
    pub const STDERR: u8 = b'E';
    /// A named file.
    pub const FILE: u8 = b'F';
    /// The result pack.
    pub const PACK: u8 = b'P';
    /// Program exit (last frame).
    pub const EXIT: u8 = b'X';
    /// Init diagnostic.
    pub const LOG: u8 = b'L';
}

/// Sent by the guest once it booted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// The guest kernel's release (`uname -r`).
    pub kernel: String,
    /// The guest kernel's random boot id (`/proc/sys/kernel/random/boot_id`):
    /// distinct for every boot, so a reused guest would show.
    #[serde(default)]
    pub boot_id: String,
    /// Guest uptime when the init started, and when it said READY (ms).
    #[serde(default)]
    pub uptime_ms: (u64, u64),
}

/// Asks the guest to export the run's commits as a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSpec {
    /// The commit the workspace was prepared at.
    pub base: String,
    /// The run's branch.
    pub branch: String,
}

/// A file the init writes before starting the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFile {
    /// Absolute path inside the guest (under `/run/userz`).
    pub path: String,
    /// Contents.
    pub contents: String,
}

/// What the guest runs, and under which caps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestTask {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// The environment (nothing else is inherited).
    pub env: Vec<(String, String)>,
    /// The uid and gid the program runs as (never 0).
    pub uid: u32,
    /// Process cap of the run's cgroup (`pids.max`).
    pub pids: u32,
    /// Memory cap of the run's cgroup (`memory.max`).
    pub memory_bytes: u64,
    /// CPU cap of the run's cgroup in milli-CPUs (`cpu.max`).
    pub cpu_millis: u32,
    /// Size of the scratch `/tmp`.
    pub scratch_bytes: u64,
    /// Files to write first (the agent's task).
    pub files: Vec<GuestFile>,
    /// Files to send back afterwards (name, guest path), each capped at
    /// `collect_cap` bytes.
    pub collect: Vec<(String, String)>,
    /// Cap of each collected file.
    pub collect_cap: u64,
    /// Export the branch's commits since `base` as a pack afterwards.
    pub export: Option<ExportSpec>,
}

/// How the program ended inside the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestExit {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal, when one killed it.
    pub signal: Option<i32>,
    /// OOM kills in the run's cgroup.
    pub oom_kills: u64,
    /// Forks refused by `pids.max`.
    pub pids_max_hits: u64,
    /// CPU time of the run's cgroup.
    pub cpu_ms: u64,
    /// Peak memory of the run's cgroup.
    pub peak_memory_bytes: u64,
    /// The workspace file system is (nearly) full.
    pub disk_full: bool,
    /// Why no pack was exported, when one was asked for.
    pub export_error: Option<String>,
    /// The init's own failure before or around the program, if any.
    pub init_error: Option<String>,
    /// Milliseconds the guest spent per phase (`workspace`, `setup`,
    /// `program`, `export`), for diagnostics and benches.
    #[serde(default)]
    pub phases_ms: Vec<(String, u64)>,
}

/// Writes one frame.
///
/// # Errors
/// I/O errors of `w`; a payload over [`MAX_FRAME`].
pub fn write_frame(w: &mut impl Write, tag: u8, payload: &[u8]) -> io::Result<()> {
    if payload.len() > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "frame over MAX_FRAME"));
    }
    let mut head = [0u8; 5];
    head[0] = tag;
    head[1..].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    w.write_all(&head)?;
    w.write_all(payload)?;
    w.flush()
}

/// Reads one frame whose payload is at most `max` bytes.
///
/// # Errors
/// I/O errors of `r` (`UnexpectedEof` at a clean end); a length over `max`
/// (`InvalidData`).
pub fn read_frame(r: &mut impl Read, max: usize) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > max.min(MAX_FRAME) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes over the cap {max}")));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok((head[0], payload))
}

/// Splits a `FILE` payload into its name and contents.
pub fn split_file(payload: &[u8]) -> Option<(String, &[u8])> {
    let n = u16::from_be_bytes([*payload.first()?, *payload.get(1)?]) as usize;
    let name = std::str::from_utf8(payload.get(2..2 + n)?).ok()?.to_string();
    Some((name, &payload[2 + n..]))
}

/// Builds a `FILE` payload.
pub fn file_payload(name: &str, contents: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(2 + name.len() + contents.len());
    p.extend_from_slice(&(name.len().min(u16::MAX as usize) as u16).to_be_bytes());
    p.extend_from_slice(&name.as_bytes()[..name.len().min(u16::MAX as usize)]);
    p.extend_from_slice(contents);
    p
}

/// Largest chunk of one egress stream frame.
pub const MAX_STREAM_CHUNK: usize = 64 << 10;

/// Writes an egress stream frame (`id: u32`, `len: u32`, bytes); an empty
/// chunk closes that direction of stream `id`.
///
/// # Errors
/// I/O errors of `w`; a chunk over [`MAX_STREAM_CHUNK`].
pub fn write_stream_frame(w: &mut impl Write, id: u32, data: &[u8]) -> io::Result<()> {
    if data.len() > MAX_STREAM_CHUNK {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "chunk over MAX_STREAM_CHUNK"));
    }
    let mut frame = Vec::with_capacity(8 + data.len());
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
    frame.extend_from_slice(data);
    w.write_all(&frame)?;
    w.flush()
}

/// Reads an egress stream frame.
///
/// # Errors
/// I/O errors of `r`; a length over [`MAX_STREAM_CHUNK`] (`InvalidData`).
pub fn read_stream_frame(r: &mut impl Read) -> io::Result<(u32, Vec<u8>)> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head)?;
    let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if len > MAX_STREAM_CHUNK {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("stream chunk of {len} bytes")));
    }
    let mut data = vec![0u8; len];
    r.read_exact(&mut data)?;
    Ok((id, data))
}

/// Seccomp programs as bytes (the image carries the filter compiled on the
/// host): per program `len: u32`, then `len` instructions of `code: u16,
/// jt: u8, jf: u8, k: u32`, all little-endian.
pub fn encode_filters(programs: &[seccompiler::BpfProgram]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in programs {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        for i in p {
            out.extend_from_slice(&i.code.to_le_bytes());
            out.extend_from_slice(&[i.jt, i.jf]);
            out.extend_from_slice(&i.k.to_le_bytes());
        }
    }
    out
}

/// Reads [`encode_filters`]' bytes back.
///
/// # Errors
/// Truncated input, or no program at all.
pub fn decode_filters(mut b: &[u8]) -> Result<Vec<seccompiler::BpfProgram>, String> {
    let mut programs = Vec::new();
    while !b.is_empty() {
        let head: [u8; 4] = b.get(..4).and_then(|h| h.try_into().ok()).ok_or("truncated")?;
        let len = u32::from_le_bytes(head) as usize;
        b = &b[4..];
        let body = b.get(..len.saturating_mul(8)).ok_or("truncated")?;
        programs.push(
            body.chunks_exact(8)
                .map(|c| seccompiler::sock_filter {
                    code: u16::from_le_bytes([c[0], c[1]]),
                    jt: c[2],
                    jf: c[3],
                    k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                })
                .collect(),
        );
        b = &b[len * 8..];
    }
    if programs.is_empty() {
        return Err("no program".into());
    }
    Ok(programs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_lengths_are_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, tag::STDOUT, b"hello").unwrap();
        write_frame(&mut buf, tag::EXIT, b"").unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r, 16).unwrap(), (tag::STDOUT, b"hello".to_vec()));
        assert_eq!(read_frame(&mut r, 16).unwrap(), (tag::EXIT, Vec::new()));
        assert_eq!(read_frame(&mut r, 16).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let huge = [tag::PACK, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(read_frame(&mut &huge[..], 1 << 20).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let p = file_payload("result", b"{}");
        assert_eq!(split_file(&p).unwrap(), ("result".to_string(), &b"{}"[..]));
        assert!(split_file(&[0, 9, b'x']).is_none());
    }

    #[test]
    fn seccomp_programs_survive_the_image_round_trip() {
        let programs = userz_sandbox_process::exec::seccomp_programs().unwrap();
        assert_eq!(decode_filters(&encode_filters(&programs)).unwrap(), programs);
        assert!(decode_filters(&[]).is_err());
        assert!(decode_filters(&[5, 0, 0, 0, 1]).is_err());
    }

    #[test]
    fn stream_frames_round_trip_and_refuse_oversized_chunks() {
        let mut buf = Vec::new();
        write_stream_frame(&mut buf, 7, b"CONNECT").unwrap();
        write_stream_frame(&mut buf, 7, b"").unwrap();
        let mut r = &buf[..];
        assert_eq!(read_stream_frame(&mut r).unwrap(), (7, b"CONNECT".to_vec()));
        assert_eq!(read_stream_frame(&mut r).unwrap(), (7, Vec::new()));
        let huge = [0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(read_stream_frame(&mut &huge[..]).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert!(write_stream_frame(&mut Vec::new(), 1, &vec![0; MAX_STREAM_CHUNK + 1]).is_err());
    }
}
