//! The JWT algorithms task-api speaks, HS256, RS256 and ES256, as jsonwebtoken's
//! [`CryptoProvider`], on `ring`.
//!
//! Why not jsonwebtoken's `rust_crypto` feature: it brings RSA, ECDSA (P-256, P-384) and EdDSA
//! with their big-number arithmetic in RustCrypto's crates, next to the `ring` the binary already
//! links for TLS, and `make bench` holds each binary to 8 MB. jsonwebtoken is built to take a
//! provider from outside; this one maps the three algorithms onto `ring`:
//!
//! - HS256: `ring::hmac`, whose `verify` compares tags in constant time (development keys and
//!   `JWT_SECRET` / `JWT_SECRET_PREVIOUS`).
//! - RS256: RSASSA-PKCS1-v1_5 with SHA-256, moduli of 2048 to 8192 bits (`ring` refuses
//!   smaller keys), from an OIDC provider's JWKS.
//! - ES256: ECDSA on P-256 with SHA-256, the fixed 64-byte `r || s` signature JWS uses (RFC 7518
//!   §3.4), from the JWKS.
//!
//! Every verifier checks that the key's *family* fits the algorithm before doing anything: an
//! HS256 header over an RSA key (the classic "public key as HMAC secret" confusion) fails here
//! even if a caller forgot to pin the algorithm. The authenticator pins it too, per key.
//!
//! Signing exists only for HS256 and only with the `mint` feature (devhost's `dev-token`, the
//! tests): the task-api binary is built without it, so it cannot mint a token even by accident.
//! JWK thumbprints and key-component extraction are not needed and fail with an error.

use std::sync::Once;

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::{hmac, signature as ring_sig};

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

/// Makes this jsonwebtoken's process-wide provider. Idempotent; call before signing or
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

/// The key id of an HS256 secret: the first 8 bytes of its SHA-256, in hex. Derived, so that
/// rotation needs no extra configuration, and one-way, so that the `kid` in every token header
/// reveals nothing about the secret.
pub fn hs256_kid(secret: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret);
    digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(feature = "mint")]
fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    if *algorithm != Algorithm::HS256 || key.family() != jsonwebtoken::AlgorithmFamily::Hmac {
        return Err(unsupported());
    }
    Ok(Box::new(Hs256(hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()))))
}

/// Without the `mint` feature nothing can be signed: the server only verifies.
#[cfg(not(feature = "mint"))]
fn signer(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    Err(unsupported())
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    use jsonwebtoken::AlgorithmFamily as Family;
    match (algorithm, key.family(), key.kind()) {
        (Algorithm::HS256, Family::Hmac, DecodingKeyKind::SecretOrDer(secret)) => {
            Ok(Box::new(Hs256(hmac::Key::new(hmac::HMAC_SHA256, secret))))
        }
        (Algorithm::RS256, Family::Rsa, DecodingKeyKind::RsaModulusExponent { n, e }) => {
            Ok(Box::new(Rs256::Components(ring_sig::RsaPublicKeyComponents { n: n.clone(), e: e.clone() })))
        }
        (Algorithm::RS256, Family::Rsa, DecodingKeyKind::SecretOrDer(der)) => Ok(Box::new(Rs256::Der(der.clone()))),
        (Algorithm::ES256, Family::Ec, DecodingKeyKind::SecretOrDer(point)) => Ok(Box::new(Es256(point.clone()))),
        _ => Err(unsupported()),
    }
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

/// An RSA public key: (n, e) from a JWK, or a PKCS#1 `RSAPublicKey` DER.
enum Rs256 {
    Components(ring_sig::RsaPublicKeyComponents<Vec<u8>>),
    Der(Vec<u8>),
}

impl signature::Verifier<Vec<u8>> for Rs256 {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let params = &ring_sig::RSA_PKCS1_2048_8192_SHA256;
        match self {
            Self::Components(key) => key.verify(params, message, signature),
            Self::Der(der) => ring_sig::UnparsedPublicKey::new(params, der).verify(message, signature),
        }
        .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Rs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

/// A P-256 public key as an uncompressed point (`04 || x || y`).
struct Es256(Vec<u8>);

impl signature::Verifier<Vec<u8>> for Es256 {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        ring_sig::UnparsedPublicKey::new(&ring_sig::ECDSA_P256_SHA256_FIXED, &self.0)
            .verify(message, signature)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Es256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::test_keys::{EcKey, RsaKey};

    fn verifies(algorithm: Algorithm, key: &DecodingKey, message: &[u8], sig: &[u8]) -> bool {
        let verifier = verifier(&algorithm, key).unwrap();
        signature::Verifier::verify(verifier.as_ref(), message, &sig.to_vec()).is_ok()
    }

    /// RFC 4231 test case 2: HMAC-SHA256 with key "Jefe".
    #[test]
    fn signs_like_rfc_4231() {
        let key = EncodingKey::from_secret(b"Jefe");
        let signer = signer(&Algorithm::HS256, &key).unwrap();
        let tag = signature::Signer::try_sign(signer.as_ref(), b"what do ya want for nothing?").unwrap();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let key = DecodingKey::from_secret(b"Jefe");
        assert!(verifies(Algorithm::HS256, &key, b"what do ya want for nothing?", &tag));
        let mut forged = tag.clone();
        forged[0] ^= 1;
        assert!(!verifies(Algorithm::HS256, &key, b"what do ya want for nothing?", &forged));
        assert!(!verifies(Algorithm::HS256, &key, b"what do ya want for nothing!", &tag));
    }

    #[test]
    fn signing_is_hs256_only() {
        let key = EncodingKey::from_secret(b"secret");
        for algorithm in [Algorithm::HS384, Algorithm::HS512, Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let error = signer(&algorithm, &key).err().map(|e| e.into_kind());
            assert_eq!(error, Some(ErrorKind::InvalidAlgorithm), "{algorithm:?}");
        }
    }

    #[test]
    fn rs256_verifies_with_components_and_der() {
        let rsa = RsaKey::shared();
        let sig = rsa.sign(b"message");
        let components = DecodingKey::from_rsa_raw_components(&rsa.n, &rsa.e);
        assert!(verifies(Algorithm::RS256, &components, b"message", &sig));
        assert!(!verifies(Algorithm::RS256, &components, b"massage", &sig));
        let der = DecodingKey::from_rsa_der(&rsa.public_der);
        assert!(verifies(Algorithm::RS256, &der, b"message", &sig));
    }

    #[test]
    fn es256_verifies_fixed_signatures() {
        let ec = EcKey::generate();
        let sig = ec.sign(b"message");
        assert_eq!(sig.len(), 64, "JWS uses the fixed r || s form");
        let key = DecodingKey::from_ec_der(&ec.point);
        assert!(verifies(Algorithm::ES256, &key, b"message", &sig));
        assert!(!verifies(Algorithm::ES256, &key, b"massage", &sig));
        let other = EcKey::generate();
        assert!(!verifies(Algorithm::ES256, &DecodingKey::from_ec_der(&other.point), b"message", &sig));
    }

    /// The algorithm and the key's family must agree: no HMAC over public-key bytes, no RSA
    /// check with an EC key, and nothing else JWT knows.
    #[test]
    fn an_algorithm_never_runs_over_a_key_of_another_family() {
        let rsa = RsaKey::shared();
        let ec = EcKey::generate();
        let cases = [
            (Algorithm::HS256, DecodingKey::from_rsa_der(&rsa.public_der)),
            (Algorithm::HS256, DecodingKey::from_rsa_raw_components(&rsa.n, &rsa.e)),
            (Algorithm::HS256, DecodingKey::from_ec_der(&ec.point)),
            (Algorithm::RS256, DecodingKey::from_secret(b"secret")),
            (Algorithm::RS256, DecodingKey::from_ec_der(&ec.point)),
            (Algorithm::ES256, DecodingKey::from_secret(b"secret")),
            (Algorithm::ES256, DecodingKey::from_rsa_der(&rsa.public_der)),
            (Algorithm::HS512, DecodingKey::from_secret(b"secret")),
            (Algorithm::RS512, DecodingKey::from_rsa_der(&rsa.public_der)),
            (Algorithm::ES384, DecodingKey::from_ec_der(&ec.point)),
        ];
        for (algorithm, key) in cases {
            let error = verifier(&algorithm, &key).err().map(|e| e.into_kind());
            assert_eq!(error, Some(ErrorKind::InvalidAlgorithm), "{algorithm:?} over {:?}", key.family());
        }
    }

    #[test]
    fn kids_are_derived_from_the_secret() {
        let a = hs256_kid(b"0123456789abcdef0123456789abcdef");
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, hs256_kid(b"0123456789abcdef0123456789abcdef"), "stable");
        assert_ne!(a, hs256_kid(b"0123456789abcdef0123456789abcdeF"));
    }
}
