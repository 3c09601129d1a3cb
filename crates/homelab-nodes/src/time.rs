//! UTC timestamps as RFC 3339 text for history records and snapshot ages; pure.

/// Seconds since the Unix epoch, now.
pub(crate) fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Formats Unix seconds as `2026-11-22T10:04:05Z`.
pub(crate) fn format_rfc3339(unix: i64) -> String {
    match jiff::Timestamp::from_second(unix) {
        Ok(t) => t.to_string(),
        // Outside jiff's range (years -9999 to 9999): no clock or k3s record gets there.
        Err(_) => format!("@{unix}"),
    }
}

/// Parses RFC 3339 (`2026-11-22T10:04:05Z`, `...+01:00`, fractional seconds allowed) to Unix
/// seconds; a time without an offset is refused, as it names no instant.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// Says how long ago `then` was, relative to `now`, in the largest sensible unit (`3h`, `2d`).
pub(crate) fn age(now: i64, then: i64) -> String {
    let s = (now - then).max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for t in [0, 951_782_400, 1_795_000_000, 4_102_444_799] {
            assert_eq!(parse_rfc3339(&format_rfc3339(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2026-11-18T12:06:40+01:00"),
            Some(1_795_000_000)
        );
        // ISO 8601's offset without a colon names the same instant.
        assert_eq!(
            parse_rfc3339("2026-11-18T12:06:40+0100"),
            Some(1_795_000_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-18T11:06:40.123456Z"),
            Some(1_795_000_000)
        );
        for bad in [
            "",
            "2026-11-18",
            "2026-13-01T00:00:00Z",
            "2026-11-18T09:46:40",
            "2026-11-18T25:46:40Z",
            "2026-02-29T09:46:40Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(100, 40), "60s");
        assert_eq!(age(10_000, 0), "2h");
        assert_eq!(age(3 * 86_400, 0), "3d");
        assert_eq!(age(0, 50), "0s");
    }
}
