//! Who is calling the REST layer: access tokens verified against configured issuers, and the
//! capabilities (= scopes) they carry.
//!
//! An access token is a JWT signed with ES256, ES384 or ES512 by one of the configured
//! [`IssuerConfig`]s (the platform's issuer, given as a JWKS file or PEM public keys, or
//! `intake`'s own token endpoint). Its `iss` picks the issuer; the signature must verify with
//! one of that issuer's keys (the one named by `kid` when the header has one) under the issuer's
//! algorithm allow-list; `exp` must be in the future and `nbf` (when present) in the past, with
//! 30 s of clock skew; `aud`, when the issuer is configured with an audience, must be that
//! audience or an array containing it. The tenant comes from the `tenant_id` claim and the
//! capabilities from `scope` (space-separated) — never from the request's body or path.
//!
//! It also issues tokens: [`TokenAuthority`] is the `POST /auth/token` endpoint (client
//! credentials with `private_key_jwt` assertions, DPoP, replay protection, lockout) behind both
//! `intake sandbox` and `intake api --clients`, for the [`ClientRegistration`]s it is given.

pub(crate) mod authority;
mod clients;
pub(crate) mod dpop;
mod principal;
mod replay;
mod token_endpoint;
mod verifier;

pub use authority::{AuthoritySettings, TokenAuthority};
pub use clients::{ClientKey, ClientRegistration, client_problems, is_plain_kid};
pub use principal::{ADMIN_CAPABILITY, Principal};
pub use verifier::{AccessTokenVerifier, AuthConfigError, Issuer, IssuerConfig, IssuerKeys};
