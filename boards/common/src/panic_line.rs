//! The one line a board prints when its firmware panics, without
//! `core::fmt`: a handler that formats keeps every panic site's formatting
//! code in the image, about a third of the flash.

/// Writes `\0\r\npanicked at FILE:LINE: MESSAGE\r\n\0` through `out`. The
/// `0x00` bytes are the protocol's frame delimiter: the first ends any frame
/// cut short, the last hands the text to the gateway at once. `location`
/// and `message` are left out when absent (a message with arguments has no
/// plain text: `PanicMessage::as_str` gives `None`).
pub fn write_panic_line(
    location: Option<(&str, u32)>,
    message: Option<&str>,
    mut out: impl FnMut(&[u8]),
) {
    out(b"\0\r\npanicked");
    if let Some((file, line)) = location {
        out(b" at ");
        out(file.as_bytes());
        out(b":");
        let mut digits = [0u8; 10];
        out(decimal(line, &mut digits));
    }
    if let Some(message) = message {
        out(b": ");
        out(message.as_bytes());
    }
    out(b"\r\n\0");
}

/// `n` in decimal, at the end of `buf`.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn line(location: Option<(&str, u32)>, message: Option<&str>) -> Vec<u8> {
        let mut v = Vec::new();
        write_panic_line(location, message, |b| v.extend_from_slice(b));
        v
    }

    #[test]
    fn names_file_line_and_plain_message() {
        assert_eq!(
            line(Some(("src/main.rs", 4_294_967_295)), Some("boom")),
            b"\0\r\npanicked at src/main.rs:4294967295: boom\r\n\0"
        );
        assert_eq!(
            line(Some(("a.rs", 0)), None),
            b"\0\r\npanicked at a.rs:0\r\n\0"
        );
        assert_eq!(line(None, None), b"\0\r\npanicked\r\n\0");
    }
}
