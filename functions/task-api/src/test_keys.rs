//! Signing keys generated at test time, and JWTs assembled by hand with them, so that the
//! verifier is tested against tokens it did not produce itself. Nothing here is committed key
//! material: P-256 keys come from `ring`, RSA keys from `openssl genpkey` (ring cannot generate
//! RSA keys), once per test process.
//!
//! Only in test builds and with the `testing` feature (task-api's own integration tests).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self as ring_sig, KeyPair as _};
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.claims.signature`, with `sign` over `header.claims`.
pub fn jwt(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let message = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let signature = sign(message.as_bytes());
    format!("{message}.{}", b64(&signature))
}

/// An HS256 signature of `message` with `secret`.
pub fn hmac(secret: &[u8], message: &[u8]) -> Vec<u8> {
    ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret), message).as_ref().to_vec()
}

/// A 2048-bit RSA key pair.
pub struct RsaKey {
    pair: ring_sig::RsaKeyPair,
    /// Modulus and exponent, big-endian without leading zeros (as a JWK carries them).
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    /// The public key as PKCS#1 `RSAPublicKey` DER: the bytes an attacker would use as an
    /// HMAC secret in an algorithm-confusion attack.
    pub public_der: Vec<u8>,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKey").field("bits", &(self.n.len() * 8)).finish_non_exhaustive()
    }
}

impl RsaKey {
    /// A fresh key from `openssl genpkey` (DER on stdout: PKCS#1 `RSAPrivateKey` from OpenSSL
    /// 3, PKCS#8 from some other builds; both are read).
    pub fn generate() -> Self {
        let output = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-outform", "DER"])
            .output()
            .expect("the RSA tests need the openssl command to generate a key at test time");
        assert!(output.status.success(), "openssl genpkey failed: {}", String::from_utf8_lossy(&output.stderr));
        let pair = ring_sig::RsaKeyPair::from_der(&output.stdout)
            .or_else(|_| ring_sig::RsaKeyPair::from_pkcs8(&output.stdout))
            .expect("openssl's RSA key in DER");
        let components = ring_sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
        let public_der = pair.public_key().as_ref().to_vec();
        Self { n: components.n, e: components.e, public_der, pair }
    }

    /// One key per test process (generating RSA keys is slow).
    pub fn shared() -> &'static Self {
        static KEY: OnceLock<RsaKey> = OnceLock::new();
        KEY.get_or_init(Self::generate)
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.pair.public().modulus_len()];
        self.pair.sign(&ring_sig::RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut signature).unwrap();
        signature
    }

    /// The public key as a JWKS entry.
    pub fn jwk(&self, kid: &str) -> Value {
        json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(&self.n), "e": b64(&self.e)})
    }

    /// An RS256 token with `kid` over `claims`.
    pub fn token(&self, kid: &str, claims: &Value) -> String {
        jwt(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}), claims, |m| self.sign(m))
    }
}

/// A P-256 key pair.
pub struct EcKey {
    pair: ring_sig::EcdsaKeyPair,
    /// The public key as an uncompressed point, `04 || x || y`.
    pub point: Vec<u8>,
}

impl std::fmt::Debug for EcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcKey").finish_non_exhaustive()
    }
}

impl EcKey {
    pub fn generate() -> Self {
        let rng = SystemRandom::new();
        let alg = &ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = ring_sig::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = ring_sig::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        Self { pair, point }
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(&SystemRandom::new(), message).unwrap().as_ref().to_vec()
    }

    pub fn jwk(&self, kid: &str) -> Value {
        json!({
            "kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
            "x": b64(&self.point[1..33]), "y": b64(&self.point[33..]),
        })
    }

    /// An ES256 token with `kid` over `claims`.
    pub fn token(&self, kid: &str, claims: &Value) -> String {
        jwt(&json!({"alg": "ES256", "typ": "JWT", "kid": kid}), claims, |m| self.sign(m))
    }
}
