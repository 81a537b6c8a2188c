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

#[cfg(test)]
mod tests {
    use super::*;

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
