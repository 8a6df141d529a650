//! `zio-stat`: a live view of processes running with zio, from the
//! counters file each publishes (`/dev/shm/zio.<pid>`, mode 0600).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches, Parser};

mod files;
mod help;
mod view;

/// Shows what zio is doing in running processes: without a PID, every
/// process running with zio that you may see (your own; every one as
/// root); with one, that process's counters now (the names of the
/// `ZIO_STATS=1` exit summary); with --watch, its rates every interval,
/// like vmstat.
#[derive(Parser, Debug)]
#[command(name = "zio-stat", version, about, long_about = None)]
struct Cli {
    /// The process to show; without it, the list of processes.
    pid: Option<u32>,

    /// Print the process's rates every interval until it exits (or
    /// --count lines): copies per second, copies elided per second, MB/s
    /// elided and substituted, faults, policy skips and zio's system calls
    /// per second.
    #[arg(short, long, requires = "pid")]
    watch: bool,

    /// Seconds between lines of --watch (fractions allowed).
    #[arg(short, long, value_name = "SECS", default_value_t = 1.0,
          value_parser = parse_interval)]
    interval: f64,

    /// Stop --watch after this many lines.
    #[arg(short = 'n', long, value_name = "N", requires = "watch")]
    count: Option<u64>,

    /// JSON instead of text: one object (the list: one array; --watch:
    /// one object per line).
    #[arg(long)]
    json: bool,

    /// Print this manual page (roff, for man(1)) and exit.
    #[arg(long, exclusive = true)]
    man: bool,

    /// Print a completion script for SHELL and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<clap_complete::Shell>,
}

/// The whole command line, with the counters listed after the options.
fn command() -> clap::Command {
    Cli::command().after_long_help(help::long_help())
}

fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.05..=3600.0).contains(&v) => Ok(v),
        Ok(_) => Err("the interval must be between 0.05 and 3600 seconds".into()),
        Err(_) => Err(format!("not a number of seconds: {s}")),
    }
}

fn main() -> ExitCode {
    let m = command().get_matches();
    let cli = Cli::from_arg_matches(&m).unwrap_or_else(|e| e.exit());
    if cli.man {
        let shown = help::render_man(command(), &mut std::io::stdout());
        return if shown.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if let Some(shell) = cli.completions {
        clap_complete::generate(shell, &mut command(), "zio-stat", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let Some(pid) = cli.pid else {
        let rows: Vec<_> = files::live_pids()
            .into_iter()
            .filter_map(|pid| files::read(pid).ok().map(|r| (pid, r)))
            .collect();
        view::print_list(&rows, cli.json);
        return ExitCode::SUCCESS;
    };
    let first = match files::read(pid) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zio-stat: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !cli.watch {
        view::print_counters(pid, &first, cli.json);
        return ExitCode::SUCCESS;
    }
    watch(pid, first, &cli)
}

fn watch(pid: u32, first: zio_core::statfile::Reading, cli: &Cli) -> ExitCode {
    let start = Instant::now();
    let (mut prev, mut prev_t) = (first, start);
    let mut lines = 0u64;
    loop {
        if cli.count.is_some_and(|n| lines >= n) {
            return ExitCode::SUCCESS;
        }
        let due = start + Duration::from_secs_f64(cli.interval * (lines + 1) as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let now = match files::read(pid) {
            Ok(r) => r,
            Err(files::Error::NoProcess(_) | files::Error::NoZio(..)) => {
                eprintln!("zio-stat: process {pid} ended");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("zio-stat: {e}");
                return ExitCode::FAILURE;
            }
        };
        let t = Instant::now();
        let rates = view::Rates::between(&prev, &now, (t - prev_t).as_secs_f64());
        if !cli.json && lines.is_multiple_of(20) {
            println!("{}", view::rates_header());
        }
        println!(
            "{}",
            view::rates_line((t - start).as_secs_f64(), &rates, cli.json)
        );
        lines += 1;
        (prev, prev_t) = (now, t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
        assert!(
            Cli::try_parse_from(["zio-stat", "-w"]).is_err(),
            "--watch needs a pid"
        );
        assert!(Cli::try_parse_from(["zio-stat", "-w", "1", "-i", "0"]).is_err());
        assert!(Cli::try_parse_from(["zio-stat", "12", "-n", "3"]).is_err());
        let c = Cli::try_parse_from(["zio-stat", "-w", "12", "-i", "0.5", "-n", "3", "--json"])
            .unwrap();
        assert_eq!(
            (c.pid, c.interval, c.count, c.json),
            (Some(12), 0.5, Some(3), true)
        );
        assert!(Cli::try_parse_from(["zio-stat", "--man", "12"]).is_err());
        assert!(Cli::try_parse_from(["zio-stat", "--completions", "tcsh"]).is_err());
    }
}
