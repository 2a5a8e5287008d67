//! `OriginPolicy::check` under every policy kind with the input as the
//! `Origin` header, `Origin::parse` invariants, and policies built from the
//! input as configuration.
#![no_main]

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use liveguard::origin::{Origin, OriginPolicy, OriginRejection, RequestTarget};

static CUSTOM_CALLS: AtomicUsize = AtomicUsize::new(0);

const REQUEST: RequestTarget<'static> = RequestTarget::new("https", "example.com", 443);
const ALLOW_LIST: [&str; 5] =
    ["//*.example.com", "https://app.example.org:8443", "http://localhost:4000", "capacitor://localhost", "//[::1]"];

struct Policies {
    off: OriginPolicy,
    host_of: OriginPolicy,
    allow_list: OriginPolicy,
    same_as_request: OriginPolicy,
    custom: OriginPolicy,
}

static POLICIES: LazyLock<Policies> = LazyLock::new(|| Policies {
    off: OriginPolicy::off(),
    host_of: OriginPolicy::host_of("https://example.com").expect("valid"),
    allow_list: OriginPolicy::allow_list(ALLOW_LIST).expect("valid"),
    same_as_request: OriginPolicy::same_as_request(),
    custom: OriginPolicy::custom(|origin| {
        CUSTOM_CALLS.fetch_add(1, Ordering::SeqCst);
        origin.host().ends_with(".example.net")
    }),
});

/// The allow list above, written independently.
fn allow_list_model(o: &Origin) -> bool {
    let (scheme, host, port) = (o.scheme(), o.host(), o.port());
    let subdomain = host == "example.com" || (host.ends_with(".example.com") && host.len() > ".example.com".len());
    subdomain
        || (scheme == "https" && host == "app.example.org" && port == Some(8443))
        || (scheme == "http" && host == "localhost" && port == Some(4000))
        || (scheme == "capacitor" && host == "localhost")
        || host == "[::1]"
}

fn check_origin_invariants(header: &str, o: &Origin) {
    assert!(header.len() <= 2048);
    assert!(!o.scheme().is_empty() && !o.host().is_empty(), "{o:?}");
    assert_eq!(o.scheme(), o.scheme().to_ascii_lowercase());
    assert_eq!(o.host(), o.host().to_ascii_lowercase());
    assert!(!o.host().contains('*'), "{o:?}");
    assert!(!header.contains(char::is_whitespace), "{header:?} parsed as {o:?}");
    if matches!(o.scheme(), "http" | "https" | "ws" | "wss" | "ftp") {
        assert!(o.port().is_some(), "{o:?}");
    }
    // "Accepts exactly the serialization browsers send, up to ASCII case."
    assert_eq!(Origin::parse(&header.to_ascii_lowercase()).as_ref(), Ok(o), "{header:?} lowercased");
}

fn check_header(p: &Policies, header: Option<&str>) {
    // `off` allows everything, even with `refuse_missing`.
    assert_eq!(p.off.check(header, &REQUEST), Ok(()));
    assert_eq!(p.off.clone().refuse_missing(true).check(header, &REQUEST), Ok(()));

    let policies = [&p.host_of, &p.allow_list, &p.same_as_request, &p.custom];
    let Some(header) = header else {
        for policy in policies {
            assert_eq!(policy.check(None, &REQUEST), Ok(()));
            assert_eq!(policy.clone().refuse_missing(true).check(None, &REQUEST), Err(OriginRejection::Missing));
        }
        return;
    };

    let parsed = Origin::parse(header);
    let before = CUSTOM_CALLS.load(Ordering::SeqCst);
    let results: Vec<_> = policies.iter().map(|&policy| policy.check(Some(header), &REQUEST)).collect();
    let refusing: Vec<_> =
        policies.iter().map(|&policy| policy.clone().refuse_missing(true).check(Some(header), &REQUEST)).collect();
    // The header is present: `refuse_missing` changes nothing.
    assert_eq!(results, refusing);
    let calls = CUSTOM_CALLS.load(Ordering::SeqCst) - before;

    match &parsed {
        Err(rejection) => {
            assert!(matches!(rejection, OriginRejection::Opaque | OriginRejection::Malformed), "{rejection:?}");
            for result in &results {
                assert_eq!(result, &Err(*rejection), "{header:?}");
            }
            assert_eq!(calls, 0, "the custom predicate saw an unparsable origin");
            if header.eq_ignore_ascii_case("null") {
                assert_eq!(*rejection, OriginRejection::Opaque);
            }
        }
        Ok(o) => {
            check_origin_invariants(header, o);
            assert_eq!(calls, 2, "the custom predicate runs once per check");
            let allowed = |yes: bool| if yes { Ok(()) } else { Err(OriginRejection::NotAllowed) };
            assert_eq!(results[0], allowed(o.host() == "example.com"), "host_of {header:?}");
            assert_eq!(results[1], allowed(allow_list_model(o)), "allow_list {header:?}");
            assert_eq!(
                results[2],
                allowed(o.scheme() == "https" && o.host() == "example.com" && o.port() == Some(443)),
                "same_as_request {header:?}"
            );
            assert_eq!(results[3], allowed(o.host().ends_with(".example.net")), "custom {header:?}");

            // Every policy configured from this very origin allows it.
            let host_of = OriginPolicy::host_of(header).expect("a parsed origin is a valid endpoint URL");
            assert_eq!(host_of.check(Some(header), &REQUEST), Ok(()), "host_of({header:?})");
            let list = OriginPolicy::allow_list([header]).expect("a parsed origin is a valid entry");
            assert_eq!(list.check(Some(header), &REQUEST), Ok(()), "allow_list([{header:?}])");
            if let Some(port) = o.port() {
                let target = RequestTarget::new(o.scheme(), o.host(), port);
                assert_eq!(p.same_as_request.check(Some(header), &target), Ok(()));
            }
            assert_eq!(OriginPolicy::custom(|_| true).check(Some(header), &REQUEST), Ok(()));
            assert_eq!(OriginPolicy::custom(|_| false).check(Some(header), &REQUEST), Err(OriginRejection::NotAllowed));
        }
    }
}

/// Policies configured from the input: building never panics, and no
/// policy but `off` lets an opaque or malformed header through.
fn check_config(entries: &[&str], header: &str) {
    let parsed = Origin::parse(header);
    let mut built = Vec::new();
    if let Some(first) = entries.first() {
        if let Ok(policy) = OriginPolicy::host_of(first) {
            built.push(policy);
        }
    }
    match OriginPolicy::allow_list(entries) {
        Ok(policy) => built.push(policy),
        Err(err) => assert!(!err.to_string().is_empty()),
    }
    for policy in &built {
        assert!(!policy.is_off());
        assert_eq!(policy.check(Some("null"), &REQUEST), Err(OriginRejection::Opaque));
        assert_eq!(policy.check(Some("https://a.com/"), &REQUEST), Err(OriginRejection::Malformed));
        let result = policy.check(Some(header), &REQUEST);
        match &parsed {
            Err(rejection) => assert_eq!(result, Err(*rejection)),
            Ok(_) => assert!(matches!(result, Ok(()) | Err(OriginRejection::NotAllowed)), "{result:?}"),
        }
        let _ = format!("{policy:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let p = &*POLICIES;
    check_header(p, None);
    check_header(p, Some(&text));

    // Lines before the last are configuration entries, the last is a header.
    let mut lines: Vec<&str> = text.split('\n').collect();
    let header = lines.pop().unwrap_or_default();
    check_config(&lines, header);
    check_config(&[text.as_ref()], &text);
});
