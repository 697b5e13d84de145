//! Fixed-width hexadecimal formatting without `core::fmt`.
//!
//! Boot banners print ids in hex. `core::fmt` costs a few KiB of flash, so
//! code on the normal boot path formats numbers with this instead; only the
//! panic path pulls in `core::fmt`.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `value` as eight lowercase hex digits, most significant first.
///
/// ```
/// assert_eq!(&corral_board_common::hex::u32_hex(0x00c0_ffee), b"00c0ffee");
/// ```
pub fn u32_hex(value: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (i, digit) in out.iter_mut().enumerate() {
        let shift = 28 - 4 * i as u32;
        *digit = DIGITS[((value >> shift) & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::u32_hex;

    #[test]
    fn formats_all_widths_with_leading_zeros() {
        for (value, text) in [
            (0u32, b"00000000"),
            (1, b"00000001"),
            (0xdead_beef, b"deadbeef"),
            (u32::MAX, b"ffffffff"),
            (0x1234_5678, b"12345678"),
        ] {
            assert_eq!(&u32_hex(value), text, "{value:#x}");
        }
    }
}
