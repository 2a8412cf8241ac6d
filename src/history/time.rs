//! UTC time for the run history: now, a calendar date from Unix time (no
//! time-zone database needed for UTC), and run ids that sort by time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01, proleptic
/// Gregorian (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day, hour, minute, second) in UTC.
fn parts(us: i64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = us.div_euclid(1_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
    let (y, mo, d) = civil_from_days(days);
    (y, mo, d, rem / 3600, rem / 60 % 60, rem % 60)
}

/// `2025-06-11 14:22:33` (UTC).
pub fn format_utc(us: i64) -> String {
    let (y, mo, d, h, mi, s) = parts(us);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// `20250611-142233-3f9a`: the UTC time to the second, then 4 hex digits of
/// blake3(time in µs, config hash) so two runs in one second still differ.
pub fn run_id(us: i64, config_hash: &str) -> String {
    let (y, mo, d, h, mi, s) = parts(us);
    let mut hasher = blake3::Hasher::new();
    hasher.update(&us.to_le_bytes());
    hasher.update(config_hash.as_bytes());
    let tag = &hasher.finalize().to_hex()[..4];
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}-{tag}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_known_calendar_days() {
        // `date -u -d @N` for each.
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(951_782_400_000_000), "2000-02-29 00:00:00");
        assert_eq!(format_utc(1_709_251_199_000_000), "2024-02-29 23:59:59");
        assert_eq!(format_utc(1_735_689_600_500_000), "2025-01-01 00:00:00");
        assert_eq!(format_utc(4_107_542_400_000_000), "2100-03-01 00:00:00");
        assert_eq!(format_utc(-1_000_000), "1969-12-31 23:59:59");
    }

    #[test]
    fn run_ids_sort_by_time_and_differ_within_a_second() {
        let a = run_id(1_735_689_600_000_000, "c");
        let b = run_id(1_735_689_600_000_001, "c");
        let later = run_id(1_735_689_601_000_000, "c");
        assert!(a.starts_with("20250101-000000-") && a.len() == 20, "{a}");
        assert_ne!(a, b);
        assert!(later > a && later > b);
    }
}
