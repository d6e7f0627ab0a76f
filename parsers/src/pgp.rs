//! OpenPGP pre-flight: decrypt and verify a message with sequoia-openpgp before anything parses
//! it, releasing plaintext only once the message has proved itself.
//!
//! How a message is opened ([`open_message`]):
//! - The plaintext is streamed into a private temporary file (bounded memory whatever the size);
//!   the caller gets it only after the whole message has been read, its integrity protection
//!   checked and its signatures verified. A message that fails any check releases nothing: the
//!   temporary file is deleted with the error.
//! - Encryption: the session key is decrypted with the configured secret key(s) (a key protected
//!   by a passphrase is unlocked with [`PgpOptions::passphrase`]). Integrity protection is
//!   required: sequoia only decrypts integrity-protected packets (SEIPD with MDC, or AEAD), so a
//!   legacy message without an MDC fails; a modified ciphertext fails its MDC check.
//! - Signatures: checked against [`PgpOptions::signers`]. With `signature_required`, the message
//!   must carry at least one good signature by a configured signer; an unsigned message, one
//!   signed by an unknown key and one whose signature does not verify (tampered) are refused,
//!   each with its own reason. Without `signature_required`, a present signature that does not
//!   verify still refuses the message (it was tampered with); a signature by an unknown key is
//!   accepted and reported in [`Plaintext::unverified_signers`].
//! - A compression bomb inside the message is bounded: the plaintext may be at most
//!   [`PgpOptions::max_plaintext_bytes`], and at most [`PgpOptions::max_expansion_ratio`] times
//!   the message's size (checked once past 1 MiB).
//!
//! Keys and certificates come in as bytes (ASCII-armored or binary); where they live — a
//! credential reference — is the engine's business. This module never logs key material.

use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sequoia_openpgp as openpgp;

use openpgp::cert::Cert;
use openpgp::crypto::{KeyPair, Password, SessionKey};
use openpgp::packet::{PKESK, SKESK};
use openpgp::parse::Parse;
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageLayer, MessageStructure, VerificationError,
    VerificationHelper,
};
use openpgp::policy::StandardPolicy;
use openpgp::types::SymmetricAlgorithm;
use openpgp::{Fingerprint, KeyHandle, KeyID};

/// Plaintext below this size is never refused for its expansion ratio.
const RATIO_FLOOR_BYTES: u64 = 1 << 20;

/// Why a message was refused. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum PgpError {
    /// A configured key or certificate cannot be read.
    #[error("OpenPGP {what}: {reason}")]
    BadKeyMaterial {
        /// Which setting (`decryption key`, `signer certificate 2`, …).
        what: String,
        /// Why.
        reason: String,
    },
    /// The message is encrypted but none of the configured keys can decrypt it.
    #[error("{file}: cannot decrypt: {reason}")]
    CannotDecrypt {
        /// The file.
        file: String,
        /// Why (no key configured, not encrypted to our key, wrong passphrase…).
        reason: String,
    },
    /// The signatures do not satisfy the configuration.
    #[error("{file}: signature check failed: {reason}")]
    SignatureRejected {
        /// The file.
        file: String,
        /// Unsigned, unknown signer, bad signature — with the key ids involved.
        reason: String,
    },
    /// The plaintext grew past a limit (a compression bomb, or a file bigger than allowed).
    #[error("{file}: the decrypted content exceeds {limit} (read {read} bytes so far); refused")]
    TooLarge {
        /// The file.
        file: String,
        /// The limit, in words.
        limit: String,
        /// Plaintext bytes produced when the limit was hit.
        read: u64,
    },
    /// Not an OpenPGP message, corrupt, tampered with, or without integrity protection.
    #[error("{file}: not a valid OpenPGP message: {reason}")]
    Malformed {
        /// The file.
        file: String,
        /// What sequoia reported.
        reason: String,
    },
    /// The temporary plaintext file could not be written or read.
    #[error("{file}: cannot spool the decrypted content: {error}")]
    Spool {
        /// The file.
        file: String,
        /// The I/O error.
        #[source]
        error: io::Error,
    },
}

/// What to do with a message: the keys to decrypt with, the certificates to verify against, and
/// the limits.
#[derive(Clone, Default)]
pub struct PgpOptions {
    /// Secret keys (transferable secret keys) that may decrypt the message.
    pub decryption_keys: Vec<Cert>,
    /// Unlocks secret keys that are protected by a passphrase.
    pub passphrase: Option<Password>,
    /// Certificates of the parties allowed to sign.
    pub signers: Vec<Cert>,
    /// Refuse a message without a good signature by one of [`PgpOptions::signers`].
    pub signature_required: bool,
    /// The most plaintext bytes a message may produce (0: no limit).
    pub max_plaintext_bytes: u64,
    /// The most plaintext bytes per message byte (0: no limit), checked past 1 MiB.
    pub max_expansion_ratio: u64,
}

impl std::fmt::Debug for PgpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgpOptions")
            .field("decryption_keys", &self.decryption_keys.iter().map(Cert::fingerprint))
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<redacted>"))
            .field("signers", &self.signers.iter().map(Cert::fingerprint))
            .field("signature_required", &self.signature_required)
            .field("max_plaintext_bytes", &self.max_plaintext_bytes)
            .field("max_expansion_ratio", &self.max_expansion_ratio)
            .finish()
    }
}

impl PgpOptions {
    /// Reads a secret key (armored or binary) into [`PgpOptions::decryption_keys`].
    pub fn add_decryption_key(&mut self, key: &[u8]) -> Result<(), PgpError> {
        let cert = read_cert(key, "decryption key")?;
        if !cert.is_tsk() {
            return Err(PgpError::BadKeyMaterial {
                what: "decryption key".into(),
                reason: format!("{} holds no secret key material", cert.fingerprint()),
            });
        }
        self.decryption_keys.push(cert);
        Ok(())
    }

    /// Sets [`PgpOptions::passphrase`] from text, so that callers need no sequoia types.
    pub fn set_passphrase(&mut self, passphrase: &str) {
        self.passphrase = Some(Password::from(passphrase));
    }

    /// Reads a signer's certificate (armored or binary) into [`PgpOptions::signers`].
    pub fn add_signer(&mut self, certificate: &[u8]) -> Result<(), PgpError> {
        let what = format!("signer certificate {}", self.signers.len() + 1);
        self.signers.push(read_cert(certificate, &what)?);
        Ok(())
    }
}

fn read_cert(bytes: &[u8], what: &str) -> Result<Cert, PgpError> {
    Cert::from_bytes(bytes)
        .map_err(|e| PgpError::BadKeyMaterial { what: what.to_owned(), reason: e.to_string() })
}

/// The verified plaintext of a message, in a private temporary file deleted on drop.
#[derive(Debug)]
pub struct Plaintext {
    file: tempfile::NamedTempFile,
    /// Plaintext size in bytes.
    pub bytes: u64,
    /// Fingerprints of the configured signers whose signatures verified.
    pub verified_signers: Vec<String>,
    /// Key ids of signatures by keys that are not configured (accepted only when signatures
    /// are not required).
    pub unverified_signers: Vec<String>,
    /// Whether the message was encrypted (as opposed to only signed).
    pub was_encrypted: bool,
}

impl Plaintext {
    /// Opens the plaintext for reading from the start.
    pub fn reader(&self) -> io::Result<std::fs::File> {
        let mut file = self.file.reopen()?;
        file.rewind()?;
        Ok(file)
    }

    /// Where the plaintext is (deleted when this value is dropped).
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Decrypts and verifies the OpenPGP message `input` (named `file` in errors) into a temporary
/// file in `spool_dir` (the system's temporary folder when `None`); see the module
/// documentation for the rules.
pub fn open_message<R: Read + Send + Sync>(
    file: &str,
    input: R,
    options: &PgpOptions,
    spool_dir: Option<&Path>,
) -> Result<Plaintext, PgpError> {
    let spool_error = |error| PgpError::Spool { file: file.to_owned(), error };
    let policy = StandardPolicy::new();
    let consumed = Arc::new(AtomicU64::new(0));
    let counted = CountingReader { inner: input, count: Arc::clone(&consumed) };
    let helper = Helper::new(&policy, options);
    let malformed =
        |e: anyhow::Error| PgpError::Malformed { file: file.to_owned(), reason: chain(&e) };
    let mut decryptor = DecryptorBuilder::from_reader(counted)
        .map_err(malformed)?
        .with_policy(&policy, None, helper)
        .map_err(|e| classify(file, e))?;

    let dir = spool_dir.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    let mut spool = tempfile::Builder::new()
        .prefix("intake-pgp-")
        .suffix(".plaintext")
        .tempfile_in(dir)
        .map_err(spool_error)?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut written: u64 = 0;
    loop {
        let n = match decryptor.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(classify_io(file, e, decryptor.helper_ref())),
        };
        written += n as u64;
        check_limits(file, options, written, consumed.load(Ordering::Relaxed))?;
        spool.write_all(&buffer[..n]).map_err(spool_error)?;
    }
    spool.flush().map_err(spool_error)?;
    if !decryptor.message_processed() {
        return Err(PgpError::Malformed {
            file: file.to_owned(),
            reason: "the message ended before it was complete".into(),
        });
    }
    let helper = decryptor.into_helper();
    Ok(Plaintext {
        file: spool,
        bytes: written,
        verified_signers: helper.verified,
        unverified_signers: helper.unverified,
        was_encrypted: helper.was_encrypted,
    })
}

fn check_limits(
    file: &str,
    options: &PgpOptions,
    written: u64,
    consumed: u64,
) -> Result<(), PgpError> {
    if options.max_plaintext_bytes > 0 && written > options.max_plaintext_bytes {
        return Err(PgpError::TooLarge {
            file: file.to_owned(),
            limit: format!("max_plaintext_bytes = {}", options.max_plaintext_bytes),
            read: written,
        });
    }
    let ratio = options.max_expansion_ratio;
    if ratio > 0 && written > RATIO_FLOOR_BYTES && written > consumed.max(1).saturating_mul(ratio) {
        return Err(PgpError::TooLarge {
            file: file.to_owned(),
            limit: format!("{ratio} times the {consumed} bytes of the message read so far"),
            read: written,
        });
    }
    Ok(())
}

/// An error from building the decryptor (which reads and checks the start of the message, and
/// for a small message the whole of it).
fn classify(file: &str, error: anyhow::Error) -> PgpError {
    let reason = chain(&error);
    if let Some(rejection) = error.downcast_ref::<Rejection>() {
        return rejection.to_error(file);
    }
    PgpError::Malformed { file: file.to_owned(), reason }
}

/// An error from reading the plaintext: a rejection by our helper, or a broken message.
fn classify_io(file: &str, error: io::Error, helper: &Helper) -> PgpError {
    if let Some(rejection) = &helper.rejection {
        return rejection.to_error(file);
    }
    let reason = match error.get_ref() {
        Some(inner) => inner.to_string(),
        None => error.to_string(),
    };
    PgpError::Malformed { file: file.to_owned(), reason }
}

fn chain(error: &anyhow::Error) -> String {
    error.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

/// Why the helper refused the message (kept so the error can say it precisely).
#[derive(Debug, Clone, thiserror::Error)]
enum Rejection {
    #[error("cannot decrypt: {0}")]
    Decrypt(String),
    #[error("signature check failed: {0}")]
    Signature(String),
}

impl Rejection {
    fn to_error(&self, file: &str) -> PgpError {
        match self {
            Rejection::Decrypt(reason) => {
                PgpError::CannotDecrypt { file: file.to_owned(), reason: reason.clone() }
            }
            Rejection::Signature(reason) => {
                PgpError::SignatureRejected { file: file.to_owned(), reason: reason.clone() }
            }
        }
    }
}

/// Counts the bytes the decryptor has read from the message.
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Supplies keys and certificates to sequoia and applies the signature policy.
struct Helper {
    /// Decryption-capable secret keys by key id, with their certificate's fingerprint.
    keys: Vec<(KeyID, Fingerprint, KeyPair)>,
    /// Secret keys still locked (no or a wrong passphrase), for the error message.
    locked: Vec<String>,
    signers: Vec<Cert>,
    signature_required: bool,
    verified: Vec<String>,
    unverified: Vec<String>,
    was_encrypted: bool,
    rejection: Option<Rejection>,
}

impl Helper {
    fn new(policy: &StandardPolicy, options: &PgpOptions) -> Self {
        let mut keys = Vec::new();
        let mut locked = Vec::new();
        for cert in &options.decryption_keys {
            let usable = cert
                .keys()
                .with_policy(policy, None)
                .supported()
                .secret()
                .for_transport_encryption()
                .for_storage_encryption();
            for ka in usable {
                let mut key = ka.key().clone();
                if !key.has_unencrypted_secret() {
                    match options.passphrase.as_ref().map(|p| key.clone().decrypt_secret(p)) {
                        Some(Ok(unlocked)) => key = unlocked,
                        Some(Err(_)) => {
                            locked.push(format!("{} (wrong passphrase)", key.keyid()));
                            continue;
                        }
                        None => {
                            locked.push(format!("{} (needs a passphrase)", key.keyid()));
                            continue;
                        }
                    }
                }
                if let Ok(pair) = key.into_keypair() {
                    keys.push((ka.key().keyid(), cert.fingerprint(), pair));
                }
            }
        }
        Self {
            keys,
            locked,
            signers: options.signers.clone(),
            signature_required: options.signature_required,
            verified: Vec::new(),
            unverified: Vec::new(),
            was_encrypted: false,
            rejection: None,
        }
    }

    fn reject(&mut self, rejection: Rejection) -> openpgp::Result<()> {
        self.rejection = Some(rejection.clone());
        Err(anyhow::Error::new(rejection))
    }
}

impl VerificationHelper for Helper {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.signers.clone())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        let mut good = Vec::new();
        let mut unknown = Vec::new();
        let mut bad = Vec::new();
        for layer in structure.into_iter() {
            match layer {
                MessageLayer::Encryption { .. } => self.was_encrypted = true,
                MessageLayer::Compression { .. } => {}
                MessageLayer::SignatureGroup { results } => {
                    for result in results {
                        match result {
                            Ok(checksum) => good.push(checksum.ka.cert().fingerprint().to_hex()),
                            Err(VerificationError::MissingKey { sig }) => unknown.push(issuer(sig)),
                            Err(other) => bad.push(describe(&other)),
                        }
                    }
                }
            }
        }
        if !bad.is_empty() {
            return self.reject(Rejection::Signature(format!(
                "a signature does not verify, so the content was altered or the signature is \
                 broken: {}",
                bad.join("; ")
            )));
        }
        if self.signature_required && good.is_empty() {
            let reason = if unknown.is_empty() {
                "the message is not signed, and signature_required is set".to_owned()
            } else {
                format!(
                    "signed only by unknown key(s) {}; none of the configured signers signed it",
                    unknown.join(", ")
                )
            };
            return self.reject(Rejection::Signature(reason));
        }
        self.verified = good;
        self.unverified = unknown;
        Ok(())
    }
}

fn issuer(sig: &openpgp::packet::Signature) -> String {
    sig.get_issuers().first().map(ToString::to_string).unwrap_or_else(|| "(no issuer)".into())
}

fn describe(error: &VerificationError<'_>) -> String {
    match error {
        VerificationError::BadSignature { sig, error, .. } => {
            format!("bad signature by {}: {error}", issuer(sig))
        }
        VerificationError::BadKey { sig, error, .. } => {
            format!("the key of {} cannot be used: {error}", issuer(sig))
        }
        VerificationError::UnboundKey { sig, error, .. } => {
            format!("the key of {} is not bound to its certificate: {error}", issuer(sig))
        }
        VerificationError::MalformedSignature { sig, error } => {
            format!("malformed signature by {}: {error}", issuer(sig))
        }
        other => other.to_string(),
    }
}

impl DecryptionHelper for Helper {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        self.was_encrypted = true;
        for pkesk in pkesks {
            let recipient = pkesk.recipient().map(KeyID::from);
            for (keyid, _, pair) in &mut self.keys {
                if recipient.as_ref().is_some_and(|r| r != &*keyid) {
                    continue;
                }
                if let Some((algo, session_key)) = pkesk.decrypt(pair, sym_algo)
                    && decrypt(algo, &session_key)
                {
                    return Ok(None);
                }
            }
        }
        let recipients: Vec<String> = pkesks
            .iter()
            .map(|p| p.recipient().map(|r| KeyID::from(r).to_string()).unwrap_or("anyone".into()))
            .collect();
        let reason = if self.keys.is_empty() && self.locked.is_empty() {
            format!(
                "the message is encrypted (to {}) but no decryption key is configured",
                recipients.join(", ")
            )
        } else {
            let mut ours: Vec<String> = self.keys.iter().map(|(k, _, _)| k.to_string()).collect();
            ours.extend(self.locked.iter().cloned());
            format!(
                "the message is encrypted to {}, and none of the configured keys ({}) opens it",
                recipients.join(", "),
                ours.join(", ")
            )
        };
        self.reject(Rejection::Decrypt(reason)).map(|()| None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_runaway_plaintext() {
        let options = PgpOptions {
            max_plaintext_bytes: 10 << 20,
            max_expansion_ratio: 100,
            ..Default::default()
        };
        assert!(check_limits("f", &options, 512 << 10, 1).is_ok(), "under the ratio floor");
        assert!(check_limits("f", &options, 2 << 20, 1 << 20).is_ok());
        let error = check_limits("f", &options, 3 << 20, 1_000).unwrap_err();
        assert!(error.to_string().contains("100 times"), "{error}");
        let error = check_limits("f", &options, 11 << 20, 1 << 20).unwrap_err();
        assert!(error.to_string().contains("max_plaintext_bytes"), "{error}");
    }

    #[test]
    fn debug_never_shows_the_passphrase() {
        let options =
            PgpOptions { passphrase: Some(Password::from("hunter2")), ..Default::default() };
        assert!(!format!("{options:?}").contains("hunter2"));
    }
}
