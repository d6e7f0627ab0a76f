//! Compact JWS (RFC 7515) with the ECDSA algorithms ES256, ES384 and ES512 (RFC 7518 §3.4).
//!
//! This is what the M2M client signs its `private_key_jwt` assertions and DPoP proofs with, and
//! what the sandbox verifies them (and issues its ES512 access tokens) with. It is deliberately
//! small: three algorithms, pure Rust (RustCrypto `p256`/`p384`/`p521`), no `none`, no HMAC, no
//! RSA — a token naming any other algorithm is refused by [`DecodedJws::verify`].
//!
//! It is not a JWT library: [`decode`] only checks the structure; claim checks (`exp`, `aud`,
//! `jti`, …) belong to the caller, who knows what the token is for.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _};
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// The JWS algorithms this module signs and verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwsAlgorithm {
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// ECDSA on P-521 with SHA-512.
    Es512,
}

impl JwsAlgorithm {
    /// Every supported algorithm, weakest first.
    pub const ALL: [JwsAlgorithm; 3] =
        [JwsAlgorithm::Es256, JwsAlgorithm::Es384, JwsAlgorithm::Es512];

    /// The `alg` header value: `"ES256"`, `"ES384"` or `"ES512"`.
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlgorithm::Es256 => "ES256",
            JwsAlgorithm::Es384 => "ES384",
            JwsAlgorithm::Es512 => "ES512",
        }
    }

    /// The JWK `crv` of the curve this algorithm signs on.
    pub fn curve(self) -> &'static str {
        match self {
            JwsAlgorithm::Es256 => "P-256",
            JwsAlgorithm::Es384 => "P-384",
            JwsAlgorithm::Es512 => "P-521",
        }
    }

    /// The length of a JWS signature (`r ‖ s`, fixed size) for this algorithm.
    pub fn signature_len(self) -> usize {
        match self {
            JwsAlgorithm::Es256 => 64,
            JwsAlgorithm::Es384 => 96,
            JwsAlgorithm::Es512 => 132,
        }
    }
}

impl fmt::Display for JwsAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JwsAlgorithm {
    type Err = JwsError;

    /// Parses an `alg` value; exact, case-sensitive match as RFC 7515 requires.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ES256" => Ok(JwsAlgorithm::Es256),
            "ES384" => Ok(JwsAlgorithm::Es384),
            "ES512" => Ok(JwsAlgorithm::Es512),
            other => Err(JwsError::UnsupportedAlgorithm(other.to_owned())),
        }
    }
}

/// What went wrong while signing, decoding or verifying a JWS, or while reading a key.
#[derive(Debug, thiserror::Error)]
pub enum JwsError {
    /// The token is not a well-formed compact JWS (parts, base64url, JSON objects).
    #[error("malformed JWS: {0}")]
    Malformed(String),
    /// The `alg` is not one of ES256/ES384/ES512, or not in the caller's allow-list.
    #[error("algorithm '{0}' is not accepted (allowed: ES256, ES384, ES512 as configured)")]
    UnsupportedAlgorithm(String),
    /// The token's `alg` header has no value.
    #[error("the JWS header has no 'alg'")]
    MissingAlgorithm,
    /// The header's `alg` is not the algorithm of the key it is verified with.
    #[error("the JWS header says '{header}' but the key is for '{key}'")]
    AlgorithmMismatch {
        /// The `alg` in the token's header.
        header: String,
        /// The algorithm of the verifying key.
        key: JwsAlgorithm,
    },
    /// The header lists critical extensions this implementation does not understand.
    #[error("the JWS header has critical extensions this verifier does not understand: {0}")]
    UnsupportedCritical(String),
    /// The signature does not verify with the given key.
    #[error("the JWS signature does not verify with the given key")]
    BadSignature,
    /// A PEM key could not be read.
    #[error("cannot read the key: {0}")]
    Key(String),
    /// A JWK could not be read.
    #[error("cannot read the JWK: {0}")]
    Jwk(String),
    /// The claims given to [`sign`] are not a JSON object.
    #[error("JWS claims must be a JSON object")]
    ClaimsNotObject,
}

/// An EC private key for one of the three curves. Its `Debug` output names the curve only.
#[derive(Clone)]
pub enum SigningKey {
    /// A P-256 key (ES256).
    P256(p256::SecretKey),
    /// A P-384 key (ES384).
    P384(p384::SecretKey),
    /// A P-521 key (ES512).
    P521(p521::SecretKey),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, private key hidden)", self.algorithm())
    }
}

/// Returns the base64 body of the first PEM block labelled `label` in `text` (other blocks, such
/// as the `EC PARAMETERS` that `openssl ecparam -genkey` writes first, are skipped).
fn pem_block(text: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let rest = &text[start..];
    let stop = rest.find(&end)?;
    Some(format!("{}{end}\n", &rest[..stop]))
}

impl SigningKey {
    /// Reads a private key from PEM: PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`, what
    /// `openssl ecparam -genkey` writes, with or without its `EC PARAMETERS` block). The curve is
    /// detected from the key. Encrypted keys are not supported.
    pub fn from_pem(pem: &str) -> Result<Self, JwsError> {
        if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(JwsError::Key("encrypted private keys are not supported".into()));
        }
        if let Some(block) = pem_block(pem, "PRIVATE KEY") {
            if let Ok(k) = p256::SecretKey::from_pkcs8_pem(&block) {
                return Ok(SigningKey::P256(k));
            }
            if let Ok(k) = p384::SecretKey::from_pkcs8_pem(&block) {
                return Ok(SigningKey::P384(k));
            }
            if let Ok(k) = p521::SecretKey::from_pkcs8_pem(&block) {
                return Ok(SigningKey::P521(k));
            }
            return Err(JwsError::Key(
                "the PKCS#8 key is not an EC key on P-256, P-384 or P-521".into(),
            ));
        }
        if let Some(block) = pem_block(pem, "EC PRIVATE KEY") {
            // Smallest curve first: a scalar longer than the field is refused, and the embedded
            // public key (always written by OpenSSL) is checked against the scalar.
            if let Ok(k) = p256::SecretKey::from_sec1_pem(&block) {
                return Ok(SigningKey::P256(k));
            }
            if let Ok(k) = p384::SecretKey::from_sec1_pem(&block) {
                return Ok(SigningKey::P384(k));
            }
            if let Ok(k) = p521::SecretKey::from_sec1_pem(&block) {
                return Ok(SigningKey::P521(k));
            }
            return Err(JwsError::Key(
                "the SEC1 key is not a valid key on P-256, P-384 or P-521".into(),
            ));
        }
        Err(JwsError::Key(
            "no '-----BEGIN PRIVATE KEY-----' or '-----BEGIN EC PRIVATE KEY-----' block found"
                .into(),
        ))
    }

    /// Generates a fresh key for `algorithm` from the operating system's random source.
    pub fn generate(algorithm: JwsAlgorithm) -> Self {
        let mut rng = rand::rngs::OsRng;
        match algorithm {
            JwsAlgorithm::Es256 => SigningKey::P256(p256::SecretKey::random(&mut rng)),
            JwsAlgorithm::Es384 => SigningKey::P384(p384::SecretKey::random(&mut rng)),
            JwsAlgorithm::Es512 => SigningKey::P521(p521::SecretKey::random(&mut rng)),
        }
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> JwsAlgorithm {
        match self {
            SigningKey::P256(_) => JwsAlgorithm::Es256,
            SigningKey::P384(_) => JwsAlgorithm::Es384,
            SigningKey::P521(_) => JwsAlgorithm::Es512,
        }
    }

    /// The public half of this key.
    pub fn verifying_key(&self) -> VerifyingKey {
        match self {
            SigningKey::P256(k) => VerifyingKey::P256(k.public_key()),
            SigningKey::P384(k) => VerifyingKey::P384(k.public_key()),
            SigningKey::P521(k) => VerifyingKey::P521(k.public_key()),
        }
    }

    /// The key as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pkcs8_pem(&self) -> Result<String, JwsError> {
        let pem = match self {
            SigningKey::P256(k) => k.to_pkcs8_pem(LineEnding::LF),
            SigningKey::P384(k) => k.to_pkcs8_pem(LineEnding::LF),
            SigningKey::P521(k) => k.to_pkcs8_pem(LineEnding::LF),
        }
        .map_err(|e| JwsError::Key(e.to_string()))?;
        Ok(pem.as_str().to_owned())
    }

    /// Signs `message` and returns the fixed-size JWS signature `r ‖ s`.
    fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, JwsError> {
        use p256::ecdsa::signature::Signer as _;
        Ok(match self {
            SigningKey::P256(k) => {
                let signer = p256::ecdsa::SigningKey::from(k);
                let sig: p256::ecdsa::Signature = signer.sign(message);
                sig.to_bytes().to_vec()
            }
            SigningKey::P384(k) => {
                let signer = p384::ecdsa::SigningKey::from(k);
                let sig: p384::ecdsa::Signature = signer.sign(message);
                sig.to_bytes().to_vec()
            }
            SigningKey::P521(k) => {
                let signer = p521_signer(k)?;
                let sig: p521::ecdsa::Signature = signer.sign(message);
                sig.to_bytes().to_vec()
            }
        })
    }

    /// Signs `message` and returns an ASN.1 DER signature — what `openssl dgst -sign` produces.
    /// Only for tests of the DER compatibility path.
    #[cfg(test)]
    fn sign_der(&self, message: &[u8]) -> Vec<u8> {
        #![allow(clippy::unwrap_used)]
        use p256::ecdsa::signature::Signer as _;
        match self {
            SigningKey::P256(k) => {
                let sig: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(k).sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            SigningKey::P384(k) => {
                let sig: p384::ecdsa::Signature = p384::ecdsa::SigningKey::from(k).sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            SigningKey::P521(k) => {
                let signer = p521_signer(k).unwrap();
                let sig: p521::ecdsa::Signature = signer.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
        }
    }
}

/// The ECDSA signing key for a P-521 secret (the `p521` crate wraps ECDSA in its own type).
fn p521_signer(k: &p521::SecretKey) -> Result<p521::ecdsa::SigningKey, JwsError> {
    // A `SecretKey` is always a valid non-zero scalar, so this does not fail in practice.
    p521::ecdsa::SigningKey::from_bytes(&k.to_bytes())
        .map_err(|_| JwsError::Key("invalid P-521 secret scalar".into()))
}

/// An EC public key for one of the three curves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyingKey {
    /// A P-256 key (ES256).
    P256(p256::PublicKey),
    /// A P-384 key (ES384).
    P384(p384::PublicKey),
    /// A P-521 key (ES512).
    P521(p521::PublicKey),
}

impl VerifyingKey {
    /// Reads a public key from SPKI PEM (`-----BEGIN PUBLIC KEY-----`, what
    /// `openssl ec -pubout` writes). The curve is detected from the key.
    pub fn from_pem(pem: &str) -> Result<Self, JwsError> {
        let block = pem_block(pem, "PUBLIC KEY")
            .ok_or_else(|| JwsError::Key("no '-----BEGIN PUBLIC KEY-----' block found".into()))?;
        if let Ok(k) = p256::PublicKey::from_public_key_pem(&block) {
            return Ok(VerifyingKey::P256(k));
        }
        if let Ok(k) = p384::PublicKey::from_public_key_pem(&block) {
            return Ok(VerifyingKey::P384(k));
        }
        if let Ok(k) = p521::PublicKey::from_public_key_pem(&block) {
            return Ok(VerifyingKey::P521(k));
        }
        Err(JwsError::Key("the public key is not an EC key on P-256, P-384 or P-521".into()))
    }

    /// The key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_pem(&self) -> Result<String, JwsError> {
        match self {
            VerifyingKey::P256(k) => k.to_public_key_pem(LineEnding::LF),
            VerifyingKey::P384(k) => k.to_public_key_pem(LineEnding::LF),
            VerifyingKey::P521(k) => k.to_public_key_pem(LineEnding::LF),
        }
        .map_err(|e| JwsError::Key(e.to_string()))
    }

    /// Reads a public EC JWK (`{"kty":"EC","crv":"P-256","x":…,"y":…}`). A private member `d`
    /// is refused: a public key slot must never carry a private key.
    pub fn from_jwk(jwk: &Value) -> Result<Self, JwsError> {
        let obj = jwk.as_object().ok_or_else(|| JwsError::Jwk("not a JSON object".into()))?;
        let member = |name: &str| -> Result<&str, JwsError> {
            obj.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| JwsError::Jwk(format!("missing or non-string '{name}'")))
        };
        if member("kty")? != "EC" {
            return Err(JwsError::Jwk("'kty' must be 'EC'".into()));
        }
        if obj.contains_key("d") {
            return Err(JwsError::Jwk(
                "a public JWK must not contain the private member 'd'".into(),
            ));
        }
        let crv = member("crv")?;
        let x = URL_SAFE_NO_PAD
            .decode(member("x")?)
            .map_err(|e| JwsError::Jwk(format!("'x' is not base64url: {e}")))?;
        let y = URL_SAFE_NO_PAD
            .decode(member("y")?)
            .map_err(|e| JwsError::Jwk(format!("'y' is not base64url: {e}")))?;
        let algorithm = match crv {
            "P-256" => JwsAlgorithm::Es256,
            "P-384" => JwsAlgorithm::Es384,
            "P-521" => JwsAlgorithm::Es512,
            other => return Err(JwsError::Jwk(format!("unsupported curve '{other}'"))),
        };
        let size = coordinate_len(algorithm);
        if x.len() != size || y.len() != size {
            return Err(JwsError::Jwk(format!("'x' and 'y' must be {size} bytes each for {crv}")));
        }
        let mut sec1 = Vec::with_capacity(1 + 2 * size);
        sec1.push(0x04);
        sec1.extend_from_slice(&x);
        sec1.extend_from_slice(&y);
        let bad = |_| JwsError::Jwk(format!("the point is not on {crv}"));
        Ok(match algorithm {
            JwsAlgorithm::Es256 => {
                VerifyingKey::P256(p256::PublicKey::from_sec1_bytes(&sec1).map_err(bad)?)
            }
            JwsAlgorithm::Es384 => {
                VerifyingKey::P384(p384::PublicKey::from_sec1_bytes(&sec1).map_err(bad)?)
            }
            JwsAlgorithm::Es512 => {
                VerifyingKey::P521(p521::PublicKey::from_sec1_bytes(&sec1).map_err(bad)?)
            }
        })
    }

    /// The key as a public JWK with exactly the members `kty`, `crv`, `x`, `y`.
    pub fn to_jwk(&self) -> Value {
        let (x, y) = self.coordinates();
        serde_json::json!({
            "kty": "EC",
            "crv": self.algorithm().curve(),
            "x": x,
            "y": y,
        })
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url without padding) — the DPoP `jkt`.
    pub fn thumbprint(&self) -> String {
        let (x, y) = self.coordinates();
        // Required members only, in lexicographic order, no whitespace (RFC 7638 §3.2).
        let canonical =
            format!(r#"{{"crv":"{}","kty":"EC","x":"{x}","y":"{y}"}}"#, self.algorithm().curve());
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> JwsAlgorithm {
        match self {
            VerifyingKey::P256(_) => JwsAlgorithm::Es256,
            VerifyingKey::P384(_) => JwsAlgorithm::Es384,
            VerifyingKey::P521(_) => JwsAlgorithm::Es512,
        }
    }

    /// The base64url `x` and `y` coordinates, each padded to the field size.
    fn coordinates(&self) -> (String, String) {
        let point = match self {
            VerifyingKey::P256(k) => k.to_encoded_point(false).as_bytes().to_vec(),
            VerifyingKey::P384(k) => k.to_encoded_point(false).as_bytes().to_vec(),
            VerifyingKey::P521(k) => k.to_encoded_point(false).as_bytes().to_vec(),
        };
        let size = coordinate_len(self.algorithm());
        // An uncompressed SEC1 point is 0x04 ‖ x ‖ y, each coordinate `size` bytes.
        let x = point.get(1..1 + size).unwrap_or_default();
        let y = point.get(1 + size..1 + 2 * size).unwrap_or_default();
        (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y))
    }

    /// Checks `signature` over `message`: the fixed-size `r ‖ s`, or ASN.1 DER (see
    /// [`DecodedJws::verify`] for why DER is accepted).
    fn verify_bytes(&self, message: &[u8], signature: &[u8]) -> Result<(), JwsError> {
        use p256::ecdsa::signature::Verifier;
        let fixed = signature.len() == self.algorithm().signature_len();
        let ok = match self {
            VerifyingKey::P256(k) => {
                let vk = p256::ecdsa::VerifyingKey::from(k);
                candidates(
                    signature,
                    fixed,
                    p256::ecdsa::Signature::from_slice,
                    p256::ecdsa::Signature::from_der,
                )
                .iter()
                .any(|s| vk.verify(message, s).is_ok())
            }
            VerifyingKey::P384(k) => {
                let vk = p384::ecdsa::VerifyingKey::from(k);
                candidates(
                    signature,
                    fixed,
                    p384::ecdsa::Signature::from_slice,
                    p384::ecdsa::Signature::from_der,
                )
                .iter()
                .any(|s| vk.verify(message, s).is_ok())
            }
            VerifyingKey::P521(k) => {
                let vk = p521::ecdsa::VerifyingKey::from_affine(*k.as_affine())
                    .map_err(|_| JwsError::BadSignature)?;
                candidates(
                    signature,
                    fixed,
                    p521::ecdsa::Signature::from_slice,
                    p521::ecdsa::Signature::from_der,
                )
                .iter()
                .any(|s| vk.verify(message, s).is_ok())
            }
        };
        if ok { Ok(()) } else { Err(JwsError::BadSignature) }
    }
}

/// The signatures `bytes` may encode: the fixed-size form when the length fits, and the DER form
/// when it parses as DER (a DER signature can, rarely, have exactly the fixed size).
fn candidates<S, E1, E2>(
    bytes: &[u8],
    fixed: bool,
    from_fixed: impl Fn(&[u8]) -> Result<S, E1>,
    from_der: impl Fn(&[u8]) -> Result<S, E2>,
) -> Vec<S> {
    let mut out = Vec::with_capacity(2);
    if fixed && let Ok(s) = from_fixed(bytes) {
        out.push(s);
    }
    if bytes.first() == Some(&0x30)
        && let Ok(s) = from_der(bytes)
    {
        out.push(s);
    }
    out
}

/// The byte length of one affine coordinate on the algorithm's curve.
fn coordinate_len(algorithm: JwsAlgorithm) -> usize {
    algorithm.signature_len() / 2
}

/// Signs `claims` with `key` and returns the compact JWS `header.payload.signature`.
///
/// `header` may carry `kid`, `typ`, `jwk` and so on; `alg` is always set from the key,
/// overwriting any value given. `claims` must be a JSON object.
pub fn sign(
    mut header: Map<String, Value>,
    claims: &Value,
    key: &SigningKey,
) -> Result<String, JwsError> {
    if !claims.is_object() {
        return Err(JwsError::ClaimsNotObject);
    }
    header.insert("alg".into(), Value::String(key.algorithm().as_str().into()));
    // Serializing a `Map`/object `Value` cannot fail (all keys are strings).
    let header_json =
        serde_json::to_vec(&header).map_err(|e| JwsError::Malformed(e.to_string()))?;
    let claims_json = serde_json::to_vec(claims).map_err(|e| JwsError::Malformed(e.to_string()))?;
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header_json), URL_SAFE_NO_PAD.encode(claims_json));
    let signature = key.sign_bytes(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// A compact JWS split into its parts. Nothing in it is trusted until [`DecodedJws::verify`]
/// has returned `Ok`.
#[derive(Debug, Clone)]
pub struct DecodedJws {
    /// The protected header (`alg`, `kid`, `typ`, `jwk`, …).
    pub header: Map<String, Value>,
    /// The payload, which must be a JSON object (JWT claims).
    pub claims: Map<String, Value>,
    /// `base64url(header) "." base64url(payload)`, the bytes the signature covers.
    signing_input: String,
    /// The decoded signature bytes.
    signature: Vec<u8>,
}

/// Decodes one base64url (no padding) part and parses it as a JSON object.
fn decode_object(part: &str, what: &str) -> Result<Map<String, Value>, JwsError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| JwsError::Malformed(format!("the {what} is not base64url: {e}")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(JwsError::Malformed(format!("the {what} is not a JSON object"))),
        Err(e) => Err(JwsError::Malformed(format!("the {what} is not JSON: {e}"))),
    }
}

/// Splits a compact JWS into header, claims and signature. Checks structure only (exactly three
/// parts, base64url without padding, JSON objects) and trusts nothing: call
/// [`DecodedJws::verify`] before using any claim.
pub fn decode(token: &str) -> Result<DecodedJws, JwsError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed(
            "a compact JWS has exactly three dot-separated parts".into(),
        ));
    };
    let header_map = decode_object(header, "header")?;
    let claims = decode_object(payload, "payload")?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| JwsError::Malformed(format!("the signature is not base64url: {e}")))?;
    Ok(DecodedJws {
        header: header_map,
        claims,
        signing_input: format!("{header}.{payload}"),
        signature,
    })
}

impl DecodedJws {
    /// The header's `alg`, if it is a string.
    pub fn algorithm(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    /// Verifies the signature with `key`.
    ///
    /// The header's `alg` must be one of ES256/ES384/ES512, be in `allowed`, and equal the key's
    /// own algorithm (so `none`, `HS*` — including HMAC "signed" with the public key's bytes —
    /// and `RS*` never pass, and a key is never used with an algorithm it was not made for).
    /// A header with `crit` is refused, since no extension is understood.
    ///
    /// The signature must be the JWS form, the fixed-size `r ‖ s` (64, 96 or 132 bytes). As a
    /// deliberate compatibility choice, an ASN.1 DER-encoded ECDSA signature carrying the same
    /// `r` and `s` is accepted too: the platform's documented cURL example signs with
    /// `openssl dgst -sign`, which writes DER. Both encodings prove possession of the same key
    /// over the same bytes, so nothing is weakened; and a re-encoded signature does not make a
    /// token new, because replay protection is keyed on the `jti` claim, not on the token bytes.
    pub fn verify(&self, key: &VerifyingKey, allowed: &[JwsAlgorithm]) -> Result<(), JwsError> {
        let alg = self.algorithm().ok_or(JwsError::MissingAlgorithm)?;
        let algorithm = JwsAlgorithm::from_str(alg)?;
        if !allowed.contains(&algorithm) {
            return Err(JwsError::UnsupportedAlgorithm(alg.to_owned()));
        }
        if algorithm != key.algorithm() {
            return Err(JwsError::AlgorithmMismatch {
                header: alg.to_owned(),
                key: key.algorithm(),
            });
        }
        if let Some(crit) = self.header.get("crit") {
            return Err(JwsError::UnsupportedCritical(crit.to_string()));
        }
        key.verify_bytes(self.signing_input.as_bytes(), &self.signature)
    }
}

#[cfg(test)]
mod tests;
