//! Finding and reading the counters files of processes running with zio
//! (`/dev/shm/zio.<pid>`), telling live ones from those a dead process
//! left, and why a process's counters cannot be read.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use memmap2::Mmap;
use zio_core::statfile::{self, FormatError, Header, Reading};

/// Why a process's counters cannot be shown.
#[derive(Debug)]
pub enum Error {
    /// No process has this pid.
    NoProcess(u32),
    /// The process exists but publishes no counters.
    NoZio(u32, String),
    /// The counters belong to another user.
    OtherUser(u32, u32),
    /// The file is not one this zio-stat can read.
    Format(u32, FormatError),
    /// Anything else the system refused.
    Io(u32, std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NoProcess(pid) => write!(f, "no process {pid}"),
            Error::NoZio(pid, comm) => write!(
                f,
                "process {pid} ({comm}) publishes no counters (no {}): it does not run with \
                 zio, runs with ZIO_PUBLISH=0, or is a forked child whose engine has not \
                 started (no input of ZIO_THRESHOLD bytes yet)",
                path_of(*pid).display()
            ),
            Error::OtherUser(pid, uid) => write!(
                f,
                "process {pid} belongs to {}: its counters are readable by that user and root only",
                user_name(*uid)
            ),
            Error::Format(pid, FormatError::Format(n)) => write!(
                f,
                "process {pid} runs a zio whose counters file has format {n}; this zio-stat {} \
                 reads format {}: use the zio-stat of the zio the process runs",
                env!("CARGO_PKG_VERSION"),
                statfile::FORMAT
            ),
            Error::Format(pid, e) => write!(f, "{}: {e}", path_of(*pid).display()),
            Error::Io(pid, e) => write!(f, "{}: {e}", path_of(*pid).display()),
        }
    }
}

/// The counters file of `pid`.
pub fn path_of(pid: u32) -> PathBuf {
    Path::new(statfile::DIR).join(format!("{}{pid}", statfile::PREFIX))
}

/// The login name of `uid`, if it has one.
pub fn login(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// The user called `uid`, by name if it has one.
pub fn user_name(uid: u32) -> String {
    match login(uid) {
        Some(name) => format!("user {name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// The process's command name (`/proc/PID/comm`), or `?`.
pub fn command(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// Whether `pid` is alive and has the file with inode `ino` mapped: a
/// dead process's file, or one whose process has since run `exec` without
/// zio (or a new process with the pid), is not. `None` when the
/// process's mappings cannot be read (another user's).
fn maps_file(pid: u32, ino: u64) -> Option<bool> {
    let maps = match std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Some(false),
        Err(_) => return None,
    };
    let want = path_of(pid);
    let want = want.to_string_lossy();
    Some(maps.lines().any(|l| {
        let mut f = l.split_ascii_whitespace();
        let inode = f.nth(4).and_then(|i| i.parse::<u64>().ok());
        inode == Some(ino) && f.next() == Some(&*want) && f.next().is_none()
    }))
}

/// Reads `pid`'s counters now. A file its process no longer has mapped
/// is stale: it is removed (where the caller may) and reported as no zio.
pub fn read(pid: u32) -> Result<Reading, Error> {
    let path = path_of(pid);
    let alive = Path::new(&format!("/proc/{pid}")).exists();
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(if alive {
                Error::NoZio(pid, command(pid))
            } else {
                Error::NoProcess(pid)
            })
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            let uid = std::fs::metadata(&path)
                .map(|m| m.uid())
                .unwrap_or(u32::MAX);
            if !alive {
                return Err(Error::NoProcess(pid));
            }
            return Err(Error::OtherUser(pid, uid));
        }
        Err(e) => return Err(Error::Io(pid, e)),
    };
    let ino = file.metadata().map_err(|e| Error::Io(pid, e))?.ino();
    if maps_file(pid, ino) == Some(false) {
        let _ = std::fs::remove_file(&path);
        return Err(if alive {
            Error::NoZio(pid, command(pid))
        } else {
            Error::NoProcess(pid)
        });
    }
    // SAFETY: the mapping is read only through `copy`'s volatile word
    // reads; the process writes it concurrently, which such reads allow.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::Io(pid, e))?;
    let mut last = FormatError::NotStats;
    // The magic is written last and the engine counters under a sequence
    // number: a file being made or written is read again, a few times.
    for _ in 0..50 {
        let (bytes, seq_now) = copy(&map);
        let seq_copied = word(&bytes, std::mem::offset_of!(Header, engine_seq));
        match statfile::parse(&bytes) {
            Ok(r) if seq_copied == seq_now => return Ok(r),
            Ok(_) => last = FormatError::Torn,
            Err(e @ (FormatError::Torn | FormatError::NotStats)) => last = e,
            Err(e) => return Err(Error::Format(pid, e)),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(Error::Format(pid, last))
}

fn word(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .map_or(0, |w| u64::from_ne_bytes(w.try_into().unwrap()))
}

/// A copy of the mapping, word by word, and the engine sequence number
/// read again after it.
fn copy(map: &Mmap) -> (Vec<u8>, u64) {
    let words = map.len() / 8;
    let p = map.as_ptr().cast::<u64>();
    let mut out = Vec::with_capacity(words * 8);
    for i in 0..words {
        // SAFETY: `i` < `words`, inside the page-aligned mapping; a
        // volatile read of a word another process may be writing.
        out.extend_from_slice(&unsafe { p.add(i).read_volatile() }.to_ne_bytes());
    }
    let seq = std::mem::offset_of!(Header, engine_seq) / 8;
    let mut again = 0;
    if seq < words {
        // SAFETY: as above: a word inside the mapping.
        again = unsafe { p.add(seq).read_volatile() };
    }
    (out, again)
}

/// The pids of every counters file the caller may read, live ones only;
/// stale files the caller may remove are removed.
pub fn live_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(statfile::DIR) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            name.to_str()?
                .strip_prefix(statfile::PREFIX)?
                .parse::<u32>()
                .ok()
        })
        .filter(|&pid| {
            let Ok(file) = File::open(path_of(pid)) else {
                return false; // another user's: not for this caller
            };
            let Ok(meta) = file.metadata() else {
                return false;
            };
            match maps_file(pid, meta.ino()) {
                Some(true) => true,
                Some(false) => {
                    let _ = std::fs::remove_file(path_of(pid));
                    false
                }
                None => Path::new(&format!("/proc/{pid}")).exists(),
            }
        })
        .collect();
    pids.sort_unstable();
    pids
}
