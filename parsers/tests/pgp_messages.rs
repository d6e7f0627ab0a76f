//! The OpenPGP pre-flight against messages made by GnuPG (`gpg`, from Debian): keys generated
//! by gpg in a private home, files encrypted and signed by gpg, then opened by intake — and every
//! way a message can be wrong ends in its own clear error, with no plaintext released. Without
//! gpg the tests skip, saying why — unless `INTAKE_REQUIRE_SPEC_TOOLS=1` (CI), where they fail.

// Test code: a failed set-up step should panic right there.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use intake_parsers::pgp::{PgpError, PgpOptions, open_message};

#[path = "../../tests/common/gpg.rs"]
mod gpg;

use gpg::Gpg;

const CSV: &str = "id;amount\n1;12.50\n2;7.25\n";

fn options(gpg: &Gpg, signature_required: bool) -> PgpOptions {
    let mut options = PgpOptions {
        signature_required,
        max_plaintext_bytes: 100 << 20,
        max_expansion_ratio: 100,
        ..PgpOptions::default()
    };
    options.add_decryption_key(&gpg.secret_key("intake@receiver.test", "")).unwrap();
    options.add_signer(&gpg.certificate("files@partner.test")).unwrap();
    options
}

fn open(message: &[u8], options: &PgpOptions) -> Result<Vec<u8>, PgpError> {
    let plaintext = open_message("payments.csv.gpg", message, options, None)?;
    Ok(std::fs::read(plaintext.path()).unwrap())
}

fn spool_files() -> usize {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("intake-pgp-"))
        .count()
}

#[test]
fn a_message_encrypted_and_signed_by_gpg_opens_with_its_signer_verified() {
    let Some(gpg) = Gpg::start() else { return };
    let message =
        gpg.message(CSV.as_bytes(), Some("intake@receiver.test"), Some("files@partner.test"));
    let plaintext =
        open_message("payments.csv.gpg", &message[..], &options(&gpg, true), None).unwrap();
    assert_eq!(std::fs::read(plaintext.path()).unwrap(), CSV.as_bytes());
    assert_eq!(plaintext.bytes, CSV.len() as u64);
    assert!(plaintext.was_encrypted);
    assert_eq!(plaintext.verified_signers, [gpg.fingerprint("files@partner.test")]);
    let path: PathBuf = plaintext.path().to_path_buf();
    drop(plaintext);
    assert!(!Path::new(&path).exists(), "the plaintext is deleted with its handle");

    // Signed only (not encrypted) also opens; so does a passphrase-protected decryption key.
    let signed = gpg.message(CSV.as_bytes(), None, Some("files@partner.test"));
    assert_eq!(open(&signed, &options(&gpg, true)).unwrap(), CSV.as_bytes());
    let to_locked =
        gpg.message(CSV.as_bytes(), Some("locked@receiver.test"), Some("files@partner.test"));
    let mut locked = options(&gpg, true);
    locked.decryption_keys.clear();
    locked.add_decryption_key(&gpg.secret_key("locked@receiver.test", "open sesame")).unwrap();
    locked.passphrase = Some("open sesame".into());
    assert_eq!(open(&to_locked, &locked).unwrap(), CSV.as_bytes());
    locked.passphrase = Some("wrong".into());
    let error = open(&to_locked, &locked).unwrap_err();
    assert!(matches!(error, PgpError::CannotDecrypt { .. }), "{error}");
    assert!(error.to_string().contains("wrong passphrase"), "{error}");
}

#[test]
fn unsigned_unknown_signer_bad_signature_and_wrong_key_are_each_refused_precisely() {
    let Some(gpg) = Gpg::start() else { return };
    let before = spool_files();
    let required = options(&gpg, true);

    let unsigned = gpg.message(CSV.as_bytes(), Some("intake@receiver.test"), None);
    let error = open(&unsigned, &required).unwrap_err();
    assert!(matches!(error, PgpError::SignatureRejected { .. }), "{error}");
    assert!(error.to_string().contains("not signed"), "{error}");
    // Without signature_required the same message opens.
    assert_eq!(open(&unsigned, &options(&gpg, false)).unwrap(), CSV.as_bytes());

    let by_stranger =
        gpg.message(CSV.as_bytes(), Some("intake@receiver.test"), Some("x@stranger.test"));
    let error = open(&by_stranger, &required).unwrap_err();
    assert!(error.to_string().contains("unknown key"), "{error}");
    assert!(error.to_string().starts_with("payments.csv.gpg: "), "names the file: {error}");

    // A signed, uncompressed message whose literal data was altered: the signature fails.
    let input = gpg.file("plain.csv", CSV.as_bytes());
    let mut signed = gpg.run(&[
        "--passphrase",
        "",
        "--local-user",
        "files@partner.test",
        "--compress-algo",
        "none",
        "--sign",
        "--output",
        "-",
        &input.display().to_string(),
    ]);
    let at = signed.windows(4).position(|w| w == b"12.5").unwrap();
    signed[at] = b'9';
    let error = open(&signed, &options(&gpg, false)).unwrap_err();
    assert!(matches!(error, PgpError::SignatureRejected { .. }), "{error}");
    assert!(error.to_string().contains("does not verify"), "{error}");

    // Encrypted to someone else: our key does not open it.
    let for_stranger =
        gpg.message(CSV.as_bytes(), Some("x@stranger.test"), Some("files@partner.test"));
    let error = open(&for_stranger, &required).unwrap_err();
    assert!(matches!(error, PgpError::CannotDecrypt { .. }), "{error}");

    // A ciphertext with one byte changed fails its integrity check.
    let mut tampered =
        gpg.message(CSV.as_bytes(), Some("intake@receiver.test"), Some("files@partner.test"));
    let middle = tampered.len() - 30;
    tampered[middle] ^= 0x01;
    assert!(open(&tampered, &required).is_err());

    // Not OpenPGP at all.
    let error = open(CSV.as_bytes(), &required).unwrap_err();
    assert!(matches!(error, PgpError::Malformed { .. }), "{error}");

    assert_eq!(spool_files(), before, "no refused message leaves plaintext behind");
}

#[test]
fn a_compression_bomb_inside_the_message_is_refused_while_streaming() {
    let Some(gpg) = Gpg::start() else { return };
    // 64 MiB of zeros compresses to a few hundred KiB.
    let zeros = vec![0u8; 64 << 20];
    let bomb = gpg.message(&zeros, Some("intake@receiver.test"), Some("files@partner.test"));
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let error = open(&bomb, &options(&gpg, true)).unwrap_err();
    assert!(matches!(error, PgpError::TooLarge { .. }), "{error}");
    let mut capped = options(&gpg, true);
    capped.max_expansion_ratio = 0;
    capped.max_plaintext_bytes = 8 << 20;
    let error = open(&bomb, &capped).unwrap_err();
    assert!(error.to_string().contains("max_plaintext_bytes = 8388608"), "{error}");
}
