//! Secrets referenced by name: credential references are resolved from the environment or from
//! secret files at the moment they are needed, so no secret is ever stored inline in a template,
//! a source or a command line.
//!
//! A reference is one of:
//! - `env:NAME` — the environment variable `NAME`;
//! - `file:/path` — the contents of that file (trailing line endings removed);
//! - a bare name such as `acme-client-key` — first the environment variable
//!   `INTAKE_CREDENTIAL_ACME_CLIENT_KEY` (upper-cased, every non-alphanumeric character turned into
//!   `_`), then the file `<dir>/acme-client-key`, where `<dir>` is `$INTAKE_CREDENTIALS_DIR` or
//!   `/run/secrets/intake` (the Docker/Kubernetes secrets convention).
//!
//! What this module is not: a secret store. It never writes secrets, and neither the [`Secret`]
//! type nor any error it returns prints a secret's value.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::jws::SigningKey;

/// The environment variable naming the directory of secret files for bare credential names.
pub const CREDENTIALS_DIR_VAR: &str = "INTAKE_CREDENTIALS_DIR";
/// The directory of secret files when [`CREDENTIALS_DIR_VAR`] is not set.
pub const DEFAULT_CREDENTIALS_DIR: &str = "/run/secrets/intake";
/// The prefix of the environment variable a bare credential name is looked up in.
pub const CREDENTIAL_ENV_PREFIX: &str = "INTAKE_CREDENTIAL_";

/// A secret value (a private key, a password, a token). Its `Debug` output is
/// `Secret(<redacted>)`; read it with [`Secret::expose`] only where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value that must not be logged.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Do not log or store what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a credential reference could not be resolved. No variant carries the secret's value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The reference is malformed (empty, or a bare name with path characters).
    #[error(
        "invalid credential reference '{reference}': {reason} (use env:NAME, file:/path or a bare \
         name of letters, digits, '.', '_' and '-')"
    )]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// None of the places the reference may live in holds it.
    #[error(
        "credential '{reference}' not found; tried {}: set one of them or fix the \
         credential name", tried.join(", ")
    )]
    NotFound {
        /// The reference as given.
        reference: String,
        /// Every place that was looked in, in order (`environment variable X`, `file Y`).
        tried: Vec<String>,
    },
    /// The place exists but could not be read (permissions, not UTF-8, a directory...).
    #[error(
        "credential '{reference}': cannot read {place}: {source}; check its permissions and content"
    )]
    Unreadable {
        /// The reference as given.
        reference: String,
        /// The place that failed (`environment variable X` or `file Y`).
        place: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The credential holds something that is not a usable private key.
    #[error(
        "credential '{reference}' is not a usable EC private key ({reason}); it must be a PEM \
         PKCS#8 or SEC1 key on P-256, P-384 or P-521"
    )]
    InvalidKey {
        /// The reference as given.
        reference: String,
        /// Why the key was refused (never the key itself).
        reason: String,
    },
    /// The place exists but holds an empty value.
    #[error("credential '{reference}': {place} is empty; put the secret there")]
    Empty {
        /// The reference as given.
        reference: String,
        /// The place that is empty.
        place: String,
    },
}

/// Where environment variables come from: the process, or a fixed map (for tests and for callers
/// that pass an explicit environment).
#[derive(Debug, Clone)]
enum EnvSource {
    Process,
    Map(HashMap<String, String>),
}

/// Resolves credential references against an environment and a secrets directory.
/// [`resolve_credential`] uses the process environment; build one with
/// [`CredentialResolver::with_env`] to pass an explicit environment instead.
#[derive(Debug, Clone)]
pub struct CredentialResolver {
    env: EnvSource,
}

impl CredentialResolver {
    /// A resolver reading the process environment (and `$INTAKE_CREDENTIALS_DIR`).
    pub fn from_process_env() -> Self {
        CredentialResolver { env: EnvSource::Process }
    }

    /// A resolver reading only the given variables (including `INTAKE_CREDENTIALS_DIR`).
    pub fn with_env(vars: HashMap<String, String>) -> Self {
        CredentialResolver { env: EnvSource::Map(vars) }
    }

    /// Looks up one variable. A variable that is set but not Unicode is an error.
    fn var(&self, name: &str) -> Result<Option<String>, io::Error> {
        match &self.env {
            EnvSource::Map(map) => Ok(map.get(name).cloned()),
            EnvSource::Process => match std::env::var(name) {
                Ok(v) => Ok(Some(v)),
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the value is not valid Unicode",
                )),
            },
        }
    }

    /// The directory bare names are looked up in.
    fn credentials_dir(&self) -> PathBuf {
        match self.var(CREDENTIALS_DIR_VAR) {
            Ok(Some(dir)) if !dir.is_empty() => PathBuf::from(dir),
            _ => PathBuf::from(DEFAULT_CREDENTIALS_DIR),
        }
    }

    /// Resolves `reference` (see the module documentation for the forms).
    pub fn resolve(&self, reference: &str) -> Result<Secret, CredentialError> {
        let not_found = |tried: Vec<String>| CredentialError::NotFound {
            reference: reference.to_owned(),
            tried,
        };
        match parse_reference(reference)? {
            Reference::Env(name) => {
                let place = format!("environment variable {name}");
                self.env_secret(reference, name, &place)?.ok_or_else(|| not_found(vec![place]))
            }
            Reference::File(path) => {
                let place = format!("file {}", path.display());
                file_secret(reference, path, &place)?.ok_or_else(|| not_found(vec![place]))
            }
            Reference::Bare(name) => {
                let var = env_var_for(name);
                let env_place = format!("environment variable {var}");
                if let Some(secret) = self.env_secret(reference, &var, &env_place)? {
                    return Ok(secret);
                }
                let path = self.credentials_dir().join(name);
                let file_place = format!("file {}", path.display());
                file_secret(reference, &path, &file_place)?
                    .ok_or_else(|| not_found(vec![env_place, file_place]))
            }
        }
    }

    /// Reads an environment variable as a secret: `None` when it is not set.
    fn env_secret(
        &self,
        reference: &str,
        name: &str,
        place: &str,
    ) -> Result<Option<Secret>, CredentialError> {
        match self.var(name) {
            Ok(None) => Ok(None),
            Ok(Some(value)) if value.is_empty() => Err(CredentialError::Empty {
                reference: reference.to_owned(),
                place: place.to_owned(),
            }),
            Ok(Some(value)) => Ok(Some(Secret(value))),
            Err(source) => Err(CredentialError::Unreadable {
                reference: reference.to_owned(),
                place: place.to_owned(),
                source,
            }),
        }
    }
}

/// Reads a secret file: `None` when it does not exist. Trailing line endings are removed (secret
/// files are usually written with one); nothing else is trimmed.
fn file_secret(
    reference: &str,
    path: &Path,
    place: &str,
) -> Result<Option<Secret>, CredentialError> {
    match std::fs::read_to_string(path) {
        Ok(mut text) => {
            let kept = text.trim_end_matches(['\n', '\r']).len();
            text.truncate(kept);
            if text.is_empty() {
                Err(CredentialError::Empty {
                    reference: reference.to_owned(),
                    place: place.to_owned(),
                })
            } else {
                Ok(Some(Secret(text)))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CredentialError::Unreadable {
            reference: reference.to_owned(),
            place: place.to_owned(),
            source,
        }),
    }
}

/// The place a credential reference points at.
enum Reference<'a> {
    /// `env:NAME`.
    Env(&'a str),
    /// `file:/path`.
    File(&'a Path),
    /// A bare name: `INTAKE_CREDENTIAL_<NAME>`, then a file in the credentials directory.
    Bare(&'a str),
}

/// Reads the form of a reference, refusing a malformed one.
fn parse_reference(reference: &str) -> Result<Reference<'_>, CredentialError> {
    let invalid = |reason: &str| CredentialError::InvalidReference {
        reference: reference.to_owned(),
        reason: reason.to_owned(),
    };
    if reference.trim().is_empty() {
        return Err(invalid("it is empty"));
    }
    if let Some(name) = reference.strip_prefix("env:") {
        if name.is_empty() {
            return Err(invalid("no variable name after 'env:'"));
        }
        return Ok(Reference::Env(name));
    }
    if let Some(path) = reference.strip_prefix("file:") {
        if path.is_empty() {
            return Err(invalid("no path after 'file:'"));
        }
        return Ok(Reference::File(Path::new(path)));
    }
    if !is_bare_name(reference) {
        return Err(invalid(
            "a bare name may only hold letters, digits, '.', '_' and '-', and may not start \
             with '.'",
        ));
    }
    Ok(Reference::Bare(reference))
}

/// Checks the form of a credential reference without resolving it, so that a template naming a
/// malformed one is refused when it is loaded rather than when a file arrives.
pub fn check_reference(reference: &str) -> Result<(), CredentialError> {
    parse_reference(reference).map(|_| ())
}

/// A bare name is a single safe file name: no separators, no `..`, no hidden files.
fn is_bare_name(name: &str) -> bool {
    !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The environment variable a bare credential name is looked up in.
fn env_var_for(name: &str) -> String {
    let mut var = String::with_capacity(CREDENTIAL_ENV_PREFIX.len() + name.len());
    var.push_str(CREDENTIAL_ENV_PREFIX);
    var.extend(
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }),
    );
    var
}

/// Resolves a credential reference: `env:NAME` (environment variable), `file:/path` (file
/// contents), or a bare name: the environment variable `INTAKE_CREDENTIAL_<NAME>` (upper-cased,
/// non-alphanumerics → `_`), else the file `<INTAKE_CREDENTIALS_DIR or /run/secrets/intake>/<name>`.
/// Errors say which places were tried, never the value.
pub fn resolve_credential(reference: &str) -> Result<Secret, CredentialError> {
    CredentialResolver::from_process_env().resolve(reference)
}

/// Resolves `reference` with [`resolve_credential`] and reads it as a PEM private key (PKCS#8 or
/// SEC1, P-256/P-384/P-521) for client assertions or DPoP proofs.
pub fn load_signing_key(reference: &str) -> Result<SigningKey, CredentialError> {
    let secret = resolve_credential(reference)?;
    SigningKey::from_pem(secret.expose()).map_err(|e| CredentialError::InvalidKey {
        reference: reference.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(vars: &[(&str, &str)]) -> CredentialResolver {
        CredentialResolver::with_env(
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        )
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "intake-credentials-{name}-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn env_reference_reads_the_variable() {
        let r = resolver(&[("ACME_KEY", "s3cret")]);
        assert_eq!(r.resolve("env:ACME_KEY").unwrap().expose(), "s3cret");
    }

    #[test]
    fn env_reference_against_the_process_environment() {
        // PATH is always set where tests run; this exercises the process-environment path.
        let expected = std::env::var("PATH").unwrap();
        assert_eq!(resolve_credential("env:PATH").unwrap().expose(), expected);
    }

    #[test]
    fn missing_env_reference_names_the_variable() {
        let err = resolver(&[]).resolve("env:NOPE_NOT_SET").unwrap_err();
        assert!(matches!(&err, CredentialError::NotFound { tried, .. } if tried.len() == 1));
        assert!(err.to_string().contains("environment variable NOPE_NOT_SET"), "{err}");
    }

    #[test]
    fn file_reference_reads_the_file_without_trailing_newline() {
        let dir = temp_dir("file");
        let path = dir.join("key.pem");
        std::fs::write(&path, "line one\nline two\n\n").unwrap();
        let secret = resolver(&[]).resolve(&format!("file:{}", path.display())).unwrap();
        assert_eq!(secret.expose(), "line one\nline two");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bare_name_prefers_the_environment() {
        let dir = temp_dir("bare-env");
        std::fs::write(dir.join("acme-client.key"), "from-file").unwrap();
        let r = resolver(&[
            ("INTAKE_CREDENTIAL_ACME_CLIENT_KEY", "from-env"),
            ("INTAKE_CREDENTIALS_DIR", dir.to_str().unwrap()),
        ]);
        assert_eq!(r.resolve("acme-client.key").unwrap().expose(), "from-env");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bare_name_falls_back_to_the_credentials_dir() {
        let dir = temp_dir("bare-file");
        std::fs::write(dir.join("acme-client.key"), "from-file\n").unwrap();
        let r = resolver(&[("INTAKE_CREDENTIALS_DIR", dir.to_str().unwrap())]);
        assert_eq!(r.resolve("acme-client.key").unwrap().expose(), "from-file");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_bare_name_lists_every_place_tried() {
        let dir = temp_dir("missing");
        let r = resolver(&[("INTAKE_CREDENTIALS_DIR", dir.to_str().unwrap())]);
        let err = r.resolve("acme").unwrap_err();
        let CredentialError::NotFound { tried, .. } = &err else { panic!("{err:?}") };
        assert_eq!(tried[0], "environment variable INTAKE_CREDENTIAL_ACME");
        assert_eq!(tried[1], format!("file {}", dir.join("acme").display()));
        let text = err.to_string();
        assert!(text.contains("INTAKE_CREDENTIAL_ACME") && text.contains("acme"), "{text}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn default_dir_is_run_secrets() {
        let err = resolver(&[]).resolve("surely-not-there-xyz").unwrap_err();
        assert!(err.to_string().contains("/run/secrets/intake/surely-not-there-xyz"), "{err}");
    }

    #[test]
    fn bare_names_with_path_characters_are_refused() {
        for bad in ["../etc/passwd", "a/b", ".hidden", "a b", ""] {
            let err = resolver(&[]).resolve(bad).unwrap_err();
            assert!(matches!(err, CredentialError::InvalidReference { .. }), "{bad}: {err:?}");
        }
    }

    #[test]
    fn signing_keys_load_from_files() {
        use crate::m2m::jws::JwsAlgorithm;
        let dir = temp_dir("key");
        let key = SigningKey::generate(JwsAlgorithm::Es384);
        let path = dir.join("k.pem");
        std::fs::write(&path, key.to_pkcs8_pem().unwrap()).unwrap();
        let loaded = load_signing_key(&format!("file:{}", path.display())).unwrap();
        assert_eq!(loaded.algorithm(), JwsAlgorithm::Es384);
        std::fs::write(&path, "not a key").unwrap();
        let err = load_signing_key(&format!("file:{}", path.display())).unwrap_err();
        assert!(matches!(err, CredentialError::InvalidKey { .. }), "{err:?}");
        assert!(!err.to_string().contains("not a key"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn empty_values_are_errors_not_secrets() {
        let r = resolver(&[("EMPTY", "")]);
        assert!(matches!(r.resolve("env:EMPTY"), Err(CredentialError::Empty { .. })));
    }

    #[test]
    fn debug_and_errors_never_show_the_value() {
        let secret = resolver(&[("K", "hunter2")]).resolve("env:K").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert!(!format!("{:?}", Some(&secret)).contains("hunter2"));
        let dir = temp_dir("empty-file");
        std::fs::write(dir.join("x"), "\n").unwrap();
        let err = resolver(&[("INTAKE_CREDENTIALS_DIR", dir.to_str().unwrap())])
            .resolve("x")
            .unwrap_err();
        assert!(matches!(err, CredentialError::Empty { .. }));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
