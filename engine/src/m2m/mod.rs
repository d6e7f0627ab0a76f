//! The platform's M2M surface as seen by a client: JWS/JWT signing and verification, and the
//! transport built on it — credentials referenced by name ([`credentials`]), the token manager
//! with `private_key_jwt` and optional DPoP ([`token`], [`dpop`]), and the API client with bounded
//! concurrency, retries, `Retry-After`, ETags and idempotency keys ([`client`]).
//!
//! The import modes (create, upsert, sync…) live in the writer on top of [`client::ApiClient`].

pub mod client;
pub mod credentials;
pub mod dpop;
pub mod error;
pub mod jws;
pub mod retry;
pub mod token;
pub mod writer;

pub use client::{ApiClient, ClientConfig, Item, ListQuery, Page};
pub use credentials::{
    CredentialError, Secret, check_reference, load_signing_key, resolve_credential,
};
pub use error::{ApiError, AuthError, ErrorDomain, FieldError};
pub use token::{AccessToken, ClientCredentials, TokenManager, TokenType};
