//! Values on echo-bench's command lines (clap parses the lines
//! themselves, in `main.rs`): sizes with K/M/G suffixes, and lists.

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

/// [`parse_size`] for clap: a size, or why not.
pub fn size_arg(s: &str) -> Result<usize, String> {
    parse_size(s).ok_or_else(|| format!("not a size: {s:?} (a number with K, M or G)"))
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
        let items = ["64K".to_string(), " 1M".to_string()];
        assert_eq!(
            parse_list_with(&items, "sizes", parse_size),
            Ok(vec![64 << 10, 1 << 20])
        );
        let bad = ["1".to_string(), "x".to_string()];
        let e = parse_list_with(&bad, "copies", |s| s.parse::<usize>().ok()).unwrap_err();
        assert_eq!(e, "bad value in --copies: \"x\"");
        assert!(size_arg("lots").is_err());
    }
}
