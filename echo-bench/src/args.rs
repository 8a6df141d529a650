//! A small command-line parser: `--name value`, `--name=value` and flags.
//! Every option given must be consumed; leftovers are usage errors.

use std::str::FromStr;

/// Options of one subcommand, consumed by name.
pub struct Opts {
    items: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

impl Opts {
    /// Splits `argv` (without the program and subcommand names). `flags`
    /// names the options that take no value.
    pub fn parse(argv: &[String], flags: &[&str]) -> Result<Opts, String> {
        let mut items = Vec::new();
        let mut positional = Vec::new();
        let mut i = 0;
        while i < argv.len() {
            let a = &argv[i];
            i += 1;
            let Some(body) = a.strip_prefix("--") else {
                if a == "-h" {
                    items.push(("help".to_string(), None));
                } else {
                    positional.push(a.clone());
                }
                continue;
            };
            if let Some((k, v)) = body.split_once('=') {
                items.push((k.to_string(), Some(v.to_string())));
            } else if flags.contains(&body) {
                items.push((body.to_string(), None));
            } else {
                let v = argv
                    .get(i)
                    .ok_or_else(|| format!("option --{body} needs a value"))?;
                i += 1;
                items.push((body.to_string(), Some(v.clone())));
            }
        }
        Ok(Opts { items, positional })
    }

    /// True (and consumed) if the flag was given.
    pub fn flag(&mut self, name: &str) -> bool {
        let before = self.items.len();
        self.items.retain(|(k, _)| k != name);
        before != self.items.len()
    }

    /// The last value given for `name`, as a string.
    pub fn string(&mut self, name: &str) -> Result<Option<String>, String> {
        let mut out = None;
        let mut err = None;
        self.items.retain(|(k, v)| {
            if k != name {
                return true;
            }
            match v {
                Some(v) => out = Some(v.clone()),
                None => err = Some(format!("option --{name} needs a value")),
            }
            false
        });
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// The value of `name` parsed as `T`, or None.
    pub fn get<T: FromStr>(&mut self, name: &str) -> Result<Option<T>, String> {
        match self.string(name)? {
            None => Ok(None),
            Some(s) => s
                .parse::<T>()
                .map(Some)
                .map_err(|_| format!("bad value for --{name}: {s:?}")),
        }
    }

    /// A size with an optional K/M/G suffix (powers of 1024; "KiB" also accepted).
    pub fn size(&mut self, name: &str) -> Result<Option<usize>, String> {
        match self.string(name)? {
            None => Ok(None),
            Some(s) => parse_size(&s)
                .map(Some)
                .ok_or_else(|| format!("bad size for --{name}: {s:?}")),
        }
    }

    /// A comma-separated list of values parsed as `T`, or None.
    pub fn list<T: FromStr>(&mut self, name: &str) -> Result<Option<Vec<T>>, String> {
        self.list_with(name, |s| s.parse().ok())
    }

    /// A comma-separated list of sizes (as [`Opts::size`]), or None.
    pub fn sizes(&mut self, name: &str) -> Result<Option<Vec<usize>>, String> {
        self.list_with(name, parse_size)
    }

    fn list_with<T>(
        &mut self,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<Vec<T>>, String> {
        let Some(s) = self.string(name)? else {
            return Ok(None);
        };
        let items: Vec<String> = s.split(',').map(str::to_string).collect();
        parse_list_with(&items, name, parse).map(Some)
    }

    /// Positional arguments, consumed.
    pub fn positional(&mut self) -> Vec<String> {
        std::mem::take(&mut self.positional)
    }

    /// Errors if anything was left unconsumed.
    pub fn finish(self) -> Result<(), String> {
        if let Some((k, _)) = self.items.first() {
            return Err(format!("unknown option --{k}"));
        }
        if let Some(p) = self.positional.first() {
            return Err(format!("unexpected argument {p:?}"));
        }
        Ok(())
    }
}

/// Parses each of `items` (values given to `--name`) with `parse`.
pub fn parse_list_with<T>(
    items: &[String],
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, String> {
    items
        .iter()
        .map(|s| parse(s.trim()).ok_or_else(|| format!("bad value in --{name}: {s:?}")))
        .collect()
}

/// Parses "512K", "512KiB", "1M", "16384".
pub fn parse_size(s: &str) -> Option<usize> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix("ib"))
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mul) = match t.chars().last()? {
        'k' | 'K' => (&t[..t.len() - 1], 1usize << 10),
        'm' | 'M' => (&t[..t.len() - 1], 1 << 20),
        'g' | 'G' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.trim().parse::<usize>().ok()?.checked_mul(mul)
}

/// "512K" for 524288, "1M", "1000" for sizes that are not round.
pub fn fmt_size(n: usize) -> String {
    if n >= 1 << 20 && n & ((1 << 20) - 1) == 0 {
        format!("{}M", n >> 20)
    } else if n >= 1 << 10 && n & ((1 << 10) - 1) == 0 {
        format!("{}K", n >> 10)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512K"), Some(512 << 10));
        assert_eq!(parse_size("512KiB"), Some(512 << 10));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
        assert_eq!(fmt_size(512 << 10), "512K");
        assert_eq!(fmt_size(1 << 20), "1M");
    }

    #[test]
    fn lists() {
        let mut o = Opts::parse(
            &v(&["--sizes", "64K, 1M", "--copies=1,5", "--bad", "1,x"]),
            &[],
        )
        .unwrap();
        assert_eq!(o.sizes("sizes").unwrap(), Some(vec![64 << 10, 1 << 20]));
        assert_eq!(o.list::<usize>("copies").unwrap(), Some(vec![1, 5]));
        assert_eq!(o.list::<usize>("none").unwrap(), None);
        let e = o.list::<usize>("bad").unwrap_err();
        assert_eq!(e, "bad value in --bad: \"x\"");
        o.finish().unwrap();
    }

    #[test]
    fn options() {
        let mut o = Opts::parse(
            &v(&["--port", "5", "--quick", "--size=8K", "copies"]),
            &["quick"],
        )
        .unwrap();
        assert_eq!(o.get::<u16>("port").unwrap(), Some(5));
        assert!(o.flag("quick"));
        assert_eq!(o.size("size").unwrap(), Some(8192));
        assert_eq!(o.positional(), v(&["copies"]));
        o.finish().unwrap();
        let o = Opts::parse(&v(&["--bogus", "1"]), &[]).unwrap();
        assert!(o.finish().is_err());
    }
}
