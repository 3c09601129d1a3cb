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

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

impl FromStr for UtcTime {
    type Err = BadTime;

    fn from_str(s: &str) -> Result<UtcTime, BadTime> {
        let bad = || BadTime {
            text: s.to_string(),
        };
        let b = s.as_bytes();
        if b.len() != 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[19] != b'Z'
        {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64, BadTime> {
            let part = &s[r];
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo)
            || d < 1
            || d > days_in_month(y, mo)
            || h > 23
            || mi > 59
            || se > 60
        {
            return Err(bad());
        }
        Ok(UtcTime {
            unix_seconds: days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se,
        })
    }
}

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.unix_seconds.div_euclid(86_400);
        let secs = self.unix_seconds.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )
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
