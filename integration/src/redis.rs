//! A real redis-server for tests: started on a free 127.0.0.1 port (with or
//! without zio), a minimal RESP client, and a clean shutdown so that zio's
//! summary and the server's files are complete. A server that is not stopped
//! cleanly (a failing test) is killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{as_user, free_port, lib_path, with_zio};

/// Panics with the install hint unless `cmd` is on PATH.
pub fn require(cmd: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{cmd} is not installed: run `bash scripts/deps.sh` (make test does)"
    );
}

/// A running redis-server.
pub struct Server {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Server {
    /// Starts redis-server with its files in `dir` (and zio's logs there,
    /// under zio), plus `extra` arguments; waits (bounded) for PONG.
    pub fn start(dir: &Path, zio: bool, extra: &[&str]) -> Server {
        Server::start_as(dir, zio, extra, None)
    }

    /// As [`Server::start`], run as `user` (with that user's groups, as a
    /// service manager starts it) if one is given; `dir` must be theirs.
    pub fn start_as(dir: &Path, zio: bool, extra: &[&str], user: Option<&str>) -> Server {
        require("redis-server");
        let port = free_port();
        let mut c = match user {
            Some(u) => {
                let mut c = as_user(u);
                if zio {
                    c.arg(format!("LD_PRELOAD={}", lib_path().display()));
                }
                c.arg("redis-server");
                c
            }
            None => Command::new("redis-server"),
        };
        c.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--daemonize", "no"])
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .args(extra)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if zio {
            with_zio(&mut c, dir);
            if user.is_some() {
                c.env_remove("LD_PRELOAD");
            }
        } else {
            c.env_remove("LD_PRELOAD");
        }
        let child = c.spawn().expect("redis-server");
        let mut s = Server {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = s.connect() {
                if command(&mut conn, &[b"PING"]) == b"+PONG\r\n" {
                    return s;
                }
            }
            if let Ok(Some(st)) = s.child.as_mut().unwrap().try_wait() {
                panic!("redis-server exited at start: {st}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A new connection (30 s timeouts).
    pub fn connect(&self) -> std::io::Result<BufReader<TcpStream>> {
        let s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(BufReader::new(s))
    }

    /// SHUTDOWN NOSAVE and wait (bounded) for a clean exit.
    pub fn stop(mut self) {
        if let Ok(mut conn) = self.connect() {
            let _ = send(&mut conn, &[b"SHUTDOWN", b"NOSAVE"]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut child = self.child.take().unwrap();
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                assert!(st.success(), "redis-server exited with {st}");
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-server did not stop within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A command in RESP.
pub fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        req.extend_from_slice(a);
        req.extend_from_slice(b"\r\n");
    }
    req
}

/// Sends a command without reading the reply.
pub fn send(conn: &mut BufReader<TcpStream>, args: &[&[u8]]) -> std::io::Result<()> {
    conn.get_mut().write_all(&resp(args))
}

/// Sends a command and returns its raw reply (simple, integer or bulk).
pub fn command(conn: &mut BufReader<TcpStream>, args: &[&[u8]]) -> Vec<u8> {
    send(conn, args).unwrap();
    let mut line = Vec::new();
    conn.read_until(b'\n', &mut line).unwrap();
    if line.first() == Some(&b'$') {
        let n: i64 = std::str::from_utf8(&line[1..line.len() - 2])
            .unwrap()
            .parse()
            .unwrap();
        if n >= 0 {
            let mut body = vec![0u8; n as usize + 2];
            conn.read_exact(&mut body).unwrap();
            line.extend_from_slice(&body);
        }
    }
    line
}

/// A bulk-string reply holding `v`.
pub fn bulk(v: &[u8]) -> Vec<u8> {
    let mut r = format!("${}\r\n", v.len()).into_bytes();
    r.extend_from_slice(v);
    r.extend_from_slice(b"\r\n");
    r
}
