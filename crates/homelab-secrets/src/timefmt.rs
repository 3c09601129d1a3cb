//! Timestamps as sops and go-yaml v3 read and write them (RFC 3339 and YAML's looser forms);
//! pure formatting and parsing, it must not read the clock except in `now_rfc3339`.

/// A parsed timestamp: civil date and time plus an optional UTC offset in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timestamp {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanos: u32,
    /// `None` when the text carried no zone (Go then reads it as UTC).
    pub offset_seconds: Option<i32>,
}

impl Timestamp {
    /// Go's `time.Time.Format(time.RFC3339)`: no fraction, `Z` for a zero offset.
    pub fn to_rfc3339(self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            zone_text(self.offset_seconds.unwrap_or(0))
        )
    }

    /// Go's `time.Time.MarshalText` (RFC 3339 with nanoseconds, trailing zeros trimmed).
    pub fn to_rfc3339_nano(self) -> String {
        let mut fraction = String::new();
        if self.nanos > 0 {
            fraction = format!(".{:09}", self.nanos);
            while fraction.ends_with('0') {
                fraction.pop();
            }
        }
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            fraction,
            zone_text(self.offset_seconds.unwrap_or(0))
        )
    }
}

fn zone_text(offset: i32) -> String {
    if offset == 0 {
        return "Z".to_owned();
    }
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    format!("{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60)
}

/// Parses a strict RFC 3339 timestamp (`2006-01-02T15:04:05Z07:00`, optional fraction), as
/// Go's `time.Parse(time.RFC3339, s)` accepts it.
pub(crate) fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let mut c = Cursor::new(s);
    let year = c.digits_exact(4)? as i64;
    c.expect(b'-')?;
    let month = c.digits_exact(2)?;
    c.expect(b'-')?;
    let day = c.digits_exact(2)?;
    c.expect(b'T')?;
    let hour = c.digits_exact(2)?;
    c.expect(b':')?;
    let minute = c.digits_exact(2)?;
    c.expect(b':')?;
    let second = c.digits_exact(2)?;
    let nanos = c.fraction()?;
    let offset = c.zone()?;
    if !c.at_end() {
        return None;
    }
    build(year, month, day, hour, minute, second, nanos, Some(offset))
}

/// Parses the timestamp forms go-yaml v3 resolves an unquoted scalar to: `2006-1-2`,
/// `2006-1-2T15:4:5.999999999Z07:00` (also with `t`), and `2006-1-2 15:4:5.999999999`.
pub(crate) fn parse_yaml_timestamp(s: &str) -> Option<Timestamp> {
    let bytes = s.as_bytes();
    if bytes.len() < 5 || !bytes[..4].iter().all(u8::is_ascii_digit) || bytes[4] != b'-' {
        return None;
    }
    let mut c = Cursor::new(s);
    let year = c.digits_exact(4)? as i64;
    c.expect(b'-')?;
    let month = c.digits_between(1, 2)?;
    c.expect(b'-')?;
    let day = c.digits_between(1, 2)?;
    if c.at_end() {
        return build(year, month, day, 0, 0, 0, 0, None);
    }
    let separator = c.next()?;
    let zoned = match separator {
        b'T' | b't' => true,
        b' ' => false,
        _ => return None,
    };
    let hour = c.digits_between(1, 2)?;
    c.expect(b':')?;
    let minute = c.digits_between(1, 2)?;
    c.expect(b':')?;
    let second = c.digits_between(1, 2)?;
    let nanos = c.fraction()?;
    let offset = if zoned { Some(c.zone()?) } else { None };
    if !c.at_end() {
        return None;
    }
    build(year, month, day, hour, minute, second, nanos, offset)
}

#[allow(clippy::too_many_arguments)]
fn build(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    offset_seconds: Option<i32>,
) -> Option<Timestamp> {
    // The parsers read at most four year digits and two month and day digits, so the casts
    // are exact; jiff refuses the 31st of April and the 29th of February of common years.
    jiff::civil::Date::new(year as i16, month as i8, day as i8).ok()?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(Timestamp {
        year,
        month,
        day,
        hour,
        minute,
        second,
        nanos,
        offset_seconds,
    })
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            bytes: s.as_bytes(),
            pos: 0,
        }
    }

    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn digits_exact(&mut self, n: usize) -> Option<u32> {
        self.digits_between(n, n)
    }

    fn digits_between(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.pos;
        while self.pos < self.bytes.len()
            && self.pos - start < max
            && self.bytes[self.pos].is_ascii_digit()
        {
            self.pos += 1;
        }
        let len = self.pos - start;
        if len < min {
            return None;
        }
        std::str::from_utf8(&self.bytes[start..self.pos])
            .ok()?
            .parse()
            .ok()
    }

    /// An optional `.ddd` fraction (1 to 9 digits) as nanoseconds.
    fn fraction(&mut self) -> Option<u32> {
        if self.bytes.get(self.pos) != Some(&b'.') {
            return Some(0);
        }
        self.pos += 1;
        let start = self.pos;
        while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_digit() {
            self.pos += 1;
        }
        let digits = &self.bytes[start..self.pos];
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        let mut nanos: u32 = 0;
        for i in 0..9 {
            nanos = nanos * 10 + digits.get(i).map_or(0, |d| u32::from(d - b'0'));
        }
        Some(nanos)
    }

    /// `Z` or `±hh:mm`.
    fn zone(&mut self) -> Option<i32> {
        match self.next()? {
            b'Z' => Some(0),
            sign @ (b'+' | b'-') => {
                let hours = self.digits_exact(2)? as i32;
                self.expect(b':')?;
                let minutes = self.digits_exact(2)? as i32;
                if hours > 23 || minutes > 59 {
                    return None;
                }
                let total = hours * 3600 + minutes * 60;
                Some(if sign == b'-' { -total } else { total })
            }
            _ => None,
        }
    }
}

/// The current time in UTC, formatted as sops writes `lastmodified`.
pub(crate) fn now_rfc3339() -> String {
    unix_to_rfc3339(jiff::Timestamp::now().as_second())
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn unix_to_rfc3339(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.to_string(),
        // Outside years -9999 to 9999; the clock never says so.
        Err(_) => format!("@{secs}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_instants_format_like_go() {
        assert_eq!(unix_to_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(unix_to_rfc3339(1_703_500_261), "2023-12-25T10:31:01Z");
        assert_eq!(unix_to_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn rfc3339_parse_and_format_round_trip() {
        let t = parse_rfc3339("2024-11-12T13:33:42Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-11-12T13:33:42Z");
        let t = parse_rfc3339("2024-11-12T13:33:42.120+01:30").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-11-12T13:33:42+01:30");
        assert_eq!(t.to_rfc3339_nano(), "2024-11-12T13:33:42.12+01:30");
        assert_eq!(
            parse_rfc3339("2024-11-12T13:33:42-00:00")
                .unwrap()
                .to_rfc3339(),
            "2024-11-12T13:33:42Z"
        );
    }

    #[test]
    fn rfc3339_rejects_malformed() {
        for bad in [
            "2024-11-12 13:33:42Z",
            "2024-11-12T13:33:42",
            "2024-13-12T13:33:42Z",
            "2023-02-29T00:00:00Z",
            "2024-11-12T13:33:42Zjunk",
            "24-11-12T13:33:42Z",
            "",
        ] {
            assert!(parse_rfc3339(bad).is_none(), "{bad} should be rejected");
        }
    }

    #[test]
    fn yaml_timestamp_forms() {
        assert_eq!(
            parse_yaml_timestamp("2001-12-14")
                .unwrap()
                .to_rfc3339_nano(),
            "2001-12-14T00:00:00Z"
        );
        assert_eq!(
            parse_yaml_timestamp("2001-2-4t1:2:3.5-05:00")
                .unwrap()
                .to_rfc3339_nano(),
            "2001-02-04T01:02:03.5-05:00"
        );
        assert_eq!(
            parse_yaml_timestamp("2001-12-14 21:59:43.10")
                .unwrap()
                .to_rfc3339_nano(),
            "2001-12-14T21:59:43.1Z"
        );
        assert!(parse_yaml_timestamp("2001-12-14x").is_none());
        assert!(parse_yaml_timestamp("20011-12-14").is_none());
        assert!(parse_yaml_timestamp("2001-12-14T21:59:43").is_none());
    }
}
