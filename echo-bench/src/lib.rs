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

pub mod args;
pub mod client;
pub mod cpu;
pub mod interleave;
pub mod launch;
pub mod median;
pub mod pattern;
pub mod server;
pub mod svg;
pub mod sweep;
pub mod tcp;
