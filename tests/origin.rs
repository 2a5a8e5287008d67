//! Tests of the public Origin policy API: the `check_origin` matrix of
//! Phoenix (phx:test/phoenix/socket/transport_test.exs), the headers browsers
//! never send, and property tests that no input makes `check` panic.

use std::sync::{Arc, Mutex};

use liveguard::origin::{Origin, OriginConfigError, OriginPolicy, OriginRejection, RequestTarget};
use proptest::prelude::*;

const REQ: RequestTarget<'static> = RequestTarget::new("https", "example.com", 443);

fn allow_list(entries: &[&str]) -> OriginPolicy {
    match OriginPolicy::allow_list(entries) {
        Ok(policy) => policy,
        Err(e) => panic!("allow list {entries:?} refused: {e}"),
    }
}

fn host_of(url: &str) -> OriginPolicy {
    match OriginPolicy::host_of(url) {
        Ok(policy) => policy,
        Err(e) => panic!("host_of({url:?}) refused: {e}"),
    }
}

fn parse(header: &str) -> Origin {
    match Origin::parse(header) {
        Ok(origin) => origin,
        Err(e) => panic!("{header:?} did not parse: {e}"),
    }
}

#[track_caller]
fn allows(policy: &OriginPolicy, origin: &str) {
    assert_eq!(policy.check(Some(origin), &REQ), Ok(()), "{policy:?} refused {origin:?}");
}

#[track_caller]
fn refuses(policy: &OriginPolicy, origin: &str, why: OriginRejection) {
    assert_eq!(policy.check(Some(origin), &REQ), Err(why), "{policy:?} on {origin:?}");
}

/// One policy of every kind but `off`, each of which allows
/// `https://example.com` for the request [`REQ`].
fn checking_policies() -> Vec<OriginPolicy> {
    vec![
        host_of("https://example.com"),
        allow_list(&["//example.com"]),
        allow_list(&["//*.example.com", "https://other.com:8443"]),
        OriginPolicy::same_as_request(),
        OriginPolicy::custom(|o: &Origin| o.host() == "example.com"),
    ]
}

// --- off ---------------------------------------------------------------

#[test]
fn off_allows_everything() {
    let long = "x".repeat(100_000);
    for policy in [OriginPolicy::off(), OriginPolicy::off().refuse_missing(true)] {
        assert!(policy.is_off());
        assert!(!policy.refuses_missing());
        assert_eq!(policy.check(None, &REQ), Ok(()));
        for origin in ["https://evil.com", "null", "file://", "", "garbage", "https://example.com/path", long.as_str()]
        {
            allows(&policy, origin);
        }
    }
}

#[test]
fn only_off_is_off() {
    for policy in checking_policies() {
        assert!(!policy.is_off(), "{policy:?}");
    }
}

// --- host_of (check_origin: true) ----------------------------------------

#[test]
fn host_of_ignores_scheme_and_port() {
    let policy = host_of("https://example.com");
    for origin in [
        "https://example.com",
        "http://example.com",
        "http://example.com:4000",
        "https://example.com:8443",
        "ws://example.com",
        "HTTPS://EXAMPLE.COM",
    ] {
        allows(&policy, origin);
    }
}

#[test]
fn host_of_refuses_other_hosts() {
    let policy = host_of("https://example.com");
    for origin in [
        "https://other.com",
        "https://www.example.com",
        "https://prefix-example.com",
        "https://example.com.evil.com",
        "https://example.co",
        "https://example.com.",
    ] {
        refuses(&policy, origin, OriginRejection::NotAllowed);
    }
}

#[test]
fn host_of_accepts_the_usual_endpoint_url_forms() {
    for url in [
        "https://example.com",
        "http://example.com:4000",
        "https://example.com/",
        "//example.com",
        "//EXAMPLE.com:4000",
    ] {
        allows(&host_of(url), "https://example.com");
    }
}

#[test]
fn host_of_refuses_bad_endpoint_urls() {
    for (url, error) in [
        ("", OriginConfigError::NoHost),
        ("example.com", OriginConfigError::NoHost),
        ("localhost:4000", OriginConfigError::NoHost),
        ("null", OriginConfigError::NoHost),
        ("file:///srv", OriginConfigError::NoHost),
        ("https://", OriginConfigError::NoHost),
        ("https://example.com/app", OriginConfigError::NotAnOrigin),
        ("https://example.com?x=1", OriginConfigError::NotAnOrigin),
        ("https://*.example.com", OriginConfigError::BadWildcard),
        ("//*.example.com", OriginConfigError::BadWildcard),
    ] {
        assert_eq!(OriginPolicy::host_of(url).map(|_| ()), Err(error), "{url:?}");
    }
}

// --- allow list ---------------------------------------------------------

#[test]
fn wildcard_matches_apex_and_subdomains_at_any_depth() {
    for entry in ["//*.example.com", "https://*.example.com"] {
        let policy = allow_list(&[entry]);
        for origin in [
            "https://example.com",
            "https://www.example.com",
            "https://a.b.example.com",
            "https://a.b.c.d.example.com",
            "https://WWW.EXAMPLE.COM",
        ] {
            allows(&policy, origin);
        }
        for origin in [
            "https://prefix-example.com",
            "https://wwwexample.com",
            "https://example.com.evil.com",
            "https://example.co",
            "https://evil.com",
            "https://com",
        ] {
            refuses(&policy, origin, OriginRejection::NotAllowed);
        }
    }
}

#[test]
fn wildcard_with_scheme_pins_scheme_and_default_port() {
    let policy = allow_list(&["https://*.example.com"]);
    refuses(&policy, "http://www.example.com", OriginRejection::NotAllowed);
    refuses(&policy, "https://www.example.com:8443", OriginRejection::NotAllowed);
    let any = allow_list(&["//*.example.com"]);
    allows(&any, "http://www.example.com");
    allows(&any, "https://www.example.com:8443");
}

#[test]
fn subdomains_do_not_match_without_wildcard() {
    let policy = allow_list(&["//example.com"]);
    allows(&policy, "https://example.com");
    for origin in ["https://www.example.com", "https://a.b.example.com"] {
        refuses(&policy, origin, OriginRejection::NotAllowed);
    }
}

#[test]
fn allow_list_host_only() {
    let policy = allow_list(&["//origin1.com", "//origin2.com"]);
    for origin in [
        "https://origin1.com",
        "http://origin1.com",
        "http://origin1.com:4000",
        "https://origin2.com",
        "ws://origin2.com",
    ] {
        allows(&policy, origin);
    }
    for origin in ["https://origin3.com", "https://www.origin1.com"] {
        refuses(&policy, origin, OriginRejection::NotAllowed);
    }
}

#[test]
fn allow_list_scheme_and_host_implies_the_default_port() {
    let policy = allow_list(&["http://scheme.com"]);
    allows(&policy, "http://scheme.com");
    refuses(&policy, "https://scheme.com", OriginRejection::NotAllowed);
    refuses(&policy, "http://scheme.com:8080", OriginRejection::NotAllowed);
    refuses(&policy, "ws://scheme.com", OriginRejection::NotAllowed);

    // Explicit default port in the entry means the same thing.
    let explicit = allow_list(&["https://scheme.com:443"]);
    allows(&explicit, "https://scheme.com");
    refuses(&explicit, "https://scheme.com:444", OriginRejection::NotAllowed);
}

#[test]
fn allow_list_scheme_host_and_port() {
    let policy = allow_list(&["https://port.com:8443"]);
    allows(&policy, "https://port.com:8443");
    refuses(&policy, "https://port.com", OriginRejection::NotAllowed);
    refuses(&policy, "http://port.com:8443", OriginRejection::NotAllowed);
    refuses(&policy, "https://port.com:8444", OriginRejection::NotAllowed);
}

#[test]
fn allow_list_port_without_scheme() {
    let policy = allow_list(&["//port.com:81"]);
    allows(&policy, "http://port.com:81");
    allows(&policy, "https://port.com:81");
    refuses(&policy, "http://port.com", OriginRejection::NotAllowed);
    refuses(&policy, "https://port.com:82", OriginRejection::NotAllowed);

    // A scheme-relative entry pinning a port that is some scheme's default.
    let p80 = allow_list(&["//port.com:80"]);
    allows(&p80, "http://port.com");
    allows(&p80, "https://port.com:80");
    refuses(&p80, "https://port.com", OriginRejection::NotAllowed);
    let p443 = allow_list(&["//port.com:443"]);
    allows(&p443, "https://port.com");
    refuses(&p443, "http://port.com", OriginRejection::NotAllowed);
}

#[test]
fn allow_list_non_special_schemes() {
    // Mobile shells (Capacitor, Ionic) and extensions send such origins.
    let policy = allow_list(&["capacitor://localhost", "chrome-extension://abcdef"]);
    allows(&policy, "capacitor://localhost");
    allows(&policy, "chrome-extension://abcdef");
    allows(&policy, "capacitor://LOCALHOST");
    refuses(&policy, "http://localhost", OriginRejection::NotAllowed);
    refuses(&policy, "chrome-extension://evil", OriginRejection::NotAllowed);
}

#[test]
fn allow_list_unicode_entry_matches_punycode_origin() {
    let policy = allow_list(&["https://bücher.de"]);
    allows(&policy, "https://xn--bcher-kva.de");
    // Browsers never send Unicode hosts.
    refuses(&policy, "https://bücher.de", OriginRejection::Malformed);
}

#[test]
fn allow_list_accepts_strings_and_owned_entries() {
    let owned: Vec<String> = vec!["//a.com".into(), "https://b.com".into()];
    let policy = OriginPolicy::allow_list(&owned);
    assert!(policy.is_ok_and(|p| p.check(Some("https://b.com"), &REQ).is_ok()));
    let policy = OriginPolicy::allow_list(owned);
    assert!(policy.is_ok_and(|p| p.check(Some("http://a.com"), &REQ).is_ok()));
}

#[test]
fn invalid_allow_list_entries_are_configuration_errors() {
    for (entry, error) in [
        ("", OriginConfigError::NoHost),
        ("example.com", OriginConfigError::NoHost),
        ("*.example.com", OriginConfigError::NoHost),
        ("localhost:4000", OriginConfigError::NoHost),
        ("null", OriginConfigError::NoHost),
        ("file:///etc/passwd", OriginConfigError::NoHost),
        ("mailto:a@example.com", OriginConfigError::NoHost),
        ("//", OriginConfigError::NoHost),
        ("https://", OriginConfigError::NoHost),
        ("https://exa mple.com", OriginConfigError::NoHost),
        ("https://example.com:99999", OriginConfigError::NoHost),
        ("https://example.com/app", OriginConfigError::NotAnOrigin),
        ("//example.com?x", OriginConfigError::NotAnOrigin),
        ("//example.com#x", OriginConfigError::NotAnOrigin),
        ("https://user:pw@example.com", OriginConfigError::NotAnOrigin),
        ("//*", OriginConfigError::BadWildcard),
        ("//*.", OriginConfigError::BadWildcard),
        ("//*example.com", OriginConfigError::BadWildcard),
        ("//a.*.example.com", OriginConfigError::BadWildcard),
        ("https://*.*.example.com", OriginConfigError::BadWildcard),
    ] {
        assert_eq!(OriginPolicy::allow_list([entry]).map(|_| ()), Err(error), "{entry:?}");
        // One bad entry spoils the whole list.
        assert_eq!(
            OriginPolicy::allow_list(["//good.com", entry]).map(|_| ()),
            Err(error),
            "{entry:?} after a good one"
        );
    }
}

#[test]
fn empty_allow_list_is_a_configuration_error() {
    assert_eq!(OriginPolicy::allow_list(Vec::<&str>::new()).map(|_| ()), Err(OriginConfigError::EmptyAllowList));
}

#[test]
fn allow_list_tolerates_a_trailing_slash_in_entries() {
    let policy = allow_list(&["https://example.com/", "//other.com:81/"]);
    allows(&policy, "https://example.com");
    allows(&policy, "http://other.com:81");
}

// --- same_as_request (check_origin: :conn) --------------------------------

#[test]
fn same_as_request_requires_scheme_host_and_port() {
    let policy = OriginPolicy::same_as_request();
    let https = RequestTarget::new("https", "a.com", 443);
    let local = RequestTarget::new("http", "localhost", 4000);

    assert_eq!(policy.check(Some("https://a.com"), &https), Ok(()));
    assert_eq!(policy.check(Some("http://localhost:4000"), &local), Ok(()));
    // Case of the request's parts does not matter.
    let upper = RequestTarget::new("HTTPS", "A.COM", 443);
    assert_eq!(policy.check(Some("https://a.com"), &upper), Ok(()));

    for (origin, request) in [
        ("http://a.com", https),           // scheme
        ("https://a.com:8443", https),     // port
        ("https://b.com", https),          // host
        ("https://www.a.com", https),      // subdomain
        ("ws://a.com", https),             // ws origin
        ("wss://a.com", https),            // wss origin, same default port
        ("https://localhost:4000", local), // scheme
        ("http://localhost", local),       // default port 80 != 4000
        ("ws://localhost:4000", local),    // ws origin
    ] {
        assert_eq!(
            policy.check(Some(origin), &request),
            Err(OriginRejection::NotAllowed),
            "{origin:?} against {request:?}"
        );
    }
}

#[test]
fn same_as_request_default_ports() {
    let policy = OriginPolicy::same_as_request();
    assert_eq!(policy.check(Some("http://a.com"), &RequestTarget::new("http", "a.com", 80)), Ok(()));
    assert_eq!(
        policy.check(Some("https://a.com"), &RequestTarget::new("https", "a.com", 80)),
        Err(OriginRejection::NotAllowed)
    );
}

#[test]
fn same_as_request_ignores_a_policy_irrelevant_request_for_other_kinds() {
    // Only same_as_request reads the request target.
    let elsewhere = RequestTarget::new("http", "unrelated.test", 1);
    let policy = allow_list(&["https://a.com"]);
    assert_eq!(policy.check(Some("https://a.com"), &elsewhere), Ok(()));
    let policy = host_of("https://a.com");
    assert_eq!(policy.check(Some("https://a.com"), &elsewhere), Ok(()));
}

// --- custom ----------------------------------------------------------------

#[test]
fn custom_predicate_sees_the_parsed_origin() {
    let seen: Arc<Mutex<Vec<Origin>>> = Arc::default();
    let record = Arc::clone(&seen);
    let policy = OriginPolicy::custom(move |origin: &Origin| {
        if let Ok(mut seen) = record.lock() {
            seen.push(origin.clone());
        }
        origin.host().ends_with(".trusted.test")
    });

    allows(&policy, "HTTPS://App.Trusted.Test:8443");
    refuses(&policy, "http://evil.test", OriginRejection::NotAllowed);

    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].scheme(), "https");
    assert_eq!(seen[0].host(), "app.trusted.test");
    assert_eq!(seen[0].port(), Some(8443));
    assert_eq!(seen[1], parse("http://evil.test"));
    assert_eq!(seen[1].port(), Some(80));
}

#[test]
fn custom_predicate_is_not_called_for_unparsable_or_missing_origins() {
    let calls = Arc::new(Mutex::new(0_usize));
    let count = Arc::clone(&calls);
    let policy = OriginPolicy::custom(move |_: &Origin| {
        if let Ok(mut n) = count.lock() {
            *n += 1;
        }
        true
    });

    refuses(&policy, "null", OriginRejection::Opaque);
    refuses(&policy, "file:///index.html", OriginRejection::Opaque);
    refuses(&policy, "garbage", OriginRejection::Malformed);
    refuses(&policy, "", OriginRejection::Malformed);
    refuses(&policy, "https://a.com/path", OriginRejection::Malformed);
    assert_eq!(policy.check(None, &REQ), Ok(()));
    let strict = policy.clone().refuse_missing(true);
    assert_eq!(strict.check(None, &REQ), Err(OriginRejection::Missing));
    assert_eq!(calls.lock().map(|n| *n).ok(), Some(0));

    // And it is called, once, for a parsable one.
    allows(&policy, "https://a.com");
    assert_eq!(calls.lock().map(|n| *n).ok(), Some(1));
}

#[test]
fn custom_policy_debug_says_only_custom() {
    let secret = String::from("do-not-print-me");
    let policy = OriginPolicy::custom(move |o: &Origin| o.host() == secret);
    let debug = format!("{policy:?}");
    assert!(debug.contains("Custom"), "{debug}");
    assert!(!debug.contains("do-not-print-me"), "{debug}");
}

// --- missing Origin ---------------------------------------------------------

#[test]
fn missing_origin_is_allowed_by_default() {
    for policy in checking_policies() {
        assert!(!policy.refuses_missing(), "{policy:?}");
        assert_eq!(policy.check(None, &REQ), Ok(()), "{policy:?}");
    }
}

#[test]
fn missing_origin_is_refused_when_configured() {
    for policy in checking_policies() {
        let strict = policy.refuse_missing(true);
        assert!(strict.refuses_missing(), "{strict:?}");
        assert_eq!(strict.check(None, &REQ), Err(OriginRejection::Missing), "{strict:?}");
        // Present origins are judged as before.
        allows(&strict, "https://example.com");
        refuses(&strict, "https://evil.com", OriginRejection::NotAllowed);
        // And the setting can be turned back off.
        let lax = strict.refuse_missing(false);
        assert_eq!(lax.check(None, &REQ), Ok(()), "{lax:?}");
    }
}

// --- headers browsers do (not) send ------------------------------------------

#[test]
fn opaque_origins_are_refused_by_every_checking_policy() {
    for policy in checking_policies() {
        for origin in [
            "null",
            "NULL",
            "file://",
            "file:///etc/passwd",
            "data:text/html,hi",
            "about:blank",
            "javascript:alert(1)",
            "foo://",
        ] {
            refuses(&policy, origin, OriginRejection::Opaque);
        }
    }
}

#[test]
fn malformed_origins_are_refused_by_every_checking_policy() {
    let long_host = format!("https://{}.example.com", "a".repeat(5000));
    let long_garbage = "\u{1F600}".repeat(10_000);
    for policy in checking_policies() {
        for origin in [
            "",
            " ",
            "garbage",
            "example.com",
            "//example.com",
            "https://",
            "https:example.com",
            "https:///example.com",
            " https://example.com",
            "https://example.com ",
            "https://exa\tmple.com",
            "https://example.com/",
            "https://example.com/path",
            "https://example.com?x=1",
            "https://example.com#x",
            "https://user@example.com",
            "https://user:pw@example.com",
            "https://user@example.com/",
            "https://example.com/?x",
            "https://example.com/#x",
            "https://example.com/./",
            "https://example.com/..",
            "https://example.com:443",
            "https://example.com:",
            "https://example.com:99999",
            "https://ex%61mple.com",
            "http://0x7f.1",
            "http://127.1",
            "https://*.example.com",
            "https://example.com, https://evil.com",
            long_host.as_str(),
            long_garbage.as_str(),
        ] {
            refuses(&policy, origin, OriginRejection::Malformed);
        }
    }
}

#[test]
fn uppercase_origins_match_lowercase_configuration() {
    allows(&host_of("https://example.com"), "HTTPS://EXAMPLE.COM");
    allows(&allow_list(&["https://example.com"]), "HTTPS://EXAMPLE.COM");
    allows(&allow_list(&["//*.EXAMPLE.com"]), "https://WWW.Example.COM");
    allows(&OriginPolicy::same_as_request(), "HTTPS://Example.Com");
    let o = parse("HTTPS://EXAMPLE.COM:8443");
    assert_eq!((o.scheme(), o.host(), o.port()), ("https", "example.com", Some(8443)));
}

#[test]
fn ipv6_hosts() {
    let origin = "http://[::1]:4000";
    let o = parse(origin);
    assert_eq!((o.scheme(), o.host(), o.port()), ("http", "[::1]", Some(4000)));

    let list = allow_list(&["//[::1]:4000"]);
    allows(&list, origin);
    refuses(&list, "http://[::1]:4001", OriginRejection::NotAllowed);
    refuses(&list, "http://[::2]:4000", OriginRejection::NotAllowed);
    allows(&host_of("http://[::1]"), origin);

    let request = RequestTarget::new("http", "[::1]", 4000);
    let same = OriginPolicy::same_as_request();
    assert_eq!(same.check(Some(origin), &request), Ok(()));
    // Browsers send the shortest form of the address.
    refuses(&list, "http://[0:0::1]:4000", OriginRejection::Malformed);
    refuses(&list, "http://::1:4000", OriginRejection::Malformed);
}

#[test]
fn origin_parse_exposes_scheme_host_and_port() {
    for (header, scheme, host, port) in [
        ("https://example.com", "https", "example.com", Some(443)),
        ("http://example.com", "http", "example.com", Some(80)),
        ("http://localhost:4000", "http", "localhost", Some(4000)),
        ("wss://example.com", "wss", "example.com", Some(443)),
        ("http://127.0.0.1:8080", "http", "127.0.0.1", Some(8080)),
        ("https://xn--bcher-kva.de", "https", "xn--bcher-kva.de", Some(443)),
        ("capacitor://localhost", "capacitor", "localhost", None),
        ("myapp://Host:99", "myapp", "host", Some(99)),
    ] {
        let o = parse(header);
        assert_eq!((o.scheme(), o.host(), o.port()), (scheme, host, port), "{header:?}");
    }
    assert_eq!(Origin::parse("null"), Err(OriginRejection::Opaque));
    assert_eq!(Origin::parse("nope"), Err(OriginRejection::Malformed));
}

// --- errors and traits --------------------------------------------------------

#[test]
fn rejections_display_distinct_messages_and_are_errors() {
    let all =
        [OriginRejection::Missing, OriginRejection::Opaque, OriginRejection::Malformed, OriginRejection::NotAllowed];
    let messages: Vec<String> = all.iter().map(ToString::to_string).collect();
    for (i, m) in messages.iter().enumerate() {
        assert!(!m.is_empty());
        assert!(!messages[..i].contains(m), "duplicate message {m:?}");
    }
    let boxed: Box<dyn std::error::Error> = Box::new(OriginRejection::NotAllowed);
    assert!(boxed.to_string().contains("not allowed"));
    let copy = all[0];
    assert_eq!(copy, all[0]);
}

#[test]
fn config_errors_display_distinct_messages_and_are_errors() {
    let all = [
        OriginConfigError::NoHost,
        OriginConfigError::NotAnOrigin,
        OriginConfigError::BadWildcard,
        OriginConfigError::EmptyAllowList,
    ];
    let messages: Vec<String> = all.iter().map(ToString::to_string).collect();
    for (i, m) in messages.iter().enumerate() {
        assert!(!m.is_empty());
        assert!(!messages[..i].contains(m), "duplicate message {m:?}");
    }
    assert!(OriginConfigError::NoHost.to_string().contains("//example.com"));
    let boxed: Box<dyn std::error::Error> = Box::new(OriginConfigError::BadWildcard);
    assert!(boxed.to_string().contains("wildcard"));
}

#[test]
fn cloned_policies_behave_the_same() {
    for policy in checking_policies() {
        let clone = policy.clone();
        for origin in ["https://example.com", "https://evil.com", "null"] {
            assert_eq!(policy.check(Some(origin), &REQ), clone.check(Some(origin), &REQ), "{policy:?} {origin:?}");
        }
    }
}

// --- properties ---------------------------------------------------------------

fn every_policy() -> Vec<OriginPolicy> {
    let mut all = checking_policies();
    all.push(OriginPolicy::off());
    all.extend(checking_policies().into_iter().map(|p| p.refuse_missing(true)));
    all.push(allow_list(&["capacitor://localhost", "//[::1]:4000", "http://a.b:1"]));
    all
}

/// Strings that look like origins, to get past the parser more often than
/// arbitrary text does.
fn origin_like() -> impl Strategy<Value = String> {
    (
        "(|http|HTTPS|ws|file|x-app|[a-zA-Z*:/]{0,4})",
        "(://|:|//|:///|[:/@ .]{0,3})",
        "[a-zA-Z0-9.*\\-\\[\\]:%@ \u{e9}]{0,30}",
        "(|[:/?#][0-9a-z/]{0,8})",
    )
        .prop_map(|(s, sep, host, tail)| format!("{s}{sep}{host}{tail}"))
}

proptest! {
    #[test]
    fn check_never_panics_on_any_string(origin in any::<String>()) {
        for policy in every_policy() {
            let result = policy.check(Some(&origin), &REQ);
            if policy.is_off() {
                prop_assert_eq!(result, Ok(()));
            } else {
                prop_assert_ne!(result, Err(OriginRejection::Missing));
            }
        }
    }

    #[test]
    fn check_never_panics_on_origin_like_strings(
        origin in origin_like(),
        scheme in "[a-zA-Z]{0,6}",
        host in "[a-zA-Z0-9.:\\[\\]]{0,12}",
        port in any::<u16>(),
    ) {
        let request = RequestTarget::new(&scheme, &host, port);
        for policy in every_policy() {
            let _ = policy.check(Some(&origin), &request);
            // A header refused as malformed or opaque is refused by every
            // checking policy alike.
            if let Err(why @ (OriginRejection::Opaque | OriginRejection::Malformed)) =
                Origin::parse(&origin)
                && !policy.is_off()
            {
                prop_assert_eq!(policy.check(Some(&origin), &request), Err(why));
            }
        }
    }

    #[test]
    fn construction_never_panics(entry in prop_oneof![origin_like(), any::<String>()]) {
        let list = OriginPolicy::allow_list([entry.as_str()]);
        let host = OriginPolicy::host_of(&entry);
        // Whatever host_of accepts, an allow list accepts too.
        if host.is_ok() {
            prop_assert!(list.is_ok(), "{:?}", entry);
        }
        if let Ok(policy) = list {
            let _ = policy.check(Some(&entry), &REQ);
        }
    }

    #[test]
    fn canonical_origins_round_trip(
        scheme in prop_oneof![Just("http"), Just("https")],
        labels in prop::collection::vec("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", 1..4),
        tld in "[a-z]{2,6}",
        port in prop::option::of(1u16..),
    ) {
        // Labels starting `xn--` must be valid punycode; leave them out.
        prop_assume!(!labels.iter().any(|l| l.starts_with("xn--")));
        let host = format!("{}.{tld}", labels.join("."));
        let default = if scheme == "http" { 80 } else { 443 };
        let origin = match port {
            Some(p) if p != default => format!("{scheme}://{host}:{p}"),
            _ => format!("{scheme}://{host}"),
        };
        let o = Origin::parse(&origin);
        prop_assert!(o.is_ok(), "{:?} -> {:?}", origin, o);
        let o = parse(&origin);
        prop_assert_eq!(o.scheme(), scheme);
        prop_assert_eq!(o.host(), host.as_str());
        prop_assert_eq!(o.port(), Some(port.unwrap_or(default)));

        // An allow list naming exactly this origin allows it...
        let exact = allow_list(&[origin.as_str()]);
        prop_assert_eq!(exact.check(Some(&origin), &REQ), Ok(()));
        // ...and the same request, so does same_as_request.
        let request = RequestTarget::new(scheme, &host, port.unwrap_or(default));
        prop_assert_eq!(OriginPolicy::same_as_request().check(Some(&origin), &request), Ok(()));
        // A wildcard over its parent allows it; a wildcard over a sibling
        // sharing its text as a prefix does not.
        let parent = format!("//*.{tld}");
        prop_assert_eq!(allow_list(&[parent.as_str()]).check(Some(&origin), &REQ), Ok(()));
        let glued = format!("{scheme}://z{host}");
        let wildcard = format!("//*.{host}");
        prop_assert_eq!(
            allow_list(&[wildcard.as_str()]).check(Some(&glued), &REQ),
            Err(OriginRejection::NotAllowed)
        );
    }
}
