//! echo-bench: the paper's echo microbenchmarks, side by side with and
//! without zio (not built yet).
//!
//! It will hold a TCP echo server that makes `--copies N` chained copies of
//! each message before echoing the last one, a client that measures
//! throughput and latency and verifies the echoed bytes, and a sweep driver
//! that runs both with and without zio and plots the ratio. Until then it
//! says so and exits with status 2, so no script mistakes it for a result.

fn main() {
    eprintln!("echo-bench is not built yet; see the echo-bench issue");
    std::process::exit(2);
}
