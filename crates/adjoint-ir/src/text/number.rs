//! Literal element values: printing them exactly and reading them back bit for bit.

use crate::DType;

/// The text of one element of a literal of dtype `dtype` (stored as `f64`, as
/// [`crate::Literal`] holds it): the shortest decimal that reads back to the same `f32` or `f64`,
/// without a trailing `.0`; `inf`, `-inf`, `nan`; `-0` for negative zero; integers for `i32`;
/// `true` or `false` for `bool`.
pub(crate) fn format_element(v: f64, dtype: DType) -> String {
    match dtype {
        DType::F32 | DType::Bf16 | DType::F16 => format_float(format!("{:?}", v as f32), v),
        DType::F64 => format_float(format!("{v:?}"), v),
        DType::I32 => (v as i32).to_string(),
        DType::Bool => (v != 0.0).to_string(),
    }
}

/// Rust's `Debug` spelling (shortest round-trip digits) adjusted to the format's: no `.0`
/// suffix, lower-case non-finite names.
fn format_float(debug: String, v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    match debug.strip_suffix(".0") {
        Some(integral) => integral.to_string(),
        None => debug,
    }
}

/// Reads one element of a literal of dtype `dtype`. Floats are read at their own precision, so
/// an `f32` element is the `f32` nearest to the decimal (not a double rounding through `f64`);
/// a `bf16` or `f16` element is that `f32` rounded to the 16-bit type, as every narrowing to a
/// 16-bit float goes through `f32`. A 16-bit element prints as its exact `f32` value, which
/// reads back to the same bits.
pub(crate) fn parse_element(text: &str, dtype: DType) -> Result<f64, String> {
    match dtype {
        DType::F32 | DType::F64 | DType::Bf16 | DType::F16 => {
            if !is_float_syntax(text) {
                return Err(format!(
                    "expected a {dtype} value (like `1`, `-2.5`, `1e-3`, `inf`, `nan`), found `{text}`"
                ));
            }
            if dtype != DType::F64 {
                text.parse::<f32>()
                    .map(|x| f64::from(crate::half_float::round_f32(dtype, x)))
                    .map_err(|e| e.to_string())
            } else {
                text.parse::<f64>().map_err(|e| e.to_string())
            }
        }
        DType::I32 => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "expected an i32 value (an integer), found `{text}`"
                ));
            }
            text.parse::<i32>()
                .map(f64::from)
                .map_err(|_| format!("`{text}` does not fit in i32"))
        }
        DType::Bool => match text {
            "true" => Ok(1.0),
            "false" => Ok(0.0),
            _ => Err(format!(
                "expected a bool value (`true` or `false`), found `{text}`"
            )),
        },
    }
}

/// `-`? then `inf`, `nan`, or digits with an optional fraction and exponent.
fn is_float_syntax(text: &str) -> bool {
    let body = text.strip_prefix('-').unwrap_or(text);
    if body == "inf" || body == "nan" {
        return true;
    }
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = match exponent {
        None => true,
        Some(e) => digits(e.strip_prefix(['-', '+']).unwrap_or(e)),
    };
    digits(int) && frac.is_none_or(digits) && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_short_and_read_back_exactly() {
        let f32s = [
            0.1f32,
            -0.0,
            1.0,
            2.5,
            1e-7,
            f32::MIN_POSITIVE / 8.0,
            f32::MAX,
            16777216.0,
        ];
        for v in f32s {
            let text = format_element(v as f64, DType::F32);
            let back = parse_element(&text, DType::F32).unwrap();
            assert_eq!((back as f32).to_bits(), v.to_bits(), "{text}");
        }
        let f64s = [0.1f64, 1.0 / 3.0, -0.0, 5e-324, f64::MAX, 1e300];
        for v in f64s {
            let text = format_element(v, DType::F64);
            assert_eq!(
                parse_element(&text, DType::F64).unwrap().to_bits(),
                v.to_bits()
            );
        }
        assert_eq!(format_element(0.1f32 as f64, DType::F32), "0.1");
        assert_eq!(format_element(-0.0, DType::F32), "-0");
        assert_eq!(format_element(2.0, DType::F64), "2");
        assert_eq!(format_element(f64::NEG_INFINITY, DType::F32), "-inf");
        assert_eq!(format_element(f64::NAN, DType::F64), "nan");
        assert_eq!(format_element(-7.0, DType::I32), "-7");
        assert_eq!(format_element(1.0, DType::Bool), "true");
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse_element("1.5", DType::I32).is_err());
        assert!(parse_element("99999999999", DType::I32).is_err());
        assert!(parse_element("1e", DType::F32).is_err());
        assert!(parse_element("infinity", DType::F32).is_err());
        assert!(parse_element("yes", DType::Bool).is_err());
        assert_eq!(parse_element("1e400", DType::F64).unwrap(), f64::INFINITY);
    }
}
