//! The `echo-bench` command: `server`, `client`, `sweep`, `interleave`, and
//! `stack` (with its roles `iox` and `smoltcp-echo`). The command line
//! itself is in `cli.rs`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;
use echo_bench::client::{self, ClientConfig};
use echo_bench::interleave::{self, InterleaveOpts};
use echo_bench::launch::Launch;
use echo_bench::server::{self, Buffers, Server, ServerConfig, Touch};
use echo_bench::sweep::{self, SweepOpts};

mod cli;
use cli::{ClientArgs, Cmd, InterleaveArgs, LaunchArgs, ServerArgs, SweepArgs, TouchArgs};

fn main() {
    let cli = cli::Cli::parse();
    let name = match &cli.cmd {
        Cmd::Server(_) => "server",
        Cmd::Client(_) => "client",
        Cmd::Sweep(_) => "sweep",
        Cmd::Interleave(_) => "interleave",
        Cmd::Stack(_) => "stack",
        Cmd::Iox { .. } => "iox",
        Cmd::SmoltcpEcho { .. } => "smoltcp-echo",
    };
    let r = match cli.cmd {
        Cmd::Server(a) => server_main(a),
        Cmd::Client(a) => client_main(a),
        Cmd::Sweep(a) => sweep_main(a),
        Cmd::Interleave(a) => interleave_main(a),
        Cmd::Stack(o) => echo_bench::stack::bench(o),
        Cmd::Iox { args } => echo_bench::stack::iox::run(&args),
        Cmd::SmoltcpEcho { args } => echo_bench::stack::smoltcp::run(&args),
    };
    if let Err(e) = r {
        eprintln!("echo-bench {name}: {e}");
        std::process::exit(if e.starts_with("usage") { 2 } else { 1 });
    }
}

/// `--touch-pages K` or `--touch-fraction F` (server, interleave; clap
/// keeps them apart and the fraction within 0..1).
fn touch(t: TouchArgs) -> Touch {
    match (t.touch_pages, t.touch_fraction) {
        (Some(k), _) if k > 0 => Touch::Pages(k),
        (_, Some(f)) if f > 0.0 => Touch::Fraction(f),
        _ => Touch::None,
    }
}

/// `--inputs N` (server, interleave) or `--ceiling-inputs M` (interleave,
/// named by `name`): taking turns needs reused buffers.
fn check_inputs(name: &str, inputs: usize, buffers: Buffers) -> Result<(), String> {
    if inputs == 0 || (inputs > 1 && buffers != Buffers::Static) {
        return Err(format!(
            "usage: --{name} must be at least 1, and more than 1 needs static buffers"
        ));
    }
    Ok(())
}

fn server_main(a: ServerArgs) -> Result<(), String> {
    let d = ServerConfig::new(a.size, a.copies);
    let cfg = ServerConfig {
        port: a.port,
        threads: a.threads.unwrap_or(d.threads),
        buffers: a.buffers.unwrap_or(d.buffers),
        touch: touch(a.touch),
        recv: a.recv.unwrap_or(d.recv),
        inputs: a.inputs.unwrap_or(d.inputs),
        max_seconds: a.max_seconds.unwrap_or(d.max_seconds),
        congestion: a.congestion.unwrap_or(d.congestion.clone()),
        ..d
    };
    check_inputs("inputs", cfg.inputs, cfg.buffers)?;
    server::install_signal_handlers();
    let srv = Server::bind(cfg).map_err(|e| format!("bind: {e}"))?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", srv.port());
        let _ = out.flush();
    }
    let stats = srv
        .serve(Arc::new(AtomicBool::new(false)))
        .map_err(|e| e.to_string())?;
    eprintln!(
        "echo-bench server: {} messages, {} connections, {} errors",
        stats.messages, stats.connections, stats.errors
    );
    // Worker threads may sit in blocking reads: exit the process (running
    // atexit handlers, so a preloaded zio prints its summary) without them.
    std::process::exit(0);
}

fn client_main(a: ClientArgs) -> Result<(), String> {
    let d = ClientConfig::new(0, a.size);
    let threads = a.threads.unwrap_or(d.threads);
    let rotating = a.ports.is_some();
    let cfg = ClientConfig {
        port: a.port.unwrap_or(d.port),
        threads,
        conns: a.conns.unwrap_or(if rotating { 1 } else { threads }),
        duration: a.duration.unwrap_or(d.duration),
        warmup: a.warmup.unwrap_or(if rotating { 0.05 } else { d.warmup }),
        verify: a.verify.unwrap_or(d.verify),
        timeout: a.timeout.unwrap_or(d.timeout),
        congestion: a.congestion.unwrap_or(d.congestion.clone()),
        ..d
    };
    let Some(ports) = a.ports else {
        // Checked here: clap's `requires = "ports"` on these let
        // `--port 1 --slice 1` through.
        if a.slice.is_some() || a.rounds.is_some() {
            return Err("usage: --slice and --rounds go with --ports".into());
        }
        let r = client::run(&cfg)?;
        println!("{}", r.to_json());
        return Ok(());
    };
    let slice = a.slice.unwrap_or(0.3);
    let rows = client::rotate(&cfg, &ports, slice, a.rounds.unwrap_or(30))?;
    println!("{}", client::rotation_json(&cfg, &ports, slice, &rows));
    Ok(())
}

/// How servers and clients are started (sweep, interleave): this
/// executable, the zio launcher (`--zio-run`, default: `zio-run` next to
/// it), the server and client CPUs unless `--no-pin` or no `taskset`, and
/// the buffer, input and verification modes.
fn launcher(a: LaunchArgs, cmd: &str) -> Result<Launch, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let zio_run = match a.zio_run {
        Some(p) => p,
        None => exe
            .parent()
            .map(|d| d.join("zio-run"))
            .unwrap_or_else(|| PathBuf::from("zio-run")),
    };
    if !zio_run.exists() {
        return Err(format!(
            "{} not found: build zio first (cargo build --release) or pass --zio-run",
            zio_run.display()
        ));
    }
    let pin = if a.no_pin {
        None
    } else if std::process::Command::new("taskset")
        .arg("-V")
        .output()
        .is_ok()
    {
        Some((a.server_cpu, a.client_cpu))
    } else {
        eprintln!("echo-bench {cmd}: taskset not found, not pinning");
        None
    };
    a.allocator.library()?;
    Ok(Launch {
        bin: exe,
        zio_run,
        pin,
        buffers: a.buffers,
        allocator: a.allocator,
        recv: a.recv,
        verify: a.verify,
        idle_spin: !a.no_idle_spin,
    })
}

fn interleave_main(a: InterleaveArgs) -> Result<(), String> {
    let opts = InterleaveOpts {
        launch: launcher(a.launch, "interleave")?,
        sizes: a.sizes,
        copies: a.copies,
        touch: touch(a.touch),
        rounds: a.rounds,
        slice: a.slice,
        warm: a.warmup,
        csv: a.csv,
        inputs: a.inputs,
        runs: a.runs,
        ceiling_inputs: a.ceiling_inputs,
        threads: a.threads,
        conns: a.conns,
    };
    check_inputs("inputs", opts.inputs, opts.launch.buffers)?;
    check_inputs("ceiling-inputs", opts.ceiling_inputs, opts.launch.buffers)?;
    if opts.rounds == 0
        || opts.runs == 0
        || opts.threads == 0
        || opts.conns == 0
        || !(opts.slice > opts.warm && opts.warm >= 0.0)
    {
        return Err(
            "usage: --rounds, --runs, --threads and --conns must be at least 1 and --slice \
             longer than --warmup"
                .into(),
        );
    }
    interleave::run(&opts)
}

fn sweep_main(a: SweepArgs) -> Result<(), String> {
    let quick = a.quick;
    let opts = SweepOpts {
        kind: a.kind,
        launch: launcher(a.launch, "sweep")?,
        reps: a.reps,
        duration: a.duration.unwrap_or(if quick { 1.0 } else { 3.0 }),
        warmup: a.warmup.unwrap_or(if quick { 0.5 } else { 1.0 }),
        out: a.out,
        quick,
        size: a.size,
        copies: a.copies,
        points: a
            .points
            .map(|v| v.into_iter().map(|x| x.trim().to_string()).collect()),
        max_foreign: a.max_other_cpu,
        retries: a.retries,
        budget_extra: a.time_budget,
        tag: a.tag,
    };
    sweep::run(&opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<cli::Cli, clap::Error> {
        cli::Cli::try_parse_from(std::iter::once("echo-bench").chain(args.iter().copied()))
    }

    #[test]
    fn command_lines_parse_as_before() {
        cli::Cli::command().debug_assert();
        let Cmd::Server(s) = parse(&[
            "server",
            "--port",
            "0",
            "--size",
            "512K",
            "--copies",
            "5",
            "--buffers",
            "chain",
            "--touch-fraction=0.5",
        ])
        .unwrap()
        .cmd
        else {
            panic!("server")
        };
        assert_eq!(
            (s.size, s.copies, s.buffers),
            (512 << 10, 5, Some(Buffers::Chain))
        );
        assert_eq!(touch(s.touch), Touch::Fraction(0.5));
        assert!(
            parse(&["server", "--port", "0", "--size", "1K"]).is_err(),
            "--copies required"
        );
        let server = |extra: &[&'static str]| {
            let base = ["server", "--port", "0", "--size", "1K", "--copies", "1"];
            parse(&[&base[..], extra].concat())
        };
        assert!(server(&["--touch-pages", "2", "--touch-fraction", "0.1"]).is_err());
        assert!(server(&["--touch-fraction", "2"]).is_err());
        assert!(server(&["--touch-pages", "2"]).is_ok());
        assert!(
            parse(&["client", "--size", "64K"]).is_err(),
            "a port or ports"
        );
        assert!(parse(&["client", "--size", "64K", "--port", "1", "--ports", "2,3"]).is_err());
        assert!(parse(&[
            "client",
            "--size",
            "64K",
            "--ports",
            "2,3",
            "--duration",
            "1"
        ])
        .is_err());
        let Cmd::Interleave(i) = parse(&[
            "interleave",
            "--sizes",
            "64K,1M",
            "--copies=1,5",
            "--no-pin",
            "--allocator",
            "jemalloc",
        ])
        .unwrap()
        .cmd
        else {
            panic!("interleave")
        };
        assert_eq!(
            (i.sizes, i.copies, i.rounds),
            (vec![64 << 10, 1 << 20], vec![1, 5], 30)
        );
        assert!(i.launch.no_pin);
        let Cmd::Sweep(w) = parse(&["sweep", "copies", "--quick", "--points", "1, 5"])
            .unwrap()
            .cmd
        else {
            panic!("sweep")
        };
        assert_eq!(w.points, Some(vec!["1".to_string(), " 5".to_string()]));
        assert!(parse(&["sweep", "sideways"]).is_err());
        assert!(parse(&["bogus"]).is_err());
        let Cmd::SmoltcpEcho { args } =
            parse(&["smoltcp-echo", "64K", "2", "10", "plain", "--tun", "tun0"])
                .unwrap()
                .cmd
        else {
            panic!("smoltcp-echo")
        };
        assert_eq!(args, ["64K", "2", "10", "plain", "--tun", "tun0"]);
    }
}
