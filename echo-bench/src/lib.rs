//! echo-bench: the zIO paper's echo microbenchmarks (§4.4.1), run side by
//! side with and without zio.
//!
//! - [`server`]: a TCP echo server that makes `--copies N` chained `memcpy`
//!   copies of each message before echoing the last one;
//! - [`client`]: a closed-loop client measuring throughput and latency and
//!   verifying every echo;
//! - [`sweep`]: runs both with and without zio (through `zio-run`), pinned
//!   to different cores, and writes a table, a CSV file and an SVG plot;
//! - [`interleave`]: runs the servers of a point at the same time while one
//!   client takes turns among them, for ratios the machine's drift does not
//!   blur.
//!
//! Both drivers start their processes through [`launch`], watch the host's
//! CPUs with [`cpu`] and take medians with [`median`]; zio's counters are
//! read from its stats log with `zio_core::summary`.

#![deny(missing_docs)]

/// `name()` (the word the command line uses) and `FromStr` for an enum of
/// command-line choices, from one list: a wrong word is refused with
/// "WHAT must be a, b or c, not \"x\"".
macro_rules! choices {
    ($ty:ident, $what:literal: $($v:ident = $n:literal),+ $(,)?) => {
        impl $ty {
            /// The name the command line uses.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$v => $n),+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $(if s == $n {
                    return Ok($ty::$v);
                })+
                let names: &[&str] = &[$($n),+];
                let list = match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                    _ => names.join(""),
                };
                Err(format!("{} must be {list}, not {s:?}", $what))
            }
        }
    };
}

pub mod args;
pub mod client;
pub mod cpu;
pub mod interleave;
pub mod launch;
pub mod median;
pub mod pattern;
pub mod server;
pub mod stack;
pub mod svg;
pub mod sweep;
pub mod tcp;

#[cfg(test)]
mod tests {
    use crate::launch::Allocator;
    use crate::pattern::Verify;
    use crate::server::{Buffers, Recv};

    /// Every choice reads back from its own name; a wrong word is refused
    /// with the list of the right ones.
    #[test]
    fn choices_read_their_names_and_list_them_when_wrong() {
        for b in [Buffers::Static, Buffers::Malloc, Buffers::Chain] {
            assert_eq!(b.name().parse::<Buffers>(), Ok(b));
        }
        for v in [Verify::Off, Verify::Sample, Verify::Full] {
            assert_eq!(v.name().parse::<Verify>(), Ok(v));
        }
        assert_eq!("waitall".parse::<Recv>(), Ok(Recv::WaitAll));
        assert_eq!("jemalloc".parse::<Allocator>(), Ok(Allocator::Jemalloc));
        assert_eq!(
            "x".parse::<Buffers>(),
            Err("buffers must be static, malloc or chain, not \"x\"".to_string())
        );
        assert_eq!(
            "x".parse::<Allocator>(),
            Err("allocator must be glibc or jemalloc, not \"x\"".to_string())
        );
    }
}
