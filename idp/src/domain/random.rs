//! Random values from the operating system's CSPRNG (through aws-lc-rs, which the signing keys use too).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Fills `N` bytes from the system CSPRNG.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // aws-lc-rs only fails here when the operating system has no entropy source, which leaves nothing
    // safe to do: no token could be issued.
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::fill(&mut buf).expect("the system random number generator failed");
    buf
}

/// A URL-safe random token carrying `N` bytes (`8 * N` bits) of entropy.
pub fn token<const N: usize>() -> String {
    URL_SAFE_NO_PAD.encode(bytes::<N>())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_url_safe_and_distinct() {
        let a = super::token::<32>();
        let b = super::token::<32>();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
