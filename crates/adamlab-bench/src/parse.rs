//! The argument syntax the bench commands share: parameter counts such as `1e6` and
//! comma-separated lists. Every error is one line naming what was given.

/// Parses a positive whole count written as an integer (`100000`, `1_000_000`) or in scientific
/// notation (`1e6`, `2.5e6`).
pub fn count(text: &str) -> Result<usize, String> {
    let cleaned = text.trim().replace('_', "");
    let value: f64 = cleaned
        .parse()
        .map_err(|_| format!("`{text}` is not a number (write counts as 100000 or 1e5)"))?;
    if !value.is_finite() || value < 1.0 || value.fract() != 0.0 {
        return Err(format!("`{text}` is not a positive whole number"));
    }
    if value > usize::MAX as f64 / 2.0 {
        return Err(format!("`{text}` is too large"));
    }
    Ok(value as usize)
}

/// Splits a comma-separated list, trimming each item and refusing empty ones.
pub fn list(text: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = split_top_level(text).into_iter().map(|s| s.trim().to_string()).collect();
    if items.iter().any(String::is_empty) {
        return Err(format!("`{text}` has an empty item"));
    }
    Ok(items)
}

/// Parses a comma-separated list of counts.
pub fn counts(text: &str) -> Result<Vec<usize>, String> {
    list(text)?.iter().map(|item| count(item)).collect()
}

/// Splits at commas that are not inside parentheses or brackets, so that optimizer specs such as
/// `adamw(betas=(0.8, 0.9)),adam` stay whole.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_integers_and_scientific_notation() {
        assert_eq!(counts("1e5, 1e6,10000000,1e8").unwrap(), [100_000, 1_000_000, 10_000_000, 100_000_000]);
        assert_eq!(count("2.5e6").unwrap(), 2_500_000);
        assert_eq!(count("1_000").unwrap(), 1000);
    }

    #[test]
    fn unparsable_zero_negative_and_fractional_counts_are_refused_in_one_line() {
        for bad in ["abc", "0", "-1e6", "1.5", "1e400", ""] {
            let err = count(bad).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
            assert_eq!(err.lines().count(), 1);
        }
        assert!(counts("1e6,,1e7").is_err());
    }

    #[test]
    fn lists_keep_specs_with_commas_inside_parentheses_whole() {
        assert_eq!(
            list("adamw(betas=(0.8, 0.9), eps=1e-6), adam ,burn-adam").unwrap(),
            ["adamw(betas=(0.8, 0.9), eps=1e-6)", "adam", "burn-adam"]
        );
    }
}
