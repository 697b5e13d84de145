//! Number formatting without `core::fmt`, which costs kilobytes of flash on
//! a microcontroller.

/// Writes `n` in decimal into `buf` and returns the digits.
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    // From the end; 20 digits hold any u64, and `get` stops early rather
    // than panic if they did not. `div_rem_small` divides with 32-bit
    // divisions (a `u64` one is a library routine on a 32-bit MCU).
    while let Some(slot) = i.checked_sub(1).and_then(|j| buf.get_mut(j)) {
        let (q, digit) = corral_protocol::time::div_rem_small(n, 10);
        *slot = b'0' + digit as u8;
        i -= 1;
        n = q;
        if n == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or_default()
}

/// Writes `data` as lowercase hex into `buf` (twice its length) and returns
/// the digits.
pub(crate) fn hex<'b>(data: &[u8], buf: &'b mut [u8]) -> &'b [u8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let n = data.len().min(buf.len() / 2);
    for (i, b) in data[..n].iter().enumerate() {
        buf[2 * i] = DIGITS[usize::from(b >> 4)];
        buf[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
    }
    &buf[..2 * n]
}

/// Parses a decimal number without sign, `None` if it is not one or
/// overflows.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        let d = b.checked_sub(b'0').filter(|d| *d < 10)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_covers_zero_and_the_largest_number() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(1200, &mut buf), b"1200");
        assert_eq!(decimal(u64::MAX, &mut buf), b"18446744073709551615");
    }

    #[test]
    fn hex_is_lowercase_and_bounded_by_the_buffer() {
        let mut buf = [0u8; 4];
        assert_eq!(hex(&[0x0a, 0xbc, 0xff], &mut buf), b"0abc");
    }

    #[test]
    fn parse_refuses_signs_spaces_and_overflow() {
        assert_eq!(parse_u64("5000"), Some(5000));
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64(" 1"), None);
        assert_eq!(parse_u64("18446744073709551616"), None);
    }
}
