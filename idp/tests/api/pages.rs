//! Registration, sign-in and sign-out through the HTML pages, as a browser without JavaScript would.

use crate::helpers::{assert_never_framed_cached_or_referred, csrf_token_in, new_browser, session_cookie, spawn_app};

const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn registration_signs_the_new_user_in() {
    let app = spawn_app().await;
    let response = app.register("Alice@Example.com", PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    let home = app.get("/").await.text().await.unwrap();
    assert!(home.contains("alice@example.com"), "the normalised email is shown: {home}");
}

#[tokio::test]
async fn registration_returns_to_a_local_path_only() {
    let app = spawn_app().await;
    let token = app.csrf_token("/register?return_to=/authorize%3Fx%3D1").await;
    let response = app
        .post_form(
            "/register",
            &[
                ("csrf_token", &token),
                ("return_to", "https://evil.example/"),
                ("email", "r@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.headers()["location"], "/");
}

#[tokio::test]
async fn duplicate_email_is_reported_under_the_email_field() {
    let app = spawn_app().await;
    app.create_user("bob@example.com", PASSWORD).await;
    let response = app.register("BOB@example.com", PASSWORD).await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(
        page.contains(r#"<p class="field-error" id="email-error">An account with this email already exists"#),
        "{page}"
    );
}

#[tokio::test]
async fn each_invalid_field_gets_its_own_message() {
    let app = spawn_app().await;
    let cases = [
        ("not-an-email", PASSWORD, "email-error", "enter a valid email address"),
        ("carol@example.com", "short", "password-error", "use at least 8 characters"),
    ];
    for (email, password, field, message) in cases {
        let response = app.register(email, password).await;
        assert_eq!(response.status(), 422, "{field}");
        let page = response.text().await.unwrap();
        assert!(page.contains(&format!(r#"id="{field}">{message}"#)), "{field}: {page}");
        assert!(page.contains(&format!(r#"value="{email}""#)), "the email typed is kept");
    }
}

#[tokio::test]
async fn form_without_csrf_token_is_forbidden_and_creates_nothing() {
    let app = spawn_app().await;
    app.get("/register").await;
    let response = app.post_form("/register", &[("email", "dave@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(response.status(), 403);
    let email = idp::domain::email::Email::parse("dave@example.com").unwrap();
    assert!(app.state.db.users().find_by_email(&email).await.unwrap().is_none());
}

#[tokio::test]
async fn form_with_a_wrong_csrf_token_is_forbidden() {
    let app = spawn_app().await;
    app.create_user("erin@example.com", PASSWORD).await;
    app.get("/login").await;
    let response = app
        .post_form("/login", &[("csrf_token", "forged"), ("email", "erin@example.com"), ("password", PASSWORD)])
        .await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn form_posted_from_another_origin_is_forbidden() {
    let app = spawn_app().await;
    app.create_user("frank@example.com", PASSWORD).await;
    let token = app.csrf_token("/login").await;
    let response = app
        .browser
        .post(app.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("csrf_token", token.as_str()), ("email", "frank@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn login_succeeds_with_a_303_and_a_new_session_id() {
    let app = spawn_app().await;
    app.create_user("grace@example.com", PASSWORD).await;
    let page = app.get("/login?return_to=/somewhere").await;
    let before = session_cookie(&page).expect("the login page starts a session for its CSRF token");
    let token = csrf_token_in(&page.text().await.unwrap());
    let response = app
        .post_form(
            "/login",
            &[
                ("csrf_token", &token),
                ("return_to", "/somewhere"),
                ("email", "grace@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/somewhere");
    let after = session_cookie(&response).expect("login sets a new session cookie");
    assert_ne!(before, after, "the session id is rotated at login");

    // The id planted before login is not signed in.
    let planted = reqwest::Client::new()
        .get(app.url("/"))
        .header("cookie", format!("idp_session={before}"))
        .send()
        .await
        .unwrap();
    assert!(!planted.text().await.unwrap().contains("grace@example.com"));
}

/// OWASP: a stored hash made with other parameters than today's (here two lanes, where p = 1 is asked) is
/// replaced at the next sign-in, which still succeeds.
#[tokio::test]
async fn sign_in_replaces_a_hash_made_with_other_parameters() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use idp::domain::email::Email;
    use idp::domain::password::PasswordHash;

    let app = spawn_app().await;
    app.create_user("judy@example.com", PASSWORD).await;
    let users = app.state.db.users();
    let user = users.find_by_email(&Email::parse("judy@example.com").unwrap()).await.unwrap().unwrap();
    let salt = SaltString::encode_b64(b"somesaltsomesalt").unwrap();
    let params = argon2::Params::new(19_456, 2, 2, None).unwrap();
    let two_lanes = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(PASSWORD.as_bytes(), &salt)
        .unwrap()
        .to_string();
    let two_lanes = PasswordHash::from_stored(two_lanes);
    assert!(users.set_password_hash(user.id, &two_lanes, time::OffsetDateTime::now_utc()).await.unwrap());

    assert_eq!(app.login("judy@example.com", PASSWORD).await.status(), 303);
    let stored = users.find(user.id).await.unwrap().unwrap().password_hash;
    assert_ne!(stored, two_lanes);
    assert!(stored.as_str().contains("m=19456,t=2,p=1"), "today's parameters");
}

#[tokio::test]
async fn session_cookie_is_http_only_and_same_site_lax() {
    let app = spawn_app().await;
    let response = app.get("/login").await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Domain"), "{cookie}");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_generic_answer() {
    let app = spawn_app().await;
    app.create_user("heidi@example.com", PASSWORD).await;
    let wrong_password = app.login("heidi@example.com", "not the password").await;
    let unknown_email = app.login("nobody@example.com", "not the password").await;
    assert_eq!(wrong_password.status(), 401);
    assert_eq!(unknown_email.status(), 401);
    let strip = |page: String, email: &str| page.replace(&csrf_token_in(&page), "TOKEN").replace(email, "EMAIL");
    let a = strip(wrong_password.text().await.unwrap(), "heidi@example.com");
    let b = strip(unknown_email.text().await.unwrap(), "nobody@example.com");
    assert_eq!(a, b, "the two failures are indistinguishable");
    assert!(a.contains("Wrong email or password."));
}

#[tokio::test]
async fn failed_login_signs_nobody_in() {
    let app = spawn_app().await;
    app.create_user("ivan@example.com", PASSWORD).await;
    app.login("ivan@example.com", "not the password").await;
    assert!(!app.get("/").await.text().await.unwrap().contains("ivan@example.com"));
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let app = spawn_app().await;
    app.register("judy@example.com", PASSWORD).await;
    assert!(app.get("/").await.text().await.unwrap().contains("judy@example.com"));
    let token = app.csrf_token("/").await;
    let response = app.post_form("/logout", &[("csrf_token", &token)]).await;
    assert_eq!(response.status(), 303);
    assert!(!app.get("/").await.text().await.unwrap().contains("judy@example.com"));
}

/// ASVS 7.4.1: signing out ends the session on the server, so its cookie, replayed, signs nobody in.
#[tokio::test]
async fn a_session_cookie_replayed_after_sign_out_signs_nobody_in() {
    let app = spawn_app().await;
    let registered = app.register("kate@example.com", PASSWORD).await;
    let cookie = session_cookie(&registered).expect("registration signs in with a new session");
    let replay = || reqwest::Client::new().get(app.url("/")).header("cookie", format!("idp_session={cookie}")).send();
    assert!(replay().await.unwrap().text().await.unwrap().contains("kate@example.com"), "the cookie signs in");
    let token = app.csrf_token("/").await;
    assert_eq!(app.post_form("/logout", &[("csrf_token", &token)]).await.status(), 303);
    assert!(!replay().await.unwrap().text().await.unwrap().contains("kate@example.com"));
}

#[tokio::test]
async fn two_browsers_have_separate_sessions() {
    let app = spawn_app().await;
    app.register("ken@example.com", PASSWORD).await;
    let other = new_browser();
    let page = other.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("ken@example.com"));
}

#[tokio::test]
async fn pages_are_never_framed_cached_or_referred() {
    let app = spawn_app().await;
    for path in ["/login", "/register", "/"] {
        assert_never_framed_cached_or_referred(app.get(path).await.headers(), path);
    }
}

#[tokio::test]
async fn form_posted_with_a_null_origin_is_judged_by_its_token() {
    // Browsers send `Origin: null` for same-origin form posts under `Referrer-Policy: no-referrer`.
    let app = spawn_app().await;
    app.create_user("nora@example.com", PASSWORD).await;
    let token = app.csrf_token("/login").await;
    let response = app
        .browser
        .post(app.url("/login"))
        .header("origin", "null")
        .form(&[("csrf_token", token.as_str()), ("email", "nora@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
}
