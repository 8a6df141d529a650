//! The host's CPUs as the benchmark sees them: the time others take
//! (other processes and the hypervisor's steal), pinning, waiting for a
//! quiet machine, idle-priority spinners, and one process's CPU time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};

/// Clock ticks per second, the unit of /proc's CPU times.
fn clock_ticks() -> f64 {
    use nix::unistd::{sysconf, SysconfVar};
    sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as f64
}

/// CPU time used so far, in seconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuTimes {
    /// By all CPUs, stolen by the hypervisor included.
    busy: f64,
    /// By this process's reaped children.
    children: f64,
    /// By this process.
    own: f64,
    /// Stolen by the hypervisor alone.
    steal: f64,
}

impl CpuTimes {
    /// The times now.
    pub(crate) fn now() -> CpuTimes {
        let hz = clock_ticks();
        let (busy, steal) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let l = s.lines().next()?.to_string();
                let v: Vec<f64> = l
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal
                let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)?;
                let steal = *v.get(7)?;
                Some((busy + steal, steal))
            })
            .unwrap_or((0.0, 0.0));
        CpuTimes {
            busy: busy / hz,
            children: rusage_secs(UsageWho::RUSAGE_CHILDREN),
            own: rusage_secs(UsageWho::RUSAGE_SELF),
            steal: steal / hz,
        }
    }

    /// The CPUs (time per second of `secs`) that neither this process nor
    /// its children used between `earlier` and these times: other
    /// processes and the hypervisor's steal.
    pub(crate) fn others_since(&self, earlier: &CpuTimes, secs: f64) -> f64 {
        ((self.busy - earlier.busy) - (self.children - earlier.children) - (self.own - earlier.own))
            / secs
    }

    /// The CPUs the hypervisor stole between `earlier` and these times.
    pub(crate) fn steal_since(&self, earlier: &CpuTimes, secs: f64) -> f64 {
        (self.steal - earlier.steal) / secs
    }
}

/// User and system seconds of `who` (this process, or its waited-for
/// children); NaN if the kernel refuses.
fn rusage_secs(who: UsageWho) -> f64 {
    use nix::sys::time::TimeValLike;
    getrusage(who).map_or(f64::NAN, |r| {
        (r.user_time().num_microseconds() + r.system_time().num_microseconds()) as f64 / 1e6
    })
}

/// CPU seconds (user + system) process `pid` has used so far; NaN if
/// unknown. `taskset` and `zio-run` replace themselves with the server, so
/// a server's pid is its child's.
pub(crate) fn process_secs(pid: u32) -> f64 {
    let hz = clock_ticks();
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces):
            // state is field 3, utime and stime fields 14 and 15.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let t = |i: usize| f.get(i - 3)?.parse::<f64>().ok();
            Some((t(14)? + t(15)?) / hz)
        })
        .unwrap_or(f64::NAN)
}

/// Pins the calling thread to one CPU (best effort: a CPU the machine
/// lacks leaves it where it was).
fn pin_to_cpu(cpu: usize) {
    use nix::sched::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// One thread per CPU of `cpus`, pinned there, running `spin` until
/// stopped; `spin` returns when `stop` is set.
fn spin_on(cpus: &[usize], spin: fn(&AtomicBool)) -> (Arc<AtomicBool>, Vec<JoinHandle<()>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let threads = cpus
        .iter()
        .map(|&cpu| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                pin_to_cpu(cpu);
                spin(&stop);
            })
        })
        .collect();
    (stop, threads)
}

/// Stops and joins the threads of [`spin_on`].
fn stop_spinning(stop: &AtomicBool, threads: &mut Vec<JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for t in threads.drain(..) {
        let _ = t.join();
    }
}

/// How much CPU other processes and the hypervisor take while this machine
/// is busy: spins one thread on each of `cpus` for `ms` and returns the CPU
/// time (in CPUs) that neither they nor our children got. Steal time shows
/// up only under load, so an idle machine cannot tell.
fn probe(cpus: &[usize], ms: u64) -> f64 {
    let before = CpuTimes::now();
    let w = Instant::now();
    let (stop, mut spinners) = spin_on(cpus, |stop| {
        let mut x = 0u64;
        while !stop.load(Ordering::Relaxed) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    });
    std::thread::sleep(Duration::from_millis(ms));
    stop_spinning(&stop, &mut spinners);
    CpuTimes::now()
        .others_since(&before, w.elapsed().as_secs_f64())
        .max(0.0)
}

/// Waits (up to `limit`) until other processes and the hypervisor take
/// less than `max` CPUs. With idle spinners running the CPUs are busy
/// anyway, so watching 0.5 s windows suffices; without, a busy probe of
/// `cpus` is needed to see steal. Returns the last reading.
pub(crate) fn wait_quiet(cpus: &[usize], max: f64, limit: Duration, spinning: bool) -> f64 {
    let t = Instant::now();
    loop {
        let load = if spinning {
            let before = CpuTimes::now();
            let w = Instant::now();
            std::thread::sleep(Duration::from_millis(500));
            CpuTimes::now().others_since(&before, w.elapsed().as_secs_f64())
        } else {
            probe(cpus, 400)
        };
        if load < max || t.elapsed() >= limit {
            return load;
        }
        if !spinning {
            std::thread::sleep(Duration::from_millis(1000));
        }
    }
}

/// One `SCHED_IDLE` thread spinning on each CPU while a sweep or an
/// interleaved run goes on; they stop when dropped.
///
/// On a VM, a vCPU with nothing to run halts and goes back to the host,
/// which on a busy host may give its physical CPU away: the next wake-up
/// (every echo is a cross-CPU wake-up) then waits for the host scheduler,
/// which shows up as steal time and makes throughput vary from run to run.
/// An idle-priority spinner keeps the vCPUs from halting; any normal
/// thread that wakes preempts it at once, and it gets no CPU time a normal
/// thread wants (`SCHED_IDLE` weight is 3 against 1024).
pub struct IdleSpinners {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl IdleSpinners {
    /// Starts one spinner on each of `cpus`.
    pub fn start(cpus: &[usize]) -> IdleSpinners {
        let (stop, threads) = spin_on(cpus, |stop| {
            // SAFETY: the scheduling policy of the calling thread, with a
            // zero-initialized parameter struct.
            unsafe {
                let param: libc::sched_param = std::mem::zeroed();
                if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
                    return;
                }
            }
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..1000 {
                    std::hint::spin_loop();
                }
            }
        });
        IdleSpinners { stop, threads }
    }
}

impl Drop for IdleSpinners {
    fn drop(&mut self) {
        stop_spinning(&self.stop, &mut self.threads);
    }
}
