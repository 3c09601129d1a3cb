//! UTC timestamps as the scripts write them (`2026-11-01T02:00:00Z`), with ages; pure: the
//! caller supplies "now", nothing here reads a clock.

use std::fmt;
use std::str::FromStr;

/// A whole second in UTC, ordered in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTime {
    unix_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a UTC time of the form 2026-11-01T02:00:00Z")]
pub struct BadTime {
    text: String,
}

impl UtcTime {
    pub fn from_unix_seconds(unix_seconds: i64) -> UtcTime {
        UtcTime { unix_seconds }
    }

    pub fn unix_seconds(self) -> i64 {
        self.unix_seconds
    }

    /// Seconds from `self` to `now` (negative when `self` is in the future).
    pub fn seconds_before(self, now: UtcTime) -> i64 {
        now.unix_seconds - self.unix_seconds
    }
}

impl FromStr for UtcTime {
    type Err = BadTime;

    /// Only the exact form the scripts write (`date -u +%Y-%m-%dT%H:%M:%SZ`): whole seconds,
    /// UTC, `Z`, so that two spellings of one instant never sort apart as text.
    fn from_str(s: &str) -> Result<UtcTime, BadTime> {
        let bad = || BadTime {
            text: s.to_string(),
        };
        let shape_ok = s.len() == 20
            && s.bytes().enumerate().all(|(i, c)| match i {
                4 | 7 => c == b'-',
                10 => c == b'T',
                13 | 16 => c == b':',
                19 => c == b'Z',
                _ => c.is_ascii_digit(),
            });
        if !shape_ok {
            return Err(bad());
        }
        let t: jiff::Timestamp = s.parse().map_err(|_| bad())?;
        Ok(UtcTime {
            unix_seconds: t.as_second(),
        })
    }
}

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_second(self.unix_seconds) {
            Ok(t) => write!(f, "{t}"),
            // Outside years -9999 to 9999: only a corrupted record gets there.
            Err(_) => write!(f, "@{}", self.unix_seconds),
        }
    }
}

impl<'de> serde::Deserialize<'de> for UtcTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<UtcTime, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A duration in seconds for people: `45 s`, `12 min`, `3 h 05 min`, `2 d 04 h`.
pub fn human_duration(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let s = seconds.unsigned_abs();
    match s {
        0..=89 => format!("{sign}{s} s"),
        90..=3599 => format!("{sign}{} min", (s + 30) / 60),
        3600..=86_399 => format!("{sign}{} h {:02} min", s / 3600, s % 3600 / 60),
        _ => format!("{sign}{} d {:02} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T12:34:56Z",
            "2026-11-22T00:15:46Z",
            "2100-12-31T23:59:59Z",
        ] {
            let t: UtcTime = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
        }
        let a: UtcTime = "2026-11-21T23:59:59Z".parse().unwrap();
        let b: UtcTime = "2026-11-22T00:00:00Z".parse().unwrap();
        assert!(a < b);
        assert_eq!(a.seconds_before(b), 1);
        assert_eq!(
            "2026-11-22T00:15:46Z"
                .parse::<UtcTime>()
                .unwrap()
                .unix_seconds(),
            1_795_306_546
        );
    }

    #[test]
    fn malformed_times_are_refused() {
        for text in [
            "",
            "2026-11-22 00:15:46Z",
            "2026-11-22T00:15:46",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-1a-22T00:00:00Z",
            "+026-11-22T00:00:00Z",
        ] {
            assert!(text.parse::<UtcTime>().is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(45), "45 s");
        assert_eq!(human_duration(720), "12 min");
        assert_eq!(human_duration(3 * 3600 + 300), "3 h 05 min");
        assert_eq!(human_duration(2 * 86_400 + 4 * 3600), "2 d 04 h");
    }
}
