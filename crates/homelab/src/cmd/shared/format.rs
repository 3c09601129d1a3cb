//! How the commands write and read values on the command line: aligned tables for text
//! output, ages, and durations in the spec's notation for options.

use std::time::Duration;

/// `5m`, `90s`, `1h30m`: a duration for a command-line option.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    homelab_spec::types::Duration::parse(text)
        .map(|d| Duration::from_secs(d.seconds()))
        .map_err(|e| format!("{}; {}", e.message, e.help))
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `45s`, `12m`, `3h`, `2d`: how long ago, to the largest whole unit.
pub(crate) fn human_age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_spec() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn tables_align_columns() {
        let t = table(&[
            vec!["NAME".into(), "SIZE".into(), "AGE".into()],
            vec!["on-demand-s1-1".into(), "4.0 KiB".into(), "3m".into()],
        ]);
        assert_eq!(
            t,
            "NAME            SIZE     AGE\non-demand-s1-1  4.0 KiB  3m\n"
        );
    }

    #[test]
    fn ages_are_readable() {
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(3 * 3600 + 5), "3h");
        assert_eq!(human_age(-4), "0s");
        assert_eq!(human_age(2 * 86400), "2d");
    }
}
