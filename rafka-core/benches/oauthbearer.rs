//! One OAUTHBEARER authentication's CPU cost: the whole server exchange
//! (initial response parse, token validation) for an unsecured token and
//! for tokens signed with RS256, PS256, ES256 and EdDSA, checked against
//! the PyJWT-made key set of the tests (tests/fixtures).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rafka_core::sasl::{
    unsecured_token, Jwks, JwksValidator, OAuthBearerClient, OAuthBearerServer,
    OAuthBearerValidator, SaslStep, UnsecuredValidator,
};
use serde_json::Value;

fn authenticate(validator: &OAuthBearerValidator, message: &[u8], now_ms: i64) {
    let step = OAuthBearerServer::new().evaluate(message, validator, now_ms);
    assert!(matches!(step, Ok(SaslStep::Complete { .. })));
}

fn exchange(c: &mut Criterion) {
    let fixture: Value =
        serde_json::from_str(include_str!("../tests/fixtures/oauthbearer-pyjwt.json")).unwrap();
    let now_ms = fixture["now_ms"].as_i64().unwrap();
    let jwks = Jwks::parse(fixture["jwks"].to_string().as_bytes()).unwrap();
    let mut signed = JwksValidator::new(jwks);
    signed.expected_audience = vec!["kafka".to_string()];
    let signed = OAuthBearerValidator::Jwks(Box::new(signed));
    let mut group = c.benchmark_group("oauthbearer_exchange");
    for entry in fixture["tokens"].as_array().unwrap() {
        let alg = entry["alg"].as_str().unwrap();
        if !matches!(alg, "RS256" | "PS256" | "ES256" | "EdDSA") {
            continue;
        }
        let message = OAuthBearerClient::initial_response(entry["token"].as_str().unwrap(), &[]);
        group.bench_function(alg, |b| {
            b.iter(|| authenticate(&signed, black_box(&message), now_ms))
        });
    }
    let unsecured = OAuthBearerValidator::Unsecured(UnsecuredValidator::default());
    let token = unsecured_token("alice", now_ms / 1000 + 600, &["produce"]);
    let message = OAuthBearerClient::initial_response(&token, &[]);
    group.bench_function("unsecured", |b| {
        b.iter(|| authenticate(&unsecured, black_box(&message), now_ms))
    });
    group.finish();
}

criterion_group!(benches, exchange);
criterion_main!(benches);
