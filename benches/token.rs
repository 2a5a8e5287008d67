//! Token verification against its floor and against `jsonwebtoken`.
//!
//! Budget (docs/ARCHITECTURE.md §6): verifying a ~130-character signed session token
//! costs at most 1.25× the floor (base64url decode + one HMAC-SHA256 +
//! postcard decode of the same bytes, written directly against the crates),
//! and is at least 5× faster than `jsonwebtoken` HS256 decode + validate of
//! the same claims.
//!
//! Criterion measures each case in the group `verify`; afterwards a self-timed
//! pass in the same binary runs the closures interleaved (rotating the order
//! every round to cancel drift) and prints the ratios, with `BUDGET MISSED`
//! next to any ratio outside its budget.
//!
//! `cargo bench --bench token` measures; `cargo bench --bench token -- --test`
//! (or `cargo test --benches`) only checks that everything runs. With
//! `LIVEGUARD_BENCH_BREAKDOWN=1` it also times each step of both verify paths.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group};
use hmac::{Hmac, Mac as _};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::token::{EncryptedTokens, SignedTokens};
use liveguard::{OsRandom, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const PURPOSE: &str = "user auth";
/// liveguard's MAC context for `PURPOSE`: `"token:" + purpose`.
const CONTEXT: &[u8] = b"token:user auth";

/// What a session token carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    user_id: u64,
    /// An opaque server-side session reference (32 base64url characters).
    session: String,
    live_socket_id: String,
}

/// The same claims as a JWT carries them, plus the registered time claims.
/// Written out rather than `#[serde(flatten)]`, which would slow serde down
/// and make the comparison unfair to `jsonwebtoken`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct JwtClaims {
    user_id: u64,
    session: String,
    live_socket_id: String,
    iat: u64,
    exp: u64,
}

struct Fixture {
    now: Timestamp,
    signed: SignedTokens,
    signed_token: String,
    encrypted: EncryptedTokens,
    encrypted_token: String,
    /// The derived key for `PURPOSE`, as the floor gets it.
    floor_key: [u8; 32],
    jwt_key: DecodingKey,
    jwt_validation: Validation,
    jwt: String,
    claims: Claims,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let secret: Vec<u8> = (0u8..64).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
        let ring = KeyRing::new(KeyId(1), SecretKeyBase::new(secret.clone()).expect("64-byte secret"));
        // `jsonwebtoken` validates `exp` against the real clock, so every case
        // uses a real instant, fixed once here.
        let now_s = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
        let now = Timestamp::from_unix_secs(now_s);
        let claims = Claims {
            user_id: 42,
            session: "q3Zb0Xf1VJ8wTt6mYc2nRkLpA9sHdE4u".into(),
            live_socket_id: "users_socket:42".into(),
        };

        let signed = SignedTokens::new(&ring, PURPOSE);
        let signed_token = signed.sign(&claims, now).expect("sign");
        let encrypted = EncryptedTokens::new(&ring, PURPOSE);
        let encrypted_token = encrypted.encrypt(&claims, now, &mut OsRandom).expect("encrypt");

        let mut floor_key = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(&secret, PURPOSE.as_bytes(), 1000, &mut floor_key);

        let jwt_secret = [0x5au8; 32];
        let jwt_claims = JwtClaims {
            user_id: claims.user_id,
            session: claims.session.clone(),
            live_socket_id: claims.live_socket_id.clone(),
            iat: now_s,
            exp: now_s + 86_400,
        };
        let jwt =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &jwt_claims, &EncodingKey::from_secret(&jwt_secret))
                .expect("jwt encode");

        let fixture = Fixture {
            now,
            signed,
            signed_token,
            encrypted,
            encrypted_token,
            floor_key,
            jwt_key: DecodingKey::from_secret(&jwt_secret),
            jwt_validation: Validation::new(Algorithm::HS256),
            jwt,
            claims,
        };
        fixture.check();
        fixture
    })
}

impl Fixture {
    /// Every case accepts its token and returns the same claims, outside
    /// any timing, so the comparison is between equal work.
    fn check(&self) {
        let len = self.signed_token.len();
        println!("liveguard signed token: {len} chars: {}", self.signed_token);
        assert!((115..=145).contains(&len), "signed token is {len} characters, not ~130");
        println!("liveguard encrypted token: {} chars", self.encrypted_token.len());
        println!("jsonwebtoken HS256 token: {} chars", self.jwt.len());

        assert_eq!(self.liveguard_signed().data, self.claims);
        assert_eq!(self.liveguard_encrypted().data, self.claims);
        let (signed_at_ms, max_age_s, data) = self.floor().expect("the floor accepts the liveguard token");
        assert_eq!((signed_at_ms, max_age_s, &data), (self.now.as_unix_millis(), Some(86_400), &self.claims));
        let jwt = self.jsonwebtoken();
        assert_eq!(
            (jwt.user_id, jwt.session.as_str(), jwt.live_socket_id.as_str()),
            (self.claims.user_id, self.claims.session.as_str(), self.claims.live_socket_id.as_str())
        );
    }

    fn liveguard_signed(&self) -> liveguard::token::Verified<Claims> {
        self.signed.verify::<Claims>(black_box(self.signed_token.as_str()), black_box(self.now)).expect("verifies")
    }

    fn liveguard_encrypted(&self) -> liveguard::token::Verified<Claims> {
        self.encrypted
            .decrypt::<Claims>(black_box(self.encrypted_token.as_str()), black_box(self.now))
            .expect("decrypts")
    }

    fn floor(&self) -> Option<(u64, Option<u64>, Claims)> {
        floor_verify(black_box(self.signed_token.as_str()), black_box(&self.floor_key))
    }

    fn jsonwebtoken(&self) -> JwtClaims {
        jsonwebtoken::decode::<JwtClaims>(black_box(self.jwt.as_str()), &self.jwt_key, &self.jwt_validation)
            .expect("jwt verifies")
            .claims
    }
}

/// The floor: the same token verified directly against the crates, with the
/// same MAC input as liveguard (`u32` BE length of the context, the context,
/// then the token text before the tag).
fn floor_verify(token: &str, key: &[u8; 32]) -> Option<(u64, Option<u64>, Claims)> {
    let (signed, tag_text) = token.rsplit_once('.')?;
    let (_, payload_text) = signed.rsplit_once('.')?;
    let mut tag = [0u8; 35];
    if URL_SAFE_NO_PAD.decode_slice(tag_text, &mut tag).ok()? != 32 {
        return None;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(&(CONTEXT.len() as u32).to_be_bytes());
    mac.update(CONTEXT);
    mac.update(signed.as_bytes());
    mac.verify_slice(&tag[..32]).ok()?;
    let payload = URL_SAFE_NO_PAD.decode(payload_text).ok()?;
    postcard::from_bytes(&payload).ok()
}

fn verify(c: &mut Criterion) {
    let f = fixture();
    let mut group = c.benchmark_group("verify");
    group.bench_function("liveguard_signed", |b| b.iter(|| f.liveguard_signed()));
    group.bench_function("floor", |b| b.iter(|| f.floor()));
    group.bench_function("jsonwebtoken_hs256", |b| b.iter(|| f.jsonwebtoken()));
    group.bench_function("liveguard_encrypted", |b| b.iter(|| f.liveguard_encrypted()));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = verify
}

/// Nanoseconds per call of `f`, over `iters` calls.
fn ns_per_iter<R>(iters: u32, mut f: impl FnMut() -> R) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(f());
    }
    start.elapsed().as_nanos() as f64 / f64::from(iters)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 }
}

/// The ratios, measured in this run: every round times each case once, in
/// an order that rotates from round to round.
fn ratio_pass(quick: bool) {
    let f = fixture();
    let (rounds, iters) = if quick { (3, 200) } else { (30, 20_000) };
    const NAMES: [&str; 4] = ["liveguard_signed", "floor", "jsonwebtoken_hs256", "liveguard_encrypted"];
    let mut times: [Vec<f64>; 4] = Default::default();
    // One untimed round warms caches and the allocator.
    for case in 0..4 {
        run_case(f, case, iters);
    }
    for round in 0..rounds {
        for k in 0..4 {
            let case = (round + k) % 4;
            times[case].push(run_case(f, case, iters));
        }
    }
    // Per-round ratios pair measurements taken close together in time.
    let paired = |a: usize, b: usize| {
        let mut r: Vec<f64> = times[a].iter().zip(&times[b]).map(|(x, y)| x / y).collect();
        median(&mut r)
    };
    let lg_floor_paired = paired(0, 1);
    let jwt_lg_paired = paired(2, 0);
    let medians: Vec<f64> = times.iter().map(|t| median(&mut t.clone())).collect();

    println!();
    println!(
        "ratio pass: {rounds} rounds x {iters} iterations per case, order rotated each round{}",
        if quick { " (quick mode: not a measurement)" } else { "" }
    );
    for (name, m) in NAMES.iter().zip(&medians) {
        println!("  {name:<20} median = {:.3} us", m / 1000.0);
    }
    let lg_floor = medians[0] / medians[1];
    let jwt_lg = medians[2] / medians[0];
    let missed = |ok: bool| if ok { "" } else { "  BUDGET MISSED" };
    println!(
        "ratio liveguard/floor = {lg_floor:.2} (budget <= 1.25){}  [median of per-round ratios: {lg_floor_paired:.2}]",
        missed(lg_floor <= 1.25)
    );
    println!(
        "ratio jsonwebtoken/liveguard = {jwt_lg:.1} (budget >= 5){}  [median of per-round ratios: {jwt_lg_paired:.1}]",
        missed(jwt_lg >= 5.0)
    );
    println!("liveguard verify median = {:.2} us", medians[0] / 1000.0);
    println!("liveguard encrypted decrypt median = {:.2} us (informational, no budget)", medians[3] / 1000.0);
}

fn run_case(f: &Fixture, case: usize, iters: u32) -> f64 {
    match case {
        0 => ns_per_iter(iters, || f.liveguard_signed()),
        1 => ns_per_iter(iters, || f.floor()),
        2 => ns_per_iter(iters, || f.jsonwebtoken()),
        _ => ns_per_iter(iters, || f.liveguard_encrypted()),
    }
}

/// One step of the breakdown: times itself, in nanoseconds per call.
type Step<'a> = Box<dyn Fn() -> f64 + 'a>;

/// Where the time goes (set `LIVEGUARD_BENCH_BREAKDOWN=1`): each step of
/// liveguard's verify path and of `jsonwebtoken`'s, timed on its own.
fn breakdown() {
    let f = fixture();
    let token = f.signed_token.as_str();
    let (signed, tag_text) = token.rsplit_once('.').expect("tag");
    let (_, payload_text) = signed.rsplit_once('.').expect("payload");
    let payload = URL_SAFE_NO_PAD.decode(payload_text).expect("payload b64");
    let prekeyed = Hmac::<Sha256>::new_from_slice(&f.floor_key).expect("key");
    let mut tag = [0u8; 35];
    URL_SAFE_NO_PAD.decode_slice(tag_text, &mut tag).expect("tag b64");
    let prefix = (CONTEXT.len() as u32).to_be_bytes();
    let expected_tag: [u8; 32] = tag[..32].try_into().expect("32 bytes");

    let mut jwt_parts = f.jwt.rsplitn(2, '.');
    let jwt_sig_text = jwt_parts.next().expect("sig");
    let jwt_message = jwt_parts.next().expect("message");
    let jwt_claims_text = jwt_message.split_once('.').expect("claims").1;
    let jwt_claims_json = URL_SAFE_NO_PAD.decode(jwt_claims_text).expect("claims b64");
    let jwt_sig = URL_SAFE_NO_PAD.decode(jwt_sig_text).expect("sig b64");
    let jwt_secret = [0x5au8; 32];

    let iters = 200_000;
    let steps: Vec<(&str, Step<'_>)> = vec![
        ("lg: verify (whole)", Box::new(|| ns_per_iter(iters / 4, || f.liveguard_signed()))),
        ("floor (whole)", Box::new(|| ns_per_iter(iters / 4, || f.floor()))),
        (
            "hmac: pre-keyed clone + MAC + verify",
            Box::new(|| {
                ns_per_iter(iters, || {
                    let mut mac = black_box(&prekeyed).clone();
                    mac.update(&prefix);
                    mac.update(CONTEXT);
                    mac.update(black_box(signed).as_bytes());
                    mac.verify_slice(&tag[..32]).is_ok()
                })
            }),
        ),
        (
            "hmac: pre-keyed clone + MAC, finalize only",
            Box::new(|| {
                ns_per_iter(iters, || {
                    let mut mac = black_box(&prekeyed).clone();
                    mac.update(&prefix);
                    mac.update(CONTEXT);
                    mac.update(black_box(signed).as_bytes());
                    mac.finalize().into_bytes()
                })
            }),
        ),
        (
            "tag compare: subtle ct_eq, 32 bytes",
            Box::new(|| {
                use subtle::ConstantTimeEq as _;
                ns_per_iter(iters, || bool::from(black_box(&tag[..32]).ct_eq(black_box(&expected_tag[..]))))
            }),
        ),
        (
            "sha256: digest of 55 bytes (1 block)",
            Box::new(|| ns_per_iter(iters, || <Sha256 as sha2::Digest>::digest(black_box(&[7u8; 55])))),
        ),
        (
            "sha256: digest of 119 bytes (2 blocks)",
            Box::new(|| ns_per_iter(iters, || <Sha256 as sha2::Digest>::digest(black_box(&[7u8; 119])))),
        ),
        (
            "hmac: new_from_slice + MAC + verify",
            Box::new(|| {
                ns_per_iter(iters, || {
                    let mut mac = Hmac::<Sha256>::new_from_slice(black_box(&f.floor_key)).expect("key");
                    mac.update(&prefix);
                    mac.update(CONTEXT);
                    mac.update(black_box(signed).as_bytes());
                    mac.verify_slice(&tag[..32]).is_ok()
                })
            }),
        ),
        (
            "hmac: new_from_slice only",
            Box::new(|| ns_per_iter(iters, || Hmac::<Sha256>::new_from_slice(black_box(&f.floor_key)).expect("key"))),
        ),
        (
            "b64: tag decode_slice",
            Box::new(|| {
                ns_per_iter(iters, || {
                    let mut tag = [0u8; 35];
                    URL_SAFE_NO_PAD.decode_slice(black_box(tag_text), &mut tag).ok().map(|_| tag)
                })
            }),
        ),
        (
            "b64: payload decode (Vec)",
            Box::new(|| ns_per_iter(iters, || URL_SAFE_NO_PAD.decode(black_box(payload_text)))),
        ),
        (
            "b64: payload decode, Zeroizing drop",
            Box::new(|| {
                ns_per_iter(iters, || {
                    zeroize::Zeroizing::new(URL_SAFE_NO_PAD.decode(black_box(payload_text)).expect("b64")).len()
                })
            }),
        ),
        (
            "b64: payload into [u8; 96], Zeroizing (all 96)",
            Box::new(|| {
                ns_per_iter(iters, || {
                    let mut buf = zeroize::Zeroizing::new([0u8; 96]);
                    URL_SAFE_NO_PAD.decode_slice(black_box(payload_text), &mut buf[..]).ok()
                })
            }),
        ),
        (
            "b64: payload into [u8; 96], wipe decoded only",
            Box::new(|| {
                ns_per_iter(iters, || {
                    let mut buf = [0u8; 96];
                    let n = URL_SAFE_NO_PAD.decode_slice(black_box(payload_text), &mut buf[..]).unwrap_or(0);
                    zeroize::Zeroize::zeroize(&mut buf[..n]);
                    n
                })
            }),
        ),
        (
            "b64: tag encode_slice (compare as text)",
            Box::new(|| {
                ns_per_iter(iters, || {
                    let mut text = [0u8; 44];
                    URL_SAFE_NO_PAD.encode_slice(black_box(&expected_tag), &mut text).ok().map(|_| text)
                })
            }),
        ),
        (
            "postcard: from_bytes whole tuple",
            Box::new(|| {
                ns_per_iter(iters, || postcard::from_bytes::<(u64, Option<u64>, Claims)>(black_box(&payload)).ok())
            }),
        ),
        (
            "postcard: take (times) + take (Claims)",
            Box::new(|| {
                ns_per_iter(iters, || {
                    let ((a, b), rest) = postcard::take_from_bytes::<(u64, Option<u64>)>(black_box(&payload)).ok()?;
                    let (c, rest) = postcard::take_from_bytes::<Claims>(rest).ok()?;
                    rest.is_empty().then_some((a, b, c))
                })
            }),
        ),
        ("jwt: decode (whole)", Box::new(|| ns_per_iter(iters / 4, || f.jsonwebtoken()))),
        (
            "jwt: decode_header",
            Box::new(|| ns_per_iter(iters, || jsonwebtoken::decode_header(black_box(f.jwt.as_str())).ok())),
        ),
        (
            "jwt: HMAC new_from_slice + MAC + verify",
            Box::new(|| {
                ns_per_iter(iters, || {
                    let mut mac = Hmac::<Sha256>::new_from_slice(black_box(&jwt_secret)).expect("key");
                    mac.update(black_box(jwt_message).as_bytes());
                    mac.verify_slice(&jwt_sig).is_ok()
                })
            }),
        ),
        (
            "jwt: b64 claims + serde_json x2",
            Box::new(|| {
                ns_per_iter(iters, || {
                    let json = URL_SAFE_NO_PAD.decode(black_box(jwt_claims_text)).expect("b64");
                    let a = serde_json::from_slice::<JwtClaims>(&json).ok();
                    let b = serde_json::from_slice::<serde_json::Value>(&json).ok();
                    (a, b)
                })
            }),
        ),
        (
            "jwt: serde_json -> JwtClaims",
            Box::new(|| ns_per_iter(iters, || serde_json::from_slice::<JwtClaims>(black_box(&jwt_claims_json)).ok())),
        ),
        ("jwt: SystemTime::now", Box::new(|| ns_per_iter(iters, SystemTime::now))),
    ];
    println!();
    println!("breakdown (median of 7 runs, ns per call):");
    for (name, step) in &steps {
        step();
        let mut runs: Vec<f64> = (0..7).map(|_| step()).collect();
        println!("  {name:<46} {:>8.1}", median(&mut runs));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    benches();
    Criterion::default().configure_from_args().final_summary();
    if has("--list") {
        return;
    }
    // Criterion only measures when cargo passes `--bench` (`cargo bench`);
    // under `cargo test --benches` or `-- --test` everything runs once.
    ratio_pass(has("--test") || !has("--bench"));
    if std::env::var_os("LIVEGUARD_BENCH_BREAKDOWN").is_some() {
        breakdown();
    }
}
