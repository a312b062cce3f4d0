//! Discovery names every protocol endpoint the flows use.

use crate::helpers::spawn_app;
use crate::oauth::flow::backchannel;

#[tokio::test]
async fn discovery_lists_every_protocol_endpoint() {
    let app = spawn_app().await;
    let response = backchannel().get(app.url("/.well-known/openid-configuration")).send().await.unwrap();
    let doc: serde_json::Value = response.json().await.unwrap();
    let endpoints = [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
        ("end_session_endpoint", "/end_session"),
    ];
    for (name, path) in endpoints {
        assert_eq!(doc[name], app.url(path).as_str(), "{name}");
    }
}
