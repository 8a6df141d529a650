//! What `zio-stat --help` and `zio-stat --man` say about the counters:
//! every name with its meaning, read from the README's Stats table at
//! build time, so the manual and the README cannot drift apart.

use std::io::{self, Write};

use roff::{bold, roman, Roff};

const README: &str = include_str!("../../README.md");

/// Where the counters come from, after the lists.
const FILE_NOTE: &str = "The counters are read from /dev/shm/zio.PID (mode 0600, the \
     process's own user only), which libzio publishes from the process's first input of \
     ZIO_THRESHOLD bytes on and removes at a normal exit; files of dead processes are \
     ignored and removed.";

/// What the hook table shows.
const HOOKS_NOTE: &str = "Calls of each hooked function, and the bytes they moved: the \
     length for copies, the return value for IO calls, the new size for realloc and \
     mremap, the length for munmap and madvise.";

/// One row of the README's counter table.
#[derive(Debug)]
pub struct Row {
    /// The counters the row describes.
    pub names: Vec<&'static str>,
    /// What they count, as plain text.
    pub meaning: String,
}

/// The rows of the README's table headed `| counter | meaning |`.
pub fn counter_rows() -> Vec<Row> {
    let Some(start) = README.find("| counter | meaning |") else {
        return Vec::new();
    };
    README[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let (names, meaning) = l
                .strip_prefix("| ")?
                .strip_suffix(" |")?
                .split_once(" | ")?;
            Some(Row {
                names: names.split(", ").map(|n| n.trim_matches('`')).collect(),
                meaning: meaning.replace('`', ""),
            })
        })
        .collect()
}

/// `text` filled to lines of at most `width` columns, each indented by
/// `indent` spaces.
fn fill(text: &str, indent: usize, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > width {
            out += &" ".repeat(indent);
            out += &line;
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line += word;
    }
    out += &" ".repeat(indent);
    out + &line
}

/// The text after the options in `--help`: the hooks, each counter with
/// its meaning, and the file they come from.
pub fn long_help() -> String {
    let mut out = format!(
        "Hooks:\n{}\n{}\n\nEngine counters:\n",
        fill(HOOKS_NOTE, 2, 80),
        fill(&zio_core::stats::HOOK_NAMES.join(" "), 4, 80)
    );
    for row in counter_rows() {
        out += &fill(&row.names.join(", "), 2, 80);
        out.push('\n');
        out += &fill(&row.meaning, 6, 80);
        out.push('\n');
    }
    out + "\n" + &fill(FILE_NOTE, 0, 80)
}

/// The manual page: clap's sections for the command line, then the hooks,
/// the counters and the file.
pub fn render_man(cmd: clap::Command, w: &mut dyn Write) -> io::Result<()> {
    let man = clap_mangen::Man::new(cmd);
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    let mut r = Roff::new();
    // Names such as __recvfrom_chk must not be hyphenated.
    r.control("nh", []);
    r.control("SH", ["HOOKS"])
        .text([roman(HOOKS_NOTE)])
        .control("PP", [])
        .text([bold(zio_core::stats::HOOK_NAMES.join(" "))]);
    r.control("SH", ["COUNTERS"]);
    for row in counter_rows() {
        r.control("TP", [])
            .text([bold(row.names.join(", "))])
            .text([roman(row.meaning)]);
    }
    r.control("SH", ["FILES"]).text([roman(FILE_NOTE)]);
    r.control("SH", ["SEE ALSO"])
        .text([bold("zio-run"), roman("(1)")]);
    r.to_writer(w)?;
    man.render_version_section(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_counter_has_one_row_in_the_readme() {
        let rows = counter_rows();
        let documented: Vec<&str> = rows.iter().flat_map(|r| r.names.iter().copied()).collect();
        for (name, _) in zio_core::stats::ENGINE_COUNTERS {
            let n = documented.iter().filter(|d| *d == name).count();
            assert_eq!(n, 1, "{name} is described {n} times in README.md");
        }
        for d in &documented {
            assert!(
                zio_core::stats::engine_counter(d.as_bytes()).is_some(),
                "README.md describes {d}, which is no counter"
            );
        }
        assert!(rows.iter().all(|r| !r.meaning.is_empty()));
    }

    #[test]
    fn help_and_manual_name_every_counter_and_hook() {
        let mut man = Vec::new();
        render_man(crate::command(), &mut man).unwrap();
        let man = String::from_utf8(man).unwrap();
        let help = crate::command().render_long_help().to_string();
        for text in [&help, &man] {
            for (name, _) in zio_core::stats::ENGINE_COUNTERS {
                assert!(text.contains(name), "{name}");
            }
            for name in zio_core::stats::HOOK_NAMES {
                assert!(text.contains(name), "{name}");
            }
            assert!(text.contains("/dev/shm/zio.PID"));
        }
        assert!(help.contains("--watch") && man.contains(r"\-\-watch"));
        let ours = long_help();
        assert!(ours.lines().all(|l| l.chars().count() <= 80), "{ours}");
    }

    #[test]
    fn fill_keeps_words_and_width() {
        let t = "one two three four five six seven eight nine ten";
        let f = fill(t, 3, 16);
        assert!(
            f.lines().all(|l| l.len() <= 16 && l.starts_with("   ")),
            "{f}"
        );
        assert_eq!(f.split_whitespace().collect::<Vec<_>>().join(" "), t);
    }
}
