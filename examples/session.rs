//! Issues a session the way a login handler would, then verifies it the way
//! both live phases do, printing each check.
//!
//! Run with `cargo run --example session`.

use std::error::Error;

use liveguard::csrf::CsrfState;
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::origin::{OriginPolicy, RequestTarget};
use liveguard::session::{SessionCookie, USER_TOKEN};
use liveguard::socket_id::LiveSocketId;
use liveguard::token::SignedTokens;
use liveguard::{MaxAge, OsRandom, SecureRandom, Timestamp};

fn main() -> Result<(), Box<dyn Error>> {
    let mut rng = OsRandom;

    // Start-up: one secret key base, keys derived once per purpose.
    let mut secret = vec![0u8; 64];
    rng.fill(&mut secret)?;
    let ring = KeyRing::new(KeyId(1), SecretKeyBase::new(secret)?);
    let cookie = SessionCookie::encrypted("_demo_key", &ring, "session encryption salt")?;
    let user_tokens = SignedTokens::new(&ring, "user auth");
    let origins = OriginPolicy::host_of("https://app.example.com")?;

    // Log in: a random server-side session token, a live_socket_id derived
    // from it, and a CSRF state, all in the session cookie.
    let now = Timestamp::now();
    let mut session_token = [0u8; 32];
    rng.fill(&mut session_token)?;
    let socket_id = LiveSocketId::new(format!("users_sessions:{}", hex(&session_token[..8])))?;
    let csrf = CsrfState::generate(&mut rng)?;
    let mut session = liveguard::session::Session::new();
    session.put(USER_TOKEN, &session_token[..])?;
    session.put_live_socket_id(&socket_id);
    session.put_csrf_state(&csrf);
    let value = cookie.encode(&session, now, &mut rng)?;
    println!("login      Set-Cookie: {}", cookie.set_cookie_header(&value));
    let page_csrf = csrf.mask(&mut rng)?;
    println!("page       <meta name=\"csrf-token\" content=\"{page_csrf}\"> ({} chars)", page_csrf.as_str().len());

    // HTTP phase: the browser sends the cookie back.
    let header = format!("theme=dark; _demo_key={value}");
    let decoded = cookie.decode_request([header.as_str()], now);
    let restored = decoded.session;
    println!(
        "http       cookie verified under key {:?}; user_token present: {}",
        decoded.key_id,
        restored.contains_key(USER_TOKEN)
    );

    // WebSocket upgrade: Origin policy, then the masked CSRF token against
    // the session's state, then the live_socket_id to register under.
    let request = RequestTarget::new("https", "app.example.com", 443);
    let origin_ok = origins.check(Some("https://app.example.com"), &request).is_ok();
    let evil_origin = origins.check(Some("https://evil.example.net"), &request).is_err();
    println!("upgrade    origin app.example.com allowed: {origin_ok}; evil.example.net refused: {evil_origin}");
    let state = restored.csrf_state().ok_or("no CSRF state in the session")?;
    println!(
        "upgrade    _csrf_token valid: {}; forged token valid: {}",
        state.verify(page_csrf.as_str()),
        state.verify("forged")
    );
    let id = restored.live_socket_id().ok_or("no live_socket_id in the session")?;
    println!("upgrade    register under {id} -> NATS subject {}", liveguard::socket_id::subject("liveguard", &id));

    // Tokens: a signed user-auth token, tampered and expired variants.
    let token = user_tokens.sign_with_max_age(&42u64, now, MaxAge::Seconds(3600))?;
    let ok = user_tokens.verify::<u64>(token.as_str(), now)?;
    println!("token      {token} -> user {} (key {})", ok.data, ok.key_id);
    let mut tampered = token.clone().into_bytes();
    if let Some(byte) = tampered.get_mut(12) {
        *byte ^= 1;
    }
    let tampered = String::from_utf8(tampered)?;
    let err = user_tokens.verify::<u64>(tampered.as_str(), now).unwrap_err();
    println!("token      tampered -> {err} (audit: {})", err.rejection());
    let later = now.saturating_add_millis(3_601_000);
    let err = user_tokens.verify::<u64>(token.as_str(), later).unwrap_err();
    println!("token      an hour and a second later -> {err} (audit: {})", err.rejection());
    let moved = SessionCookie::encrypted("_other_key", &ring, "session encryption salt")?.decode(Some(&value), now);
    println!(
        "cookie     value moved to another cookie name -> empty session: {} (audit: {:?})",
        moved.session.is_empty(),
        moved.rejection
    );
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
