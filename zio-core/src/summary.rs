//! Reading zio's stats summaries back: the text [`crate::stats`] prints at
//! exit, for every process of a log, and the log's other lines.
//!
//! A summary is a header line, the hook table and, when zio ran in ready
//! mode, the engine's counters, each line prefixed with `zio[PID]`:
//!
//! ```text
//! zio[12] stats: 1.00 s, ready
//! zio[12]   hook                      calls              bytes
//! zio[12]   memcpy                       10            2097152  (2.0 MiB)
//! zio[12]   elided_bytes                     524288
//! ```
//!
//! Messages (`zio[PID]: warn: ...`) and lines of other programs in the
//! same log are kept apart, in order. Pure `std`: the benchmark driver
//! and the integration tests read logs with it, outside any preloaded
//! process.

use std::collections::BTreeMap;

/// A hook's row of the hook table: how often it was called and the bytes
/// it moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Calls.
    pub calls: u64,
    /// Bytes.
    pub bytes: u64,
}

/// What one line of a log is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// `zio[PID] stats: TEXT`, the first line of a summary; the text says
    /// how long the process ran and in which mode.
    Header {
        /// The process.
        pid: u32,
        /// Everything after `stats: `.
        text: &'a str,
    },
    /// `zio[PID]   hook calls bytes`, the hook table's title.
    Title {
        /// The process.
        pid: u32,
    },
    /// `zio[PID]   NAME CALLS BYTES` (and `(x MiB)` for large byte counts).
    Hook {
        /// The process.
        pid: u32,
        /// The hook's symbol name.
        name: &'a str,
        /// Its row.
        count: Count,
    },
    /// `zio[PID]   NAME VALUE`, one of the engine's counters.
    Counter {
        /// The process.
        pid: u32,
        /// The counter's name (see [`crate::stats::ENGINE_COUNTERS`]).
        name: &'a str,
        /// Its value.
        value: u64,
    },
    /// Any other line that is not blank: zio's messages
    /// (`zio[PID]: LEVEL: text`) and other programs' output.
    Message(&'a str),
    /// An empty or all-blank line.
    Blank,
}

/// Says what `line` (without its newline) is.
pub fn line(line: &str) -> Line<'_> {
    if line.trim().is_empty() {
        return Line::Blank;
    }
    stats_line(line).unwrap_or(Line::Message(line))
}

/// A line of a summary, or None for anything else.
fn stats_line(line: &str) -> Option<Line<'_>> {
    let (pid, rest) = line.strip_prefix("zio[")?.split_once(']')?;
    let pid: u32 = pid.parse().ok()?;
    if let Some(text) = rest.strip_prefix(" stats: ") {
        return Some(Line::Header { pid, text });
    }
    // Table rows are indented; messages go on with ": ".
    if !rest.starts_with(' ') {
        return None;
    }
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    match (f.as_slice(), num(1), num(2)) {
        (["hook", "calls", "bytes"], _, _) => Some(Line::Title { pid }),
        ([name, _, _, ..], Some(calls), Some(bytes)) => Some(Line::Hook {
            pid,
            name,
            count: Count { calls, bytes },
        }),
        ([name, _], Some(value), None) => Some(Line::Counter { pid, name, value }),
        _ => None,
    }
}

/// Every summary of a log, by process, and the log's messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// pid -> the summary's header text (duration and mode).
    pub headers: BTreeMap<u32, String>,
    /// pid -> hook name -> its row.
    pub hooks: BTreeMap<u32, BTreeMap<String, Count>>,
    /// pid -> engine counter name -> value.
    pub engine: BTreeMap<u32, BTreeMap<String, u64>>,
    /// The lines that are neither summaries nor blank, in order.
    pub messages: Vec<String>,
}

impl Summary {
    /// Reads `text`: any number of processes' summaries and other lines.
    /// A pid seen twice (reused by a later process) adds up its hook rows
    /// and counters, keeps the last header, and counts as one process.
    pub fn parse(text: &str) -> Summary {
        let mut s = Summary::default();
        for l in text.lines() {
            match line(l) {
                Line::Header { pid, text } => {
                    s.headers.insert(pid, text.to_string());
                }
                Line::Title { .. } | Line::Blank => {}
                Line::Hook { pid, name, count } => {
                    let c = s.hooks.entry(pid).or_default();
                    let c = c.entry(name.to_string()).or_default();
                    c.calls += count.calls;
                    c.bytes += count.bytes;
                }
                Line::Counter { pid, name, value } => {
                    let c = s.engine.entry(pid).or_default();
                    *c.entry(name.to_string()).or_default() += value;
                }
                Line::Message(m) => s.messages.push(m.to_string()),
            }
        }
        s
    }

    /// Number of processes that printed a summary.
    pub fn processes(&self) -> usize {
        self.headers.len()
    }

    /// A hook's row summed over every process (zero if none called it).
    pub fn hook(&self, name: &str) -> Count {
        let mut c = Count::default();
        for x in self.hooks.values().filter_map(|m| m.get(name)) {
            c.calls += x.calls;
            c.bytes += x.bytes;
        }
        c
    }

    /// An engine counter summed over every process (0 if none printed it).
    pub fn counter(&self, name: &str) -> u64 {
        self.engine.values().filter_map(|m| m.get(name)).sum()
    }

    /// Every engine counter, each summed over the processes.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let mut all = BTreeMap::new();
        for (name, v) in self.engine.values().flatten() {
            *all.entry(name.clone()).or_default() += v;
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{engine_lines, summary_lines, Hook, Snapshot, HOOK_NAMES, NHOOKS};

    /// One process's summary, as the library prints it at exit.
    fn printed(pid: i32, snap: &Snapshot, header: &str, c: &crate::engine::Counters) -> String {
        let mut text = String::new();
        summary_lines(pid, snap, header, &mut |l| text.push_str(l));
        engine_lines(pid, c, &mut |l| text.push_str(l));
        text
    }

    #[test]
    fn printed_summaries_parse_back_to_their_values() {
        let mut snap = Snapshot {
            calls: [0; NHOOKS],
            bytes: [0; NHOOKS],
        };
        for (i, (calls, bytes)) in snap.calls.iter_mut().zip(&mut snap.bytes).enumerate() {
            // Every third hook uncalled (no row), some above 1 MiB (a
            // "(x MiB)" tail), one at the largest value.
            if i % 3 != 0 {
                *calls = i as u64 * 7 + 1;
                *bytes = (i as u64) << (i % 40);
            }
        }
        snap.calls[Hook::Read as usize] = u64::MAX;
        snap.bytes[Hook::Read as usize] = u64::MAX;
        let c = crate::engine::Counters {
            elided_copies: 3,
            elided_bytes: 1 << 40,
            materialized: [1, 2, 3, 4, 5],
            policy_skips: u64::MAX,
            program_ns: 12_345_678,
            ..Default::default()
        };
        let text = printed(4242, &snap, "1.25 s, ready", &c)
            + &printed(7, &snap, "0.01 s, ready", &Default::default());
        let s = Summary::parse(&text);

        assert_eq!(s.processes(), 2);
        assert_eq!(s.headers[&4242], "1.25 s, ready");
        assert!(s.messages.is_empty(), "{:?}", s.messages);
        for (i, name) in HOOK_NAMES.iter().enumerate() {
            let row = s.hooks[&4242].get(*name).copied();
            let want = (snap.calls[i] != 0).then_some(Count {
                calls: snap.calls[i],
                bytes: snap.bytes[i],
            });
            assert_eq!(row, want, "{name}");
        }
        for (name, get) in crate::stats::ENGINE_COUNTERS {
            assert_eq!(s.engine[&4242][*name], get(&c), "{name}");
            assert_eq!(s.engine[&7][*name], 0, "{name}");
            assert_eq!(s.counter(name), get(&c), "{name}");
        }
        assert_eq!(s.counters().len(), crate::stats::ENGINE_COUNTERS.len());
        assert_eq!(s.counter("pages_by_other"), 5);
        assert_eq!(s.counter("engine_us_program"), 12_345);
        let memmove = s.hook("memmove");
        assert_eq!(memmove.calls, 2 * snap.calls(Hook::Memmove));
        assert_eq!(s.hook("memcpy"), Count::default(), "never called, no row");
    }

    #[test]
    fn summaries_of_several_processes_add_up() {
        let text = "zio[10] stats: 0.10 s, ready, userfaultfd features 0x1ffff\n\
                    zio[10]   hook   calls   bytes\n\
                    zio[10]   read       3    4096  (x)\n\
                    zio[10]   elided_bytes    524288\n\
                    zio[11]: warn: something\n\
                    zio[11] stats: 0.01 s, pass-through (ZIO_ENABLE=0)\n\
                    zio[11]   read       2      10\n\
                    zio[11]   elided_bytes    1\n";
        let s = Summary::parse(text);
        assert_eq!(s.processes(), 2);
        assert_eq!(
            s.hook("read"),
            Count {
                calls: 5,
                bytes: 4106
            }
        );
        assert_eq!(s.hook("write"), Count::default());
        assert!(s.headers[&11].contains("ZIO_ENABLE=0"));
        assert_eq!(s.counter("elided_bytes"), 524289);
        assert_eq!(s.counter("faults_zero"), 0);
        assert_eq!(s.counters().get("elided_bytes"), Some(&524289));
        assert_eq!(s.counters().get("read"), None);
        assert_eq!(s.messages, ["zio[11]: warn: something"]);
    }

    #[test]
    fn other_lines_are_messages() {
        assert_eq!(line("   "), Line::Blank);
        for m in [
            "zio[3]: info: loaded: ready",
            "zio[3]: warn: 5 7",
            "zio[x]   read 1 2",
            "zio[3]   what is this",
            "zio[3]   elided_bytes 12 x",
            "echo-bench server: 10 messages",
        ] {
            assert_eq!(line(m), Line::Message(m));
        }
        assert_eq!(
            line("zio[3]   faults_wp   9"),
            Line::Counter {
                pid: 3,
                name: "faults_wp",
                value: 9
            }
        );
        assert_eq!(line("zio[3]   hook calls bytes"), Line::Title { pid: 3 });
    }
}
