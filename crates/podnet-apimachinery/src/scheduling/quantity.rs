//! `resource.Quantity` strings (`100m`, `1.5`, `128Mi`, `1e3`, `2G`) as exact thousandths, the scale
//! the scheduler compares at (cpu in millicores, memory in milli-bytes).

/// The quantity times 1000, rounded up as Kubernetes' `MilliValue` does; `None` if it is not a quantity.
pub fn parse_milli(s: &str) -> Option<i128> {
    let s = s.trim();
    let (negative, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(num_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    // the number as digits * 10^exp10 (base 10), then the suffix's factor
    let digits: i128 = format!("{int_part}{frac_part}").parse().ok()?;
    let mut exp10 = -(frac_part.len() as i32);
    let mut binary_shift = 0u32;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => binary_shift = 10,
        "Mi" => binary_shift = 20,
        "Gi" => binary_shift = 30,
        "Ti" => binary_shift = 40,
        "Pi" => binary_shift = 50,
        "Ei" => binary_shift = 60,
        s if s.starts_with(['e', 'E']) => exp10 += s[1..].parse::<i32>().ok()?,
        _ => return None,
    }
    // times 1000 for milli-units
    exp10 += 3;
    let mut v = digits.checked_mul(1i128 << binary_shift)?;
    if exp10 >= 0 {
        v = v.checked_mul(10i128.checked_pow(exp10 as u32)?)?;
    } else {
        let d = 10i128.checked_pow((-exp10) as u32)?;
        v = (v + d - 1) / d;
    }
    Some(if negative { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::parse_milli;

    #[test]
    fn quantities() {
        assert_eq!(parse_milli("100m"), Some(100));
        assert_eq!(parse_milli("1"), Some(1000));
        assert_eq!(parse_milli("0.5"), Some(500));
        assert_eq!(parse_milli("2"), Some(2000));
        assert_eq!(parse_milli("128Mi"), Some(128 * 1024 * 1024 * 1000));
        assert_eq!(parse_milli("1G"), Some(1_000_000_000_000));
        assert_eq!(parse_milli("1e3"), Some(1_000_000));
        assert_eq!(parse_milli("1k"), Some(1_000_000));
        // rounded up like MilliValue
        assert_eq!(parse_milli("1n"), Some(1));
        assert_eq!(parse_milli("110"), Some(110_000));
        assert_eq!(parse_milli("-1"), Some(-1000));
        for bad in ["", "m", "1x", "1.2.3", "Mi", "1 Mi"] {
            assert_eq!(parse_milli(bad), None, "{bad:?}");
        }
    }
}
