//! Option values from their text: sizes, ratios, booleans, levels, each
//! checked against its option's range, and the words messages use for them.

use core::fmt;

use super::{Kind, OptDesc, GIB, KIB, MIB, TIB};

/// Why a value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Empty text.
    Empty,
    /// Not of the option's kind at all.
    Malformed,
    /// Parsed, but outside `[min, max]`.
    OutOfRange,
}

impl OptDesc {
    /// What a value of this option looks like, for messages.
    pub fn expected(&self) -> &'static str {
        match self.kind {
            Kind::Bool => "0 or 1",
            Kind::Size => "a size in bytes with optional K/M/G suffix, e.g. 16K",
            Kind::Ratio => "a fraction between 0 and 1, e.g. 0.06",
            Kind::Count => "a positive integer",
            Kind::Millis => "milliseconds, a positive integer",
            Kind::Level => "one of off, error, warn, info, debug, trace",
            Kind::Path => "a file path",
        }
    }

    /// Parses `text` as a value of this option.
    pub fn parse(&self, text: &[u8]) -> Result<u64, ParseError> {
        let text = trim(text);
        if text.is_empty() {
            return Err(ParseError::Empty);
        }
        let v = match self.kind {
            Kind::Bool => parse_bool(text)?,
            Kind::Size => parse_size(text)?,
            Kind::Count | Kind::Millis => parse_u64(text)?,
            Kind::Level => parse_level(text)?,
            Kind::Path => return Ok(0),
            Kind::Ratio => {
                let r = parse_ratio(text)?;
                if !(0.0..=1.0).contains(&r) {
                    return Err(ParseError::OutOfRange);
                }
                return Ok(r.to_bits());
            }
        };
        if v < self.min || v > self.max {
            return Err(ParseError::OutOfRange);
        }
        Ok(v)
    }

    /// Writes the accepted range, for out-of-range messages.
    pub fn write_range(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        match self.kind {
            Kind::Size => {
                write!(w, "between ")?;
                write_size(w, self.min)?;
                write!(w, " and ")?;
                write_size(w, self.max)
            }
            Kind::Ratio => write!(w, "between 0 and 1"),
            _ => write!(w, "between {} and {}", self.min, self.max),
        }
    }
}

/// Writes a byte count the way a user would type it (`16K`, `64M`, `12345`).
pub fn write_size(w: &mut dyn fmt::Write, v: u64) -> fmt::Result {
    for (unit, s) in [(TIB, "T"), (GIB, "G"), (MIB, "M"), (KIB, "K")] {
        if v >= unit && v.is_multiple_of(unit) {
            return write!(w, "{}{}", v / unit, s);
        }
    }
    write!(w, "{v}")
}

fn trim(mut t: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = t {
        if !first.is_ascii_whitespace() {
            break;
        }
        t = rest;
    }
    while let [rest @ .., last] = t {
        if !last.is_ascii_whitespace() {
            break;
        }
        t = rest;
    }
    t
}

fn parse_u64(t: &[u8]) -> Result<u64, ParseError> {
    let mut v: u64 = 0;
    for &c in t {
        if !c.is_ascii_digit() {
            return Err(ParseError::Malformed);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or(ParseError::OutOfRange)?;
    }
    Ok(v)
}

fn parse_size(t: &[u8]) -> Result<u64, ParseError> {
    let (digits, mult) = match t.last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&t[..t.len() - 1], KIB),
        Some(b'M') => (&t[..t.len() - 1], MIB),
        Some(b'G') => (&t[..t.len() - 1], GIB),
        Some(b'T') => (&t[..t.len() - 1], TIB),
        _ => (t, 1),
    };
    let digits = trim(digits);
    if digits.is_empty() {
        return Err(ParseError::Malformed);
    }
    parse_u64(digits)?
        .checked_mul(mult)
        .ok_or(ParseError::OutOfRange)
}

fn parse_bool(t: &[u8]) -> Result<u64, ParseError> {
    let mut buf = [0u8; 8];
    if t.len() > buf.len() {
        return Err(ParseError::Malformed);
    }
    for (b, c) in buf.iter_mut().zip(t) {
        *b = c.to_ascii_lowercase();
    }
    match &buf[..t.len()] {
        b"1" | b"true" | b"yes" | b"on" => Ok(1),
        b"0" | b"false" | b"no" | b"off" => Ok(0),
        _ => Err(ParseError::Malformed),
    }
}

fn parse_level(t: &[u8]) -> Result<u64, ParseError> {
    crate::log::Level::from_name(t)
        .map(|l| l as u64)
        .ok_or(ParseError::Malformed)
}

/// Parses `d`, `d.ddd` or `.ddd` without allocating (no `str::parse`, which
/// is fine but would need UTF-8 validation and gives worse messages).
fn parse_ratio(t: &[u8]) -> Result<f64, ParseError> {
    let (int, frac) = match t.iter().position(|&c| c == b'.') {
        Some(i) => (&t[..i], &t[i + 1..]),
        None => (t, &[][..]),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(ParseError::Malformed);
    }
    if int.len() > 6 || frac.len() > 12 {
        return Err(ParseError::Malformed);
    }
    let i = if int.is_empty() { 0 } else { parse_u64(int)? };
    let f = if frac.is_empty() { 0 } else { parse_u64(frac)? };
    Ok(i as f64 + f as f64 / 10f64.powi(frac.len() as i32))
}
