//! The one JWT algorithm task-api speaks, HS256, as jsonwebtoken's [`CryptoProvider`].
//!
//! Why not jsonwebtoken's `rust_crypto` feature: it brings RSA, ECDSA (P-256, P-384) and EdDSA
//! with their big-number arithmetic for every algorithm JWT knows, and an HS256-only service
//! would carry all of it in its binary (`make bench` holds each binary to 8 MB). jsonwebtoken
//! is built to take a provider from outside; this one is its `rust_crypto` HMAC code
//! (`src/crypto/rust_crypto/hmac.rs`) cut to SHA-256, on `ring`, which the binary already links
//! for TLS: `ring::hmac::verify` compares signatures in constant time. Any other algorithm, and
//! JWK thumbprints, fail with an error instead of being computed.

use std::sync::Once;

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::hmac;

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(unsupported()),
        rsa_pub_components_from_public_key: |_| Err(unsupported()),
        ec_pub_components_from_private_key: |_, _| Err(unsupported()),
        ed_pub_components_from_private_key: |_, _| Err(unsupported()),
        compute_digest: |_, _| Err(unsupported()),
    },
};

/// Makes HS256 jsonwebtoken's process-wide provider. Idempotent; call before signing or
/// verifying (the [`crate::auth`] functions do).
pub fn install() {
    static INSTALL: Once = Once::new();
    // `Err` means a provider is already installed, which in this process can only be this one.
    INSTALL.call_once(|| {
        let _ = PROVIDER.install_default();
    });
}

fn unsupported() -> Error {
    ErrorKind::InvalidAlgorithm.into()
}

fn key(algorithm: Algorithm, secret: &[u8]) -> Result<Hs256, Error> {
    if algorithm != Algorithm::HS256 {
        return Err(unsupported());
    }
    Ok(Hs256(hmac::Key::new(hmac::HMAC_SHA256, secret)))
}

fn signer(algorithm: &Algorithm, secret: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    Ok(Box::new(key(*algorithm, secret.as_bytes())?))
}

fn verifier(algorithm: &Algorithm, secret: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    Ok(Box::new(key(*algorithm, secret.try_get_as_bytes()?)?))
}

/// The HMAC-SHA256 key made of the secret.
struct Hs256(hmac::Key);

impl signature::Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(hmac::sign(&self.0, message).as_ref().to_vec())
    }
}

impl signature::Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        hmac::verify(&self.0, message, signature).map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2: HMAC-SHA256 with key "Jefe".
    #[test]
    fn signs_like_rfc_4231() {
        let key = EncodingKey::from_secret(b"Jefe");
        let signer = signer(&Algorithm::HS256, &key).unwrap();
        let tag = signature::Signer::try_sign(signer.as_ref(), b"what do ya want for nothing?").unwrap();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let verifier = verifier(&Algorithm::HS256, &DecodingKey::from_secret(b"Jefe")).unwrap();
        assert!(signature::Verifier::verify(verifier.as_ref(), b"what do ya want for nothing?", &tag).is_ok());
        let mut forged = tag.clone();
        forged[0] ^= 1;
        assert!(signature::Verifier::verify(verifier.as_ref(), b"what do ya want for nothing?", &forged).is_err());
        assert!(signature::Verifier::verify(verifier.as_ref(), b"what do ya want for nothing!", &tag).is_err());
    }

    #[test]
    fn every_other_algorithm_is_refused() {
        let key = EncodingKey::from_secret(b"secret");
        for algorithm in [Algorithm::HS384, Algorithm::HS512, Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let error = signer(&algorithm, &key).err().map(|e| e.into_kind());
            assert_eq!(error, Some(ErrorKind::InvalidAlgorithm), "{algorithm:?}");
        }
    }
}
