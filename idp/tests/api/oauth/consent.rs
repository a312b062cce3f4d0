//! The consent page: what it shows, what "deny" answers, and that a decision is remembered per user and
//! client for the scopes it covered.

use crate::oauth::flow::{
    AuthRequest, REDIRECT_URI, authorize, consent_html, consented_setup, decide, error_of, redirect_params,
    signed_in_setup,
};

#[tokio::test]
async fn consent_page_names_the_client() {
    let (app, client) = signed_in_setup().await;
    let html = consent_html(app.get(&AuthRequest::new(&client).path()).await).await;
    assert!(html.contains("Holiday Photos"), "{html}");
    for decision in [r#"name="decision" value="allow""#, r#"name="decision" value="deny""#] {
        assert!(html.contains(decision), "{decision} missing: {html}");
    }
}

#[tokio::test]
async fn denied_consent_answers_access_denied() {
    let (app, client) = signed_in_setup().await;
    let request = AuthRequest::new(&client);
    let response = decide(&app, app.get(&request.path()).await, "deny").await;
    assert_eq!(error_of(&app, &response, &request), "access_denied");
}

#[tokio::test]
async fn consent_is_remembered_for_the_next_authorization() {
    let (app, client) = consented_setup().await;
    let request = AuthRequest::new(&client);
    let response = app.get(&request.path()).await;
    let params = redirect_params(&app, &response, REDIRECT_URI);
    assert!(params.contains_key("code"), "the second authorization skips the page: {params:?}");
}

#[tokio::test]
async fn remembered_consent_covers_fewer_scopes() {
    let (app, client) = consented_setup().await;
    let request = AuthRequest::new(&client).with("scope", "openid email");
    let response = app.get(&request.path()).await;
    let params = redirect_params(&app, &response, REDIRECT_URI);
    assert!(params.contains_key("code"), "{params:?}");
}

#[tokio::test]
async fn consent_is_asked_again_for_more_scopes() {
    let (app, client) = signed_in_setup().await;
    authorize(&app, &AuthRequest::new(&client).with("scope", "openid")).await;
    let response = app.get(&AuthRequest::new(&client).with("scope", "openid email").path()).await;
    consent_html(response).await;
}
