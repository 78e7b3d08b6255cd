//! Kubernetes resource quantities ("3900m", "15Gi", "16Ki", "1e3", "0.5"), read exactly.

/// A parsed quantity: `digits × 10^exp10 × multiplier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quantity {
    digits: u128,
    exp10: i32,
    multiplier: u128,
}

impl Quantity {
    /// Parses the canonical and the other accepted forms: a non-negative decimal number, then a
    /// binary suffix (Ki … Ei), a decimal suffix (n, u, m, k, M, G, T, P, E) or an exponent (e3,
    /// E-2). None for anything else, negative quantities included.
    pub(crate) fn parse(text: &str) -> Option<Quantity> {
        let text = text.trim();
        let text = text.strip_prefix('+').unwrap_or(text);
        let number_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, suffix) = text.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return None;
        }
        let mut digits: u128 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            digits = digits.checked_mul(10)?.checked_add(u128::from(digit - b'0'))?;
        }
        let mut exp10 = -i32::try_from(fraction.len()).ok()?;
        let mut multiplier = 1;
        match suffix {
            "" => {}
            "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
                let power = "KMGTPE".find(&suffix[..1])? as u32 + 1;
                multiplier = 1u128 << (10 * power);
            }
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            "m" => exp10 -= 3,
            "k" => exp10 += 3,
            "M" => exp10 += 6,
            "G" => exp10 += 9,
            "T" => exp10 += 12,
            "P" => exp10 += 15,
            "E" => exp10 += 18,
            exponent if exponent.starts_with(['e', 'E']) => {
                let power: i32 = exponent[1..].parse().ok()?;
                exp10 = exp10.checked_add(power)?;
            }
            _ => return None,
        }
        Some(Quantity { digits, exp10, multiplier })
    }

    /// The quantity in whole units, rounded up (as Kubernetes does), saturating.
    pub(crate) fn units(self) -> u64 {
        self.scaled(0)
    }

    /// The quantity in thousandths, rounded up (Kubernetes' `MilliValue`), saturating.
    pub(crate) fn millis(self) -> u64 {
        self.scaled(3)
    }

    /// `self × 10^scale`, rounded up.
    fn scaled(self, scale: i32) -> u64 {
        let Some(value) = self.digits.checked_mul(self.multiplier) else {
            return u64::MAX;
        };
        let exponent = self.exp10.saturating_add(scale);
        let scaled = if exponent >= 0 {
            10u128.checked_pow(exponent.unsigned_abs()).and_then(|power| value.checked_mul(power))
        } else {
            match 10u128.checked_pow(exponent.unsigned_abs()) {
                Some(power) => Some(value.div_ceil(power)),
                // Smaller than 10^-38 of a unit, but not nothing.
                None => Some(u128::from(value > 0)),
            }
        };
        scaled.map_or(u64::MAX, |scaled| u64::try_from(scaled).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(text: &str) -> Option<u64> {
        Quantity::parse(text).map(Quantity::millis)
    }

    fn units(text: &str) -> Option<u64> {
        Quantity::parse(text).map(Quantity::units)
    }

    #[test]
    fn cpu_quantities_in_millis() {
        assert_eq!(millis("3900m"), Some(3900));
        assert_eq!(millis("4"), Some(4000));
        assert_eq!(millis("0.5"), Some(500));
        assert_eq!(millis(".1"), Some(100));
        assert_eq!(millis("1.5k"), Some(1_500_000));
        assert_eq!(millis("1e3"), Some(1_000_000));
        assert_eq!(millis("250000u"), Some(250));
        // Kubernetes rounds up what is finer than a milli.
        assert_eq!(millis("100001u"), Some(101));
        assert_eq!(millis("1n"), Some(1));
    }

    #[test]
    fn memory_quantities_in_bytes() {
        assert_eq!(units("15Gi"), Some(15 << 30));
        assert_eq!(units("16Ki"), Some(16 << 10));
        assert_eq!(units("65805060Ki"), Some(65_805_060 << 10));
        assert_eq!(units("1.5Gi"), Some(3 << 29));
        assert_eq!(units("128974848"), Some(128_974_848));
        assert_eq!(units("129e6"), Some(129_000_000));
        assert_eq!(units("129M"), Some(129_000_000));
        assert_eq!(units("1E"), Some(1_000_000_000_000_000_000));
        assert_eq!(units("2Ei"), Some(2 << 60));
        assert_eq!(units("1E-2"), Some(1), "rounded up");
        assert_eq!(units("100Ei"), Some(u64::MAX), "saturates");
    }

    #[test]
    fn malformed_quantities_are_refused() {
        for text in ["", "m", "-1", "1.2.3", "12 Gi", "1Gb", "1e", "1ki", "Gi", "1.5x"] {
            assert_eq!(Quantity::parse(text), None, "{text:?}");
        }
    }
}
