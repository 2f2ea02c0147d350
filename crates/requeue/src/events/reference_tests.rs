//! `Involved` implementations, DNS-1123 validation and event names
//! (TestGenerateEventName).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::*;
use std::time::Duration;

fn at_nanos(nanos: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// Asserts `name` looks like a lowercase version-4 UUID.
fn assert_uuid(name: &str) {
    let parts: Vec<&str> = name.split('-').collect();
    let lengths: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    assert_eq!(lengths, [8, 4, 4, 4, 12], "{name}");
    assert!(
        name.chars()
            .all(|c| c == '-' || matches!(c, '0'..='9' | 'a'..='f')),
        "{name}"
    );
    assert!(parts[2].starts_with('4'), "version 4: {name}");
    assert!(
        matches!(&parts[3][..1], "8" | "9" | "a" | "b"),
        "variant: {name}"
    );
    assert!(is_dns1123_subdomain(name));
}

/// TestGenerateEventName: `<name>.<hex nanos>` when that is a valid DNS
/// subdomain.
#[test]
fn generate_event_name_valid_is_name_dot_hex() {
    let at = at_nanos(1_795_445_880_987_654_321);
    assert_eq!(event_name("web-0", at), "web-0.18eab4841db518b1");
    assert_eq!(
        event_name("node-a.example.com", at),
        "node-a.example.com.18eab4841db518b1"
    );
    assert_eq!(event_name("x", SystemTime::UNIX_EPOCH), "x.0");
    assert_eq!(event_name("x", at_nanos(255)), "x.ff");
    // The longest name that still fits: 253 characters in total.
    let hex = "18eab4841db518b1";
    let longest = "a".repeat(DNS1123_SUBDOMAIN_MAX_LENGTH - 1 - hex.len());
    assert_eq!(event_name(&longest, at), format!("{longest}.{hex}"));
}

/// TestGenerateEventName: a random UUID otherwise.
#[test]
fn generate_event_name_invalid_is_uuid() {
    let at = at_nanos(1_795_445_880_987_654_321);
    let too_long = "a".repeat(DNS1123_SUBDOMAIN_MAX_LENGTH - 16);
    for invalid in [
        "Web-0",
        "web_0",
        "-web",
        "web-",
        "",
        "web..0",
        "wéb",
        too_long.as_str(),
    ] {
        assert_uuid(&event_name(invalid, at));
    }
    // Before the epoch Go's %x writes a '-', which cannot start a label.
    assert_uuid(&event_name(
        "web-0",
        SystemTime::UNIX_EPOCH - Duration::from_nanos(26),
    ));
    // Random, not derived from the input.
    assert_ne!(event_name("Web-0", at), event_name("Web-0", at));
}

#[test]
fn go_hex_matches_percent_x() {
    assert_eq!(go_hex(0), "0");
    assert_eq!(go_hex(0xdead_beef), "deadbeef");
    assert_eq!(go_hex(-26), "-1a");
    assert_eq!(
        unix_nanos(SystemTime::UNIX_EPOCH - Duration::from_nanos(26)),
        -26
    );
}

#[test]
fn dns1123_subdomain_rules() {
    for valid in [
        "a",
        "0",
        "web-0",
        "a.b.c",
        "a-b.0-9",
        "187a9c3e5d2f1b40",
        "a--b",
    ] {
        assert!(is_dns1123_subdomain(valid), "{valid}");
    }
    for invalid in [
        "", ".", "a.", ".a", "a..b", "-a", "a-", "a.-b", "a-.b", "A", "aB", "a_b", "a b", "a/b",
        "ä",
    ] {
        assert!(!is_dns1123_subdomain(invalid), "{invalid}");
    }
    assert!(is_dns1123_subdomain(&"a".repeat(253)));
    assert!(!is_dns1123_subdomain(&"a".repeat(254)));
}

/// Goes through the generic impl (`&T`, `Box<T>`, …) rather than auto-deref.
fn via(involved: impl Involved) -> ObjectReference {
    involved.object_reference()
}

#[test]
fn object_reference_is_involved() {
    let reference = ObjectReference::new("Pod", "shop", "web-0")
        .with_uid("u1")
        .with_api_version("v1")
        .with_field_path("spec.containers{app}");
    assert_eq!(reference.object_reference(), reference);
    assert_eq!(via(&reference), reference);
    assert_eq!(via(Box::new(reference.clone())), reference);
    assert_eq!(via(Arc::new(reference.clone())), reference);
    assert_eq!(via(Rc::new(reference.clone())), reference);
    let dynamic: &dyn Involved = &reference;
    assert_eq!(dynamic.object_reference(), reference);
}

#[test]
fn tuples_are_involved() {
    let expected = ObjectReference::new("Pod", "shop", "web-0").with_uid("u1");
    assert_eq!(("Pod", "shop", "web-0", "u1").object_reference(), expected);
    let owned = (
        String::from("Pod"),
        String::from("shop"),
        String::from("web-0"),
        String::from("u1"),
    );
    assert_eq!(owned.object_reference(), expected);
    assert_eq!(via(&owned), expected);
    assert_eq!(
        ("Pod", String::from("shop"), "web-0", "u1").object_reference(),
        expected
    );

    // An empty namespace is a cluster-scoped object.
    let node = ("Node", "", "node-a", "u2").object_reference();
    assert!(node.namespace.is_empty());
    assert_eq!(node.kind, "Node");
    assert!(node.api_version.is_empty() && node.field_path.is_empty());
}

/// Generic code can take anything events can be about.
#[test]
fn involved_works_generically() {
    fn kind_of(involved: impl Involved) -> String {
        involved.object_reference().kind
    }
    assert_eq!(kind_of(("Pod", "shop", "web-0", "u1")), "Pod");
    let node = ObjectReference::new("Node", "", "n");
    assert_eq!(kind_of(&node), "Node");
    assert_eq!(kind_of(node), "Node");
}
