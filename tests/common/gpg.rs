//! A private GnuPG home for the OpenPGP tests, with keys made by `gpg` (from Debian): ours
//! (files are encrypted to it), the partner's (it signs them), a stranger's, and one locked by
//! a passphrase. Shared by `parsers/tests/pgp_messages.rs` and `tests/check_command.rs`
//! (included with `#[path]`). Without gpg, [`Gpg::start`] says why and the test skips, unless
//! `INTAKE_REQUIRE_SPEC_TOOLS=1` (CI), where it fails.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The GnuPG home; its agent is stopped on drop.
pub struct Gpg {
    home: tempfile::TempDir,
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

impl Gpg {
    pub fn start() -> Option<Gpg> {
        if Command::new("gpg").arg("--version").output().is_err() {
            let reason = "gpg not found (apt-get install -y gnupg)";
            assert!(
                std::env::var("INTAKE_REQUIRE_SPEC_TOOLS").as_deref() != Ok("1"),
                "INTAKE_REQUIRE_SPEC_TOOLS=1 but {reason}"
            );
            eprintln!("skipping: {reason}");
            return None;
        }
        let gpg = Gpg { home: tempfile::Builder::new().prefix("gpg").tempdir_in("/tmp").unwrap() };
        gpg.generate("Intake <intake@receiver.test>", "");
        gpg.generate("Partner Bank <files@partner.test>", "");
        gpg.generate("Stranger <x@stranger.test>", "");
        gpg.generate("Locked <locked@receiver.test>", "open sesame");
        Some(gpg)
    }

    pub fn run(&self, args: &[&str]) -> Vec<u8> {
        let output = Command::new("gpg")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--batch", "--yes", "--quiet", "--trust-model", "always"])
            .args(["--pinentry-mode", "loopback"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// An ed25519 signing key with a cv25519 encryption subkey.
    pub fn generate(&self, uid: &str, passphrase: &str) {
        self.run(&[
            "--passphrase",
            passphrase,
            "--quick-gen-key",
            uid,
            "future-default",
            "default",
            "never",
        ]);
    }

    pub fn secret_key(&self, who: &str, passphrase: &str) -> Vec<u8> {
        self.run(&["--passphrase", passphrase, "--armor", "--export-secret-keys", who])
    }

    pub fn certificate(&self, who: &str) -> Vec<u8> {
        self.run(&["--armor", "--export", who])
    }

    pub fn fingerprint(&self, who: &str) -> String {
        let listing = String::from_utf8(self.run(&["--with-colons", "--list-keys", who])).unwrap();
        let line = listing.lines().find(|l| l.starts_with("fpr:")).unwrap();
        line.split(':').nth(9).unwrap().to_owned()
    }

    pub fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.home.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    /// `content` encrypted to `to` (if any) and signed by `signer` (if any), binary.
    pub fn message(&self, content: &[u8], to: Option<&str>, signer: Option<&str>) -> Vec<u8> {
        let input = self.file("plain.csv", content);
        let mut args: Vec<&str> = vec!["--passphrase", ""];
        if let Some(signer) = signer {
            args.extend(["--local-user", signer, "--sign"]);
        }
        if let Some(to) = to {
            args.extend(["--recipient", to, "--encrypt"]);
        }
        args.extend(["--output", "-"]);
        let input = input.display().to_string();
        args.push(&input);
        self.run(&args)
    }
}
