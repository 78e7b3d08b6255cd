//! The Workload API's resource quantities: memory strings (`"512MiB"`, `"16GiB"`, `"2GB"`, plain
//! bytes) and CPU amounts in cores (fractional allowed), turned into whole bytes and millicores.
//!
//! Fractions that do not come out whole are rounded up, so a request never reserves less than asked.

use thiserror::Error;

/// Why a quantity could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnitError {
    /// Nothing but whitespace.
    #[error("empty quantity")]
    Empty,
    /// The number part is missing or malformed (signs and exponents are not accepted).
    #[error("{0:?} is not a non-negative decimal number")]
    NotANumber(String),
    /// The suffix is not one of the accepted memory units.
    #[error("unknown unit {unit:?} in {input:?} (accepted: KB, MB, GB, TB, Ki, KiB, Mi, MiB, Gi, GiB, Ti, TiB or none for bytes)")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The suffix that was not recognised.
        unit: String,
    },
    /// The amount does not fit in 64 bits.
    #[error("{0:?} is too large")]
    TooLarge(String),
    /// A GPU count that is negative, fractional or not finite.
    #[error("GPU count must be a whole number of at least 0, got {0}")]
    GpuCount(String),
}

/// Reads a memory quantity as bytes: a non-negative decimal number (`"1.5"`, `".5"`, `"512"`),
/// optional whitespace, then an optional unit: none for bytes, 1000-based `KB`, `MB`, `GB`, `TB`, or
/// 1024-based `Ki`/`KiB`, `Mi`/`MiB`, `Gi`/`GiB`, `Ti`/`TiB` (case-sensitive). Anything else is an
/// error. A fractional byte count is rounded up.
pub fn parse_memory(input: &str) -> Result<u64, UnitError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(UnitError::Empty);
    }
    let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit = unit.trim_start();
    let decimal = Decimal::parse(number).ok_or_else(|| UnitError::NotANumber(input.to_owned()))?;
    let multiplier = memory_multiplier(unit).ok_or_else(|| UnitError::UnknownUnit { input: input.to_owned(), unit: unit.to_owned() })?;
    decimal.times_rounded_up(multiplier).ok_or_else(|| UnitError::TooLarge(input.to_owned()))
}

/// Reads a CPU amount given in cores (`"2"`, `"0.5"`, `".25"`) as millicores, rounding up below one
/// millicore.
pub fn parse_cpu(input: &str) -> Result<u64, UnitError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(UnitError::Empty);
    }
    let decimal = Decimal::parse(trimmed).ok_or_else(|| UnitError::NotANumber(input.to_owned()))?;
    decimal.times_rounded_up(1000).ok_or_else(|| UnitError::TooLarge(input.to_owned()))
}

/// Converts a CPU amount in cores, as a JSON number carries it, to millicores (see [`parse_cpu`]).
pub fn cpu_millicores(cores: f64) -> Result<u64, UnitError> {
    if !cores.is_finite() || cores < 0.0 {
        return Err(UnitError::NotANumber(cores.to_string()));
    }
    // `Display` for f64 writes the shortest exact decimal without an exponent, so 0.1 stays 0.1.
    parse_cpu(&cores.to_string())
}

/// Converts a GPU count, as a JSON number carries it, to a whole count.
pub fn gpu_count(gpus: f64) -> Result<u32, UnitError> {
    let whole = gpus.is_finite() && gpus >= 0.0 && gpus.fract() == 0.0 && gpus <= f64::from(u32::MAX);
    if whole {
        // Checked just above: a whole number within u32's range.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(gpus as u32)
    } else {
        Err(UnitError::GpuCount(gpus.to_string()))
    }
}

fn memory_multiplier(unit: &str) -> Option<u64> {
    const KIB: u64 = 1024;
    let multiplier = match unit {
        "" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "Ki" | "KiB" => KIB,
        "Mi" | "MiB" => KIB.pow(2),
        "Gi" | "GiB" => KIB.pow(3),
        "Ti" | "TiB" => KIB.pow(4),
        _ => return None,
    };
    Some(multiplier)
}

/// A non-negative decimal number held exactly: `digits / 10^fraction_digits`.
struct Decimal {
    digits: u128,
    fraction_digits: u32,
}

impl Decimal {
    /// Accepts `\d+`, `\d+\.\d+` and `\.\d+`; nothing else.
    fn parse(text: &str) -> Option<Decimal> {
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
            Some(_) => return None,
            None if !text.is_empty() => (text, ""),
            None => return None,
        };
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || !all_digits(fraction) {
            return None;
        }
        let mut digits: u128 = 0;
        for byte in whole.bytes().chain(fraction.bytes()) {
            digits = digits.checked_mul(10)?.checked_add(u128::from(byte - b'0'))?;
        }
        Some(Decimal { digits, fraction_digits: u32::try_from(fraction.len()).ok()? })
    }

    /// `self × multiplier`, rounded up to a whole number; `None` when it does not fit in a u64.
    fn times_rounded_up(&self, multiplier: u64) -> Option<u64> {
        let numerator = self.digits.checked_mul(u128::from(multiplier))?;
        let denominator = 10u128.checked_pow(self.fraction_digits)?;
        u64::try_from(numerator.div_ceil(denominator)).ok()
    }
}
