//! The client_credentials grant (RFC 6749 §4.4): an access token for the client itself, nothing more.

use crate::oauth::flow::{
    SERVICE_SCOPE, assert_inactive, client_credentials, field, introspect, oauth_error, register, service, setup,
    tokens_from, verified_jwt,
};

#[tokio::test]
async fn client_credentials_issue_only_an_access_token() {
    let (app, _) = setup().await;
    let client = register(&app, service()).await;
    let body = tokens_from(client_credentials(&app, &client).await).await;
    assert!(body["access_token"].is_string(), "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body.get("id_token").is_none(), "{body}");
}

/// RFC 6749 §5.1: JSON, never cached; and what every response carries (a request id, `nosniff`).
#[tokio::test]
async fn client_credentials_response_is_uncached_json_with_a_request_id() {
    let (app, _) = setup().await;
    let client = register(&app, service()).await;
    let response = client_credentials(&app, &client).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers.get("x-request-id").is_some_and(|v| !v.is_empty()));
}

#[tokio::test]
async fn client_credentials_access_token_has_the_client_as_subject() {
    let (app, _) = setup().await;
    let client = register(&app, service()).await;
    let body = tokens_from(client_credentials(&app, &client).await).await;
    let (header, claims) = verified_jwt(&app, body["access_token"].as_str().unwrap(), &app.base_url).await;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(claims["sub"], client.id.as_str());
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["scope"], SERVICE_SCOPE);
}

/// Issue 2: a client deleted while the server runs stops working within a few seconds (clients are cached
/// for at most `CLIENT_CACHE_TTL`).
#[tokio::test]
async fn a_deleted_client_stops_working_within_seconds() {
    let app = crate::helpers::spawn_app().await;
    let client = register(&app, service()).await;
    assert_eq!(client_credentials(&app, &client).await.status(), 200);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(app.state.db.clients().delete(&client.id, now).await.unwrap());
    tokio::time::sleep(idp::storage::client_cache::CLIENT_CACHE_TTL + std::time::Duration::from_millis(200)).await;
    let (status, error) = oauth_error(client_credentials(&app, &client).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
}

/// A client-credentials token names no grant: deleting its client, which revokes the client's grants, must
/// end it too (a deleted client holding `admin` would otherwise keep the admin API until the token expires).
#[tokio::test]
async fn a_deleted_clients_access_token_is_inactive() {
    let (app, resource_server) = setup().await;
    let client = register(&app, service()).await;
    let token = field(&tokens_from(client_credentials(&app, &client).await).await, "access_token");
    assert_eq!(introspect(&app, &resource_server, &token).await["active"], true);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(app.state.db.clients().delete(&client.id, now).await.unwrap());
    assert_inactive(&introspect(&app, &resource_server, &token).await);
}

/// RFC 6749 §4.4.2, §3.3: a scope the client is not registered for is refused, not silently narrowed.
#[tokio::test]
async fn client_credentials_with_a_scope_beyond_the_clients_is_refused_with_invalid_scope() {
    let (app, _) = setup().await;
    let client = register(&app, service()).await;
    let fields = [("grant_type", "client_credentials"), ("scope", "media.read admin")];
    let response = client.post(&app, "/token", &fields).await;
    assert_eq!(oauth_error(response).await, (400, "invalid_scope".to_owned()));
}
