use super::*;
use serde_json::json;

fn header(kid: &str) -> Map<String, Value> {
    let mut h = Map::new();
    h.insert("kid".into(), json!(kid));
    h.insert("typ".into(), json!("JWT"));
    h
}

/// Replaces the signature part of `token` with `signature`.
fn with_signature(token: &str, signature: &[u8]) -> String {
    let input = token.rsplit_once('.').unwrap().0;
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[test]
fn every_curve_signs_and_verifies_round_trip() {
    for alg in JwsAlgorithm::ALL {
        let key = SigningKey::generate(alg);
        assert_eq!(key.algorithm(), alg);
        let claims = json!({"iss": "me", "n": 1});
        let token = sign(header("k1"), &claims, &key).unwrap();
        let decoded = decode(&token).unwrap();
        assert_eq!(decoded.algorithm(), Some(alg.as_str()));
        assert_eq!(decoded.header["kid"], "k1");
        assert_eq!(Value::Object(decoded.claims.clone()), claims);
        assert_eq!(decoded.signature.len(), alg.signature_len());
        decoded.verify(&key.verifying_key(), &JwsAlgorithm::ALL).unwrap();
    }
}

#[test]
fn sign_overwrites_a_given_alg_with_the_keys() {
    let key = SigningKey::generate(JwsAlgorithm::Es384);
    let mut h = header("k");
    h.insert("alg".into(), json!("none"));
    let token = sign(h, &json!({}), &key).unwrap();
    assert_eq!(decode(&token).unwrap().algorithm(), Some("ES384"));
}

#[test]
fn sign_refuses_non_object_claims() {
    let key = SigningKey::generate(JwsAlgorithm::Es256);
    assert!(matches!(sign(Map::new(), &json!([1]), &key), Err(JwsError::ClaimsNotObject)));
}

#[test]
fn a_tampered_payload_fails_verification() {
    let key = SigningKey::generate(JwsAlgorithm::Es256);
    let token = sign(header("k"), &json!({"sub": "alice"}), &key).unwrap();
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = b64(&json!({"sub": "mallory"}));
    parts[1] = &forged;
    let decoded = decode(&parts.join(".")).unwrap();
    assert!(matches!(
        decoded.verify(&key.verifying_key(), &JwsAlgorithm::ALL),
        Err(JwsError::BadSignature)
    ));
}

#[test]
fn another_keys_signature_fails_verification() {
    let key = SigningKey::generate(JwsAlgorithm::Es256);
    let other = SigningKey::generate(JwsAlgorithm::Es256);
    let token = sign(header("k"), &json!({}), &key).unwrap();
    let decoded = decode(&token).unwrap();
    assert!(matches!(
        decoded.verify(&other.verifying_key(), &JwsAlgorithm::ALL),
        Err(JwsError::BadSignature)
    ));
}

#[test]
fn an_alg_that_is_not_the_keys_is_refused() {
    let p256 = SigningKey::generate(JwsAlgorithm::Es256);
    let p384 = SigningKey::generate(JwsAlgorithm::Es384);
    let token = sign(header("k"), &json!({}), &p256).unwrap();
    let err = decode(&token).unwrap().verify(&p384.verifying_key(), &JwsAlgorithm::ALL);
    assert!(matches!(err, Err(JwsError::AlgorithmMismatch { .. })), "{err:?}");
}

#[test]
fn an_alg_outside_the_allow_list_is_refused() {
    let key = SigningKey::generate(JwsAlgorithm::Es512);
    let token = sign(header("k"), &json!({}), &key).unwrap();
    let err = decode(&token).unwrap().verify(&key.verifying_key(), &[JwsAlgorithm::Es256]);
    assert!(matches!(err, Err(JwsError::UnsupportedAlgorithm(a)) if a == "ES512"));
}

#[test]
fn alg_none_is_refused() {
    let key = SigningKey::generate(JwsAlgorithm::Es256);
    let token = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&json!({"sub": "x"})));
    let decoded = decode(&token).unwrap();
    let err = decoded.verify(&key.verifying_key(), &JwsAlgorithm::ALL);
    assert!(matches!(err, Err(JwsError::UnsupportedAlgorithm(a)) if a == "none"));
}

#[test]
fn hs256_signed_with_the_public_key_bytes_is_refused() {
    use sha2::Sha256;
    let key = SigningKey::generate(JwsAlgorithm::Es256);
    let public_pem = key.verifying_key().to_pem().unwrap();
    let input = format!("{}.{}", b64(&json!({"alg": "HS256"})), b64(&json!({"sub": "x"})));
    // HMAC-SHA256 by hand (RFC 2104), keyed with the public key PEM: the classic confusion attack.
    let mut k = public_pem.as_bytes().to_vec();
    if k.len() > 64 {
        k = Sha256::digest(&k).to_vec();
    }
    k.resize(64, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new().chain_update(&ipad).chain_update(input.as_bytes()).finalize();
    let mac = Sha256::new().chain_update(&opad).chain_update(inner).finalize();
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac));
    let err = decode(&token).unwrap().verify(&key.verifying_key(), &JwsAlgorithm::ALL);
    assert!(matches!(err, Err(JwsError::UnsupportedAlgorithm(a)) if a == "HS256"));
}

#[test]
fn rs256_and_a_missing_alg_are_refused() {
    let key = SigningKey::generate(JwsAlgorithm::Es256);
    let rs = format!("{}.{}.AAAA", b64(&json!({"alg": "RS256"})), b64(&json!({})));
    assert!(matches!(
        decode(&rs).unwrap().verify(&key.verifying_key(), &JwsAlgorithm::ALL),
        Err(JwsError::UnsupportedAlgorithm(_))
    ));
    let missing = format!("{}.{}.AAAA", b64(&json!({"kid": "k"})), b64(&json!({})));
    assert!(matches!(
        decode(&missing).unwrap().verify(&key.verifying_key(), &JwsAlgorithm::ALL),
        Err(JwsError::MissingAlgorithm)
    ));
}

#[test]
fn a_crit_header_is_refused() {
    let key = SigningKey::generate(JwsAlgorithm::Es256);
    let mut h = header("k");
    h.insert("crit".into(), json!(["b64"]));
    h.insert("b64".into(), json!(false));
    let token = sign(h, &json!({}), &key).unwrap();
    assert!(matches!(
        decode(&token).unwrap().verify(&key.verifying_key(), &JwsAlgorithm::ALL),
        Err(JwsError::UnsupportedCritical(_))
    ));
}

#[test]
fn a_der_encoded_signature_with_the_same_r_and_s_is_accepted() {
    for alg in JwsAlgorithm::ALL {
        let key = SigningKey::generate(alg);
        let token = sign(header("k"), &json!({"sub": "x"}), &key).unwrap();
        let input = token.rsplit_once('.').unwrap().0;
        let der = key.sign_der(input.as_bytes());
        assert_eq!(der[0], 0x30);
        let der_token = with_signature(&token, &der);
        decode(&der_token).unwrap().verify(&key.verifying_key(), &JwsAlgorithm::ALL).unwrap();

        // The same r and s re-encoded from the fixed-size form verify too.
        let fixed = decode(&token).unwrap().signature;
        let reencoded = match alg {
            JwsAlgorithm::Es256 => {
                p256::ecdsa::Signature::from_slice(&fixed).unwrap().to_der().as_bytes().to_vec()
            }
            JwsAlgorithm::Es384 => {
                p384::ecdsa::Signature::from_slice(&fixed).unwrap().to_der().as_bytes().to_vec()
            }
            JwsAlgorithm::Es512 => {
                p521::ecdsa::Signature::from_slice(&fixed).unwrap().to_der().as_bytes().to_vec()
            }
        };
        let t = with_signature(&token, &reencoded);
        decode(&t).unwrap().verify(&key.verifying_key(), &JwsAlgorithm::ALL).unwrap();
    }
}

#[test]
fn a_der_signature_over_other_bytes_or_by_another_key_is_refused() {
    let key = SigningKey::generate(JwsAlgorithm::Es256);
    let other = SigningKey::generate(JwsAlgorithm::Es256);
    let token = sign(header("k"), &json!({"sub": "x"}), &key).unwrap();
    let input = token.rsplit_once('.').unwrap().0;
    let by_other = with_signature(&token, &other.sign_der(input.as_bytes()));
    assert!(matches!(
        decode(&by_other).unwrap().verify(&key.verifying_key(), &JwsAlgorithm::ALL),
        Err(JwsError::BadSignature)
    ));
    let other_bytes = with_signature(&token, &key.sign_der(b"something else"));
    assert!(matches!(
        decode(&other_bytes).unwrap().verify(&key.verifying_key(), &JwsAlgorithm::ALL),
        Err(JwsError::BadSignature)
    ));
    let garbage = with_signature(&token, &[0x30, 0x03, 0x02, 0x01, 0x01]);
    assert!(matches!(
        decode(&garbage).unwrap().verify(&key.verifying_key(), &JwsAlgorithm::ALL),
        Err(JwsError::BadSignature)
    ));
}

#[test]
fn rfc7515_appendix_a3_es256_example_verifies() {
    let jwk = json!({
        "kty": "EC",
        "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    });
    let token = concat!(
        "eyJhbGciOiJFUzI1NiJ9.",
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.",
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
    );
    let key = VerifyingKey::from_jwk(&jwk).unwrap();
    let decoded = decode(token).unwrap();
    decoded.verify(&key, &JwsAlgorithm::ALL).unwrap();
    assert_eq!(decoded.claims["iss"], "joe");
}

#[test]
fn rfc9449_example_jwk_has_the_published_thumbprint() {
    let jwk = json!({
        "kty": "EC",
        "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
        "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
        "crv": "P-256",
    });
    let key = VerifyingKey::from_jwk(&jwk).unwrap();
    assert_eq!(key.thumbprint(), "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
}

#[test]
fn rfc9449_example_dpop_proof_verifies_with_its_embedded_jwk() {
    let proof = concat!(
        "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0",
        "VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10",
        "NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoi",
        "UE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.",
        "2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
    );
    let decoded = decode(proof).unwrap();
    let key = VerifyingKey::from_jwk(&decoded.header["jwk"]).unwrap();
    decoded.verify(&key, &JwsAlgorithm::ALL).unwrap();
    assert_eq!(key.thumbprint(), "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
    assert_eq!(decoded.claims["htm"], "POST");
}

#[test]
fn jwk_round_trips_for_every_curve_with_public_members_only() {
    for alg in JwsAlgorithm::ALL {
        let vk = SigningKey::generate(alg).verifying_key();
        let jwk = vk.to_jwk();
        let keys: Vec<&str> = jwk.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["kty", "crv", "x", "y"]);
        assert_eq!(jwk["crv"], alg.curve());
        let back = VerifyingKey::from_jwk(&jwk).unwrap();
        assert_eq!(back, vk);
        assert_eq!(back.thumbprint(), vk.thumbprint());
        assert_eq!(back.algorithm(), alg);
        // The thumbprint is the SHA-256 of the canonical member order, whatever the input order.
        let reordered = json!({"y": jwk["y"], "x": jwk["x"], "kty": "EC", "crv": jwk["crv"]});
        assert_eq!(VerifyingKey::from_jwk(&reordered).unwrap().thumbprint(), vk.thumbprint());
    }
}

#[test]
fn bad_jwks_are_refused() {
    let good = SigningKey::generate(JwsAlgorithm::Es256).verifying_key().to_jwk();
    let mut with_d = good.clone();
    with_d["d"] = json!("AAAA");
    assert!(matches!(VerifyingKey::from_jwk(&with_d), Err(JwsError::Jwk(_))));
    let mut rsa = good.clone();
    rsa["kty"] = json!("RSA");
    assert!(VerifyingKey::from_jwk(&rsa).is_err());
    let mut curve = good.clone();
    curve["crv"] = json!("secp256k1");
    assert!(VerifyingKey::from_jwk(&curve).is_err());
    let mut off_curve = good.clone();
    off_curve["y"] = off_curve["x"].clone();
    assert!(VerifyingKey::from_jwk(&off_curve).is_err());
    let mut short = good;
    short["x"] = json!("AAAA");
    assert!(VerifyingKey::from_jwk(&short).is_err());
    assert!(VerifyingKey::from_jwk(&json!("EC")).is_err());
}

#[test]
fn pkcs8_and_sec1_private_keys_parse_with_the_right_curve() {
    for alg in JwsAlgorithm::ALL {
        let key = SigningKey::generate(alg);
        let pkcs8 = key.to_pkcs8_pem().unwrap();
        assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = SigningKey::from_pem(&pkcs8).unwrap();
        assert_eq!(back.algorithm(), alg);
        assert_eq!(back.verifying_key(), key.verifying_key());

        let sec1 = match &key {
            SigningKey::P256(k) => k.to_sec1_pem(LineEnding::LF).unwrap().to_string(),
            SigningKey::P384(k) => k.to_sec1_pem(LineEnding::LF).unwrap().to_string(),
            SigningKey::P521(k) => k.to_sec1_pem(LineEnding::LF).unwrap().to_string(),
        };
        assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        let back = SigningKey::from_pem(&sec1).unwrap();
        assert_eq!(back.algorithm(), alg);
        assert_eq!(back.verifying_key(), key.verifying_key());

        let public = key.verifying_key().to_pem().unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(VerifyingKey::from_pem(&public).unwrap(), key.verifying_key());
    }
}

/// `openssl ecparam -name prime256v1 -genkey` (without `-noout`) output: parameters block first.
const OPENSSL_SEC1_WITH_PARAMS: &str = "-----BEGIN EC PARAMETERS-----
BggqhkjOPQMBBw==
-----END EC PARAMETERS-----
-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIHGG7rRHV9mcPtjySNbPdaFSndx/OJL1xtVOVjCLsSj4oAoGCCqGSM49
AwEHoUQDQgAE1n6a2cZ6pSTxFYJK2kVn3AaAsYt0TUT+6p3SC6B6yqYUpzY44AHJ
gA/Cl1lHiV0+SjZpPIe0aroLVVsSRp5KXA==
-----END EC PRIVATE KEY-----
";

#[test]
fn openssl_ecparam_output_with_a_parameters_block_parses() {
    let key = SigningKey::from_pem(OPENSSL_SEC1_WITH_PARAMS).unwrap();
    assert_eq!(key.algorithm(), JwsAlgorithm::Es256);
}

#[test]
fn unusable_pem_is_refused_with_a_reason() {
    assert!(matches!(SigningKey::from_pem("hello"), Err(JwsError::Key(_))));
    let encrypted =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
    assert!(
        matches!(SigningKey::from_pem(encrypted), Err(JwsError::Key(m)) if m.contains("encrypted"))
    );
    let garbage = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert!(SigningKey::from_pem(garbage).is_err());
    assert!(
        VerifyingKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
            .is_err()
    );
    let private = SigningKey::generate(JwsAlgorithm::Es256).to_pkcs8_pem().unwrap();
    assert!(VerifyingKey::from_pem(&private).is_err());
}

#[test]
fn the_debug_output_does_not_print_the_private_key() {
    let key = SigningKey::generate(JwsAlgorithm::Es256);
    let pem = key.to_pkcs8_pem().unwrap();
    let debug = format!("{key:?}");
    assert_eq!(debug, "SigningKey(ES256, private key hidden)");
    let SigningKey::P256(secret) = &key else { unreachable!() };
    let hex: String = secret.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!debug.contains(&hex) && !pem.contains(&debug));
}

#[test]
fn decode_checks_structure() {
    let ok_h = b64(&json!({"alg": "ES256"}));
    let ok_p = b64(&json!({}));
    assert!(decode(&format!("{ok_h}.{ok_p}.AAAA")).is_ok());
    for bad in [
        String::new(),
        format!("{ok_h}.{ok_p}"),
        format!("{ok_h}.{ok_p}.AAAA.AAAA"),
        format!("{ok_h}.{ok_p}.AAAA.AAAA.AAAA"),
        format!("{ok_h}.{ok_p}.AA=="),
        format!("{ok_h}=.{ok_p}.AAAA"),
        format!("{ok_h}.%%%.AAAA"),
        format!("{}.{ok_p}.AAAA", b64(&json!([1, 2]))),
        format!("{ok_h}.{}.AAAA", b64(&json!("string"))),
        format!("{ok_h}.{}.AAAA", URL_SAFE_NO_PAD.encode(b"not json")),
    ] {
        assert!(matches!(decode(&bad), Err(JwsError::Malformed(_))), "accepted {bad:?}");
    }
}

#[test]
fn algorithm_names_parse_and_display_exactly() {
    for alg in JwsAlgorithm::ALL {
        assert_eq!(alg.as_str().parse::<JwsAlgorithm>().unwrap(), alg);
        assert_eq!(alg.to_string(), alg.as_str());
    }
    assert!("es256".parse::<JwsAlgorithm>().is_err());
    assert!("none".parse::<JwsAlgorithm>().is_err());
}
