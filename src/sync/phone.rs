//! Phone numbers in E.164: the mapping's `e164` transform and `PHONE` custom fields convert
//! with the one rule here.

/// A phone number in E.164 (`+` and 8-15 digits). Numbers without `+` or `00` get the default
/// country code (a national trunk `0` is dropped first).
pub fn to_e164(phone: &str, default_country_code: &str) -> Option<String> {
    let trimmed = phone.trim();
    let allowed = |c: char| c.is_ascii_digit() || " -.()/".contains(c);
    let (international, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => match trimmed.strip_prefix("00") {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        },
    };
    if rest.is_empty() || !rest.chars().all(allowed) {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    let full = if international {
        digits
    } else if default_country_code.is_empty() {
        return None;
    } else {
        format!("{default_country_code}{}", digits.strip_prefix('0').unwrap_or(&digits))
    };
    (8..=15).contains(&full.len()).then(|| format!("+{full}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_convert_to_e164() {
        let table = [
            ("+44 20 7946 0958", "1", Some("+442079460958")),
            ("0044 20 7946 0958", "1", Some("+442079460958")),
            ("(555) 010-0199", "1", Some("+15550100199")),
            ("020 7946 0958", "44", Some("+442079460958")),
            ("555-0100", "", None),
            ("12", "1", None),
            ("+1 555 CALL NOW", "1", None),
            ("+1234567890123456", "1", None),
        ];
        for (input, code, expected) in table {
            assert_eq!(to_e164(input, code).as_deref(), expected, "{input}");
        }
    }
}
