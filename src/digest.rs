//! Short, stable hex digests of text (prefixes of its SHA-256): ids derived
//! from other ids (an import's sessions and messages), and users named in
//! log lines without their id.

use sha2::{Digest as _, Sha256};

/// The first `hex_digits` hex digits (at most 64, rounded down to an even
/// number) of the SHA-256 of `text`.
pub fn sha256_hex(text: &str, hex_digits: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(hex_digits);
    for byte in Sha256::digest(text.as_bytes()).iter().take(hex_digits / 2) {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_of_the_sha256_in_hex() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223…
        assert_eq!(sha256_hex("abc", 12), "ba7816bf8f01");
        assert_eq!(sha256_hex("abc", 32), "ba7816bf8f01cfea414140de5dae2223");
    }
}
