//! Calendar dates to Unix time (proleptic Gregorian, UTC): for the timestamps of Keystone
//! tokens and Cinder backup names, without a date-time dependency for one formula.

/// Seconds since 1970-01-01T00:00:00Z of a date and time given in fields (the caller checks
/// their ranges), by Howard Hinnant's `days_from_civil`.
pub fn unix_seconds(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hour * 3600 + minute * 60 + second
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(unix_seconds(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(unix_seconds(2000, 3, 1, 0, 0, 0), 951_868_800);
        assert_eq!(unix_seconds(1969, 12, 31, 23, 59, 59), -1);
        assert_eq!(unix_seconds(2026, 12, 6, 18, 49, 16), 1_796_582_956);
    }
}
