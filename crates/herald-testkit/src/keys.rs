//! A fixed RSA key pair for tests of signed assertions (GitHub App JWTs, Google service-account
//! tokens). Generated once with `openssl genrsa -traditional 2048`; it signs nothing but tests.

use base64::Engine as _;

/// The private key as PKCS#1 PEM (`RSA PRIVATE KEY`), the form GitHub hands out.
pub const RSA_PKCS1_PEM: &str = include_str!("../keys/rsa-2048.pkcs1.pem");

/// The same key as PKCS#8 PEM (`PRIVATE KEY`), the form of a Google service-account file.
pub const RSA_PKCS8_PEM: &str = include_str!("../keys/rsa-2048.pkcs8.pem");

/// The public half as DER `RSAPublicKey` (PKCS#1), the form *ring* verifies RS256 with.
pub fn rsa_public_key_der() -> Vec<u8> {
    let pem = include_str!("../keys/rsa-2048.public.pkcs1.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("the test public key is valid base64")
}
