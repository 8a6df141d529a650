//! TCP settings of the benchmark's connections.

use std::ffi::OsString;
use std::io;
use std::os::fd::AsFd;

use nix::sys::socket::sockopt::TcpCongestion;
use nix::sys::socket::{getsockopt, setsockopt};

/// The congestion control echo-bench's servers and clients use unless told
/// otherwise. BBR (the default of some systems) paces each connection by
/// its own running estimates of bandwidth and round trip, so two identical
/// servers served in turn by one client differ by more than what zio
/// changes; cubic sends what the window allows, unpaced, and they differ
/// far less (docs/echo-bench.md, "Noise, and how to keep it out").
pub const DEFAULT_CONGESTION: &str = "cubic";

/// The value of `--congestion` that keeps the system's default.
pub const SYSTEM_CONGESTION: &str = "system";

/// Sets the congestion control of `sock` (a connection, or a listener whose
/// accepted connections inherit it) to `alg` (nothing for
/// [`SYSTEM_CONGESTION`]). Fails with the kernel's error for an algorithm
/// it does not have or does not allow.
pub fn set_congestion(sock: &impl AsFd, alg: &str) -> io::Result<()> {
    if alg == SYSTEM_CONGESTION {
        return Ok(());
    }
    setsockopt(sock, TcpCongestion, &OsString::from(alg)).map_err(|e| {
        let e = io::Error::from(e);
        io::Error::new(
            e.kind(),
            format!(
                "TCP congestion control {alg:?}: {e} (available: {})",
                available().trim()
            ),
        )
    })
}

/// The congestion control of `sock`, as the kernel reports it.
pub fn congestion(sock: &impl AsFd) -> io::Result<String> {
    let name = getsockopt(sock, TcpCongestion)?;
    Ok(name.to_string_lossy().trim_end_matches('\0').to_string())
}

fn available() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn both_ends_take_the_algorithm_asked() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        // reno is built into every kernel; the default here is another. Set
        // on the listener, it is the accepted connection's (the server
        // relies on this).
        set_congestion(&l, "reno").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        assert_eq!(
            congestion(&s).unwrap(),
            "reno",
            "inherited from the listener"
        );
        for (end, alg) in [
            (&c, "reno"),
            (&s, DEFAULT_CONGESTION),
            (&c, DEFAULT_CONGESTION),
        ] {
            set_congestion(end, alg).unwrap();
            assert_eq!(congestion(end).unwrap(), alg);
        }
        let before = congestion(&s).unwrap();
        set_congestion(&s, SYSTEM_CONGESTION).unwrap();
        assert_eq!(congestion(&s).unwrap(), before, "system changes nothing");
        let e = set_congestion(&s, "no-such-cc").unwrap_err();
        assert!(e.to_string().contains("\"no-such-cc\""), "{e}");
        assert!(
            e.to_string().contains("reno"),
            "lists what is available: {e}"
        );
    }
}
