//! RFC 3339 timestamps as SightMill sends them (`updated_at`, the envelope's `timestamp`), turned into
//! Unix milliseconds so that the core can order updates without touching the platform clock.

/// Milliseconds since the Unix epoch, UTC.
pub type UnixMillis = i64;

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into Unix milliseconds.
/// Fractions beyond milliseconds are truncated. Returns `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<UnixMillis> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !matches!(bytes[10], b'T' | b't') {
        return None;
    }
    let expect = |at: usize, ch: u8| bytes.get(at) == Some(&ch);
    if !(expect(4, b'-') && expect(7, b'-') && expect(13, b':') && expect(16, b':')) {
        return None;
    }
    let year = digits(&bytes[0..4])?;
    let month = digits(&bytes[5..7])?;
    let day = digits(&bytes[8..10])?;
    let hour = digits(&bytes[11..13])?;
    let minute = digits(&bytes[14..16])?;
    let second = digits(&bytes[17..19])?;
    let valid_date = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
    if !valid_date || hour > 23 || minute > 59 || second > 60 {
        return None;
    }

    let (millis, zone) = fraction_millis(&bytes[19..])?;
    let offset_minutes = zone_offset_minutes(zone)?;
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second.min(59) - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (the form the Contacts API's dates
/// take), for years 0 to 9999.
pub fn format_rfc3339(at: UnixMillis) -> String {
    let (days, millis) = (at.div_euclid(86_400_000), at.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (millis / 3_600_000, millis / 60_000 % 60);
    let (second, milli) = (millis / 1_000 % 60, millis % 1_000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// The UTC calendar date of an instant, `YYYY-MM-DD`.
pub fn format_date(at: UnixMillis) -> String {
    let (year, month, day) = civil_from_days(at.div_euclid(86_400_000));
    format!("{year:04}-{month:02}-{day:02}")
}

fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0i64, |acc, b| b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0')))
}

/// Splits an optional `.fraction` off the front, returning its milliseconds and the rest (the zone).
fn fraction_millis(rest: &[u8]) -> Option<(i64, &[u8])> {
    let Some(after_dot) = rest.strip_prefix(b".") else {
        return Some((0, rest));
    };
    let len = after_dot.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 {
        return None;
    }
    let mut millis = 0;
    for position in 0..3 {
        let digit = after_dot.get(position).filter(|_| position < len).map_or(0, |b| b - b'0');
        millis = millis * 10 + i64::from(digit);
    }
    Some((millis, &after_dot[len..]))
}

fn zone_offset_minutes(zone: &[u8]) -> Option<i64> {
    match zone {
        b"Z" | b"z" => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let total = hours * 60 + minutes;
            Some(if *sign == b'-' { -total } else { total })
        }
        _ => None,
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_what_it_parses() {
        let table = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_795_773_600_123, "2026-11-27T10:00:00.123Z"),
            (1_709_164_800_000, "2024-02-29T00:00:00.000Z"),
            (-1_000, "1969-12-31T23:59:59.000Z"),
        ];
        for (at, text) in table {
            assert_eq!(format_rfc3339(at), text);
            assert_eq!(parse_rfc3339(text), Some(at));
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        #[test]
        fn a_formatted_instant_parses_back(at in -62_135_596_800_000i64..253_402_300_799_999) {
            proptest::prop_assert_eq!(parse_rfc3339(&format_rfc3339(at)), Some(at));
        }
    }

    #[test]
    fn parses_the_forms_sightmill_sends() {
        let table = [
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2026-11-27T10:00:00Z", Some(1_795_773_600_000)),
            ("2026-11-27T10:00:00.123Z", Some(1_795_773_600_123)),
            ("2026-11-27T10:00:00.1239999Z", Some(1_795_773_600_123)),
            ("2026-11-27T10:00:00.5Z", Some(1_795_773_600_500)),
            ("2026-11-27T12:00:00+02:00", Some(1_795_773_600_000)),
            ("2026-11-27T05:30:00-04:30", Some(1_795_773_600_000)),
            ("2024-02-29T00:00:00z", Some(1_709_164_800_000)),
            ("1969-12-31T23:59:59Z", Some(-1_000)),
        ];
        for (text, expected) in table {
            assert_eq!(parse_rfc3339(text), expected, "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        for text in [
            "",
            "2026-11-27",
            "2026-11-27 10:00:00Z",
            "2026-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T10:00:00",
            "2026-11-27T10:00:00.Z",
            "2026-11-27T10:00:00+0200",
            "2026-11-27T10:00:00+25:00",
            "２０２６-11-27T10:00:00Z",
            "2026-11-27T10:00:00Zjunk",
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text}");
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        #[test]
        fn never_panics(text in ".{0,40}") {
            let _ = parse_rfc3339(&text);
        }
    }
}
