//! Wrapping 32-bit stream sequence numbers (serial-number arithmetic, RFC 1982).
//!
//! Every byte of a link's reliable stream has a sequence number. A direction's
//! first byte is numbered with the sending side's session id, so segments of an
//! old session rarely fall inside the new session's window.

/// `a` comes strictly before `b`.
#[inline]
pub(crate) fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a` comes before or equals `b`.
#[inline]
pub(crate) fn before_eq(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// Number of bytes from `from` up to `to` (`to` must not be before `from`).
#[inline]
pub(crate) fn dist(from: u32, to: u32) -> u32 {
    to.wrapping_sub(from)
}

/// The later of two sequence numbers.
#[inline]
pub(crate) fn max(a: u32, b: u32) -> u32 {
    if before(a, b) {
        b
    } else {
        a
    }
}

/// The earlier of two sequence numbers.
#[inline]
pub(crate) fn min(a: u32, b: u32) -> u32 {
    if before(a, b) {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_survives_wraparound() {
        assert!(before(u32::MAX - 1, 3));
        assert!(!before(3, u32::MAX - 1));
        assert!(before_eq(5, 5));
        assert_eq!(dist(u32::MAX - 1, 3), 5);
        assert_eq!(max(u32::MAX, 2), 2);
        assert_eq!(min(u32::MAX, 2), u32::MAX);
    }
}
