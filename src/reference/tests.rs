//! Unit tests for reference parsing, with cases from distribution/reference's own tests.

use super::*;
use crate::oci::{Digest, DigestError};

const SHA256: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

fn parsed(input: &str) -> Reference {
    Reference::parse(input).unwrap_or_else(|error| panic!("{error}"))
}

fn kind(input: &str) -> ReferenceErrorKind {
    match Reference::parse(input) {
        Ok(reference) => panic!("{input:?} parsed as {reference}"),
        Err(error) => error.kind,
    }
}

#[test]
fn normalises_like_docker() {
    for (input, canonical) in [
        ("nginx", "docker.io/library/nginx"),
        ("nginx:1.27", "docker.io/library/nginx:1.27"),
        ("velero/velero:v1.18.2", "docker.io/velero/velero:v1.18.2"),
        ("docker.io/ubuntu", "docker.io/library/ubuntu"),
        (
            "index.docker.io/ubuntu:24.04",
            "docker.io/library/ubuntu:24.04",
        ),
        ("index.docker.io/a/b", "docker.io/a/b"),
        ("localhost/foo", "localhost/foo"),
        ("localhost:5000/foo/bar:1", "localhost:5000/foo/bar:1"),
        ("test_com", "docker.io/library/test_com"),
        ("test_com/foo", "docker.io/test_com/foo"),
        ("test.com:5000", "docker.io/library/test.com:5000"),
        ("foo_bar.com:8080", "docker.io/library/foo_bar.com:8080"),
        ("192.168.1.1", "docker.io/library/192.168.1.1"),
        ("Foo/bar", "Foo/bar"),
        (
            "lowercase:Uppercase",
            "docker.io/library/lowercase:Uppercase",
        ),
    ] {
        assert_eq!(parsed(input).to_string(), canonical, "{input}");
    }
}

#[test]
fn splits_registry_repository_tag_and_digest() {
    let reference = parsed(&format!("test:5000/repo/sub:tag@{SHA256}"));
    assert_eq!(reference.registry(), "test:5000");
    assert_eq!(reference.repository(), "repo/sub");
    assert_eq!(reference.tag(), Some("tag"));
    assert_eq!(
        reference.digest().map(ToString::to_string),
        Some(SHA256.into())
    );
    assert_eq!(reference.name(), "test:5000/repo/sub");

    let reference = parsed("proxy.replicated.com/library/velero");
    assert_eq!(reference.registry(), "proxy.replicated.com");
    assert_eq!(reference.repository(), "library/velero");
    assert_eq!((reference.tag(), reference.digest()), (None, None));
}

#[test]
fn accepts_the_upstream_examples() {
    for input in [
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag".to_owned(),
        "b.gcr.io/test.example.com/my-app:test.example.com".to_owned(),
        "xn--n3h.com/myimage:xn--n3h.com".to_owned(),
        format!("xn--7o8h.com/myimage:xn--7o8h.com@{SHA256}"),
        "192.168.1.1:5000/repo:5050".to_owned(),
        "[2001:db8::1]/repo".to_owned(),
        "[2001:db8:1:2:3:4:5:6]/repo:tag".to_owned(),
        format!("[2001:db8::1]:5000/repo:tag@{SHA256}"),
        "[::1]:5000/repo".to_owned(),
        "a.com/a__b/a.b/a_b/a---b/1".to_owned(),
        format!("a.com/b:{}", "t".repeat(128)),
        format!("a.com/{}a:tag", "a/".repeat(127)),
    ] {
        assert_eq!(parsed(&input).to_string(), input, "round trip");
    }
    // Registries accept sha384 and sha512 too, but content is stored by digest and
    // only sha256 is stored: such a reference is refused, naming the algorithm.
    for algorithm in ["sha384", "sha512"] {
        let input = format!("a.com/x@{algorithm}:{}", "0".repeat(96));
        assert_eq!(
            kind(&input),
            ReferenceErrorKind::Digest(DigestError::UnsupportedAlgorithm {
                algorithm: algorithm.into()
            })
        );
    }
}

#[test]
fn refuses_malformed_names() {
    use ReferenceErrorKind as K;
    assert_eq!(kind(""), K::Empty);
    assert_eq!(kind(&"a".repeat(64)), K::Identifier);
    assert_eq!(kind(":justtag"), K::MissingName);
    assert_eq!(kind(&format!("@{SHA256}")), K::MissingName);
    assert_eq!(kind("Uppercase:tag"), K::Uppercase);
    assert_eq!(kind("test:5000/Uppercase/lowercase:tag"), K::Uppercase);
    assert_eq!(kind("a.com//b"), K::EmptyComponent { path: "/b".into() });
    assert_eq!(kind("a.com/b/"), K::EmptyComponent { path: "b/".into() });
    for (input, component) in [
        ("aa/asdf$$^/aa", "asdf$$^"),
        ("a.com/-b", "-b"),
        ("a.com/b_", "b_"),
        ("a.com/a..b", "a..b"),
        ("a.com/a___b", "a___b"),
        ("a.com/a._b", "a._b"),
        ("[2001:db8::1]:tag", "[2001:db8::1]"),
    ] {
        let component = component.to_owned();
        assert_eq!(kind(input), K::InvalidComponent { component }, "{input}");
    }
    assert_eq!(
        kind(&format!("{}a:tag", "a/".repeat(128))),
        K::NameTooLong { length: 257 }
    );
}

#[test]
fn refuses_malformed_registries() {
    for (input, registry) in [
        ("[fe80::1%eth0]:5000/repo", "[fe80::1%eth0]:5000"),
        ("[::ffff:1.2.3.4]/repo", "[::ffff:1.2.3.4]"),
        ("a-.com/repo", "a-.com"),
        ("a.com:port/repo", "a.com:port"),
        ("a.com:0/repo", "a.com:0"),
        ("a.com:65536/repo", "a.com:65536"),
        ("a_b.com/repo", "a_b.com"),
    ] {
        assert!(
            matches!(kind(input), ReferenceErrorKind::Registry { registry: r, .. } if r == registry),
            "{input}"
        );
    }
}

#[test]
fn refuses_malformed_tags() {
    use ReferenceErrorKind as K;
    assert_eq!(kind("a.com/b:"), K::EmptyTag);
    assert_eq!(
        kind(&format!("a.com/b:{}", "t".repeat(129))),
        K::TagTooLong { length: 129 }
    );
    assert_eq!(kind("a.com/b:.x"), K::InvalidTag { tag: ".x".into() });
    assert_eq!(kind("a.com/b:-x"), K::InvalidTag { tag: "-x".into() });
    assert_eq!(kind("a.com/b:x+y"), K::InvalidTag { tag: "x+y".into() });
}

#[test]
fn checks_digest_algorithm_and_length() {
    let error = Reference::parse("a.com/b@sha256:abcdef123456").unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid image reference \"a.com/b@sha256:abcdef123456\": \
         digest sha256 needs 64 hex characters, got 12"
    );
    let f64 = "f".repeat(64);
    for (digest, message) in [
        (
            "sha256",
            "digest \"sha256\" must be algorithm:hex, e.g. sha256:<64 hex characters>",
        ),
        (
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "digest algorithm \"md5\" is not supported (only sha256 is)",
        ),
        (
            &format!("sha256+b64:{f64}"),
            "digest algorithm \"sha256+b64\" is not supported (only sha256 is)",
        ),
        (
            &format!("sha256:{}", "F".repeat(64)),
            "digest sha256 must be lowercase hex (0-9, a-f)",
        ),
        (
            &format!("sha512:{}", "f".repeat(128)),
            "digest algorithm \"sha512\" is not supported (only sha256 is)",
        ),
        (
            &format!("sha256:{f64}@{SHA256}"),
            "digest sha256 needs 64 hex characters, got 136",
        ),
    ] {
        let error = digest.parse::<Digest>().expect_err(digest);
        assert_eq!(error.to_string(), message);
        assert_eq!(kind(&format!("a.com/b@{digest}")), error.into());
    }
}

#[test]
fn validates_domains_with_reasons() {
    for domain in [
        "proxy.replicated.com",
        "localhost",
        "registry:5000",
        "10.244.128.11:5000",
        "[fd00::1]:5000",
        "[::1]",
        "Registry.Example.COM",
    ] {
        assert_eq!(validate_domain(domain), Ok(()), "{domain}");
    }
    let brackets = "(write it in brackets, e.g. [fd00::1]:5000)";
    for (domain, message) in [
        ("", "host is empty".to_owned()),
        (
            "https://a.com",
            "give the host only, without https://".into(),
        ),
        ("a.com/path", "give the host only, without a path".into()),
        (
            "a..com",
            "host name component \"\" must be letters, digits and inner dashes".into(),
        ),
        (
            "a b.com",
            "host name component \"a b\" must be letters, digits and inner dashes".into(),
        ),
        (
            "fd00::1",
            format!("IPv6 address \"fd00::1\" is not valid {brackets}"),
        ),
        (
            "[fd00::1",
            format!("IPv6 address \"[fd00::1\" is not valid {brackets}"),
        ),
        (
            "[::1]5000",
            format!("IPv6 address \"[::1]5000\" is not valid {brackets}"),
        ),
        (
            "a.com:",
            "port \"\" must be a number from 1 to 65535".into(),
        ),
        (
            "a.com:+80",
            "port \"+80\" must be a number from 1 to 65535".into(),
        ),
    ] {
        let error = validate_domain(domain).expect_err(domain);
        assert_eq!(error.to_string(), message);
    }
}

#[test]
fn rewrites_registry_for_proxy_and_airgap() {
    let reference = parsed("proxy.replicated.com/library/velero:v1.18.2");
    assert_eq!(
        reference
            .with_registry("proxy.example.com")
            .map(|r| r.to_string()),
        Ok("proxy.example.com/library/velero:v1.18.2".to_owned())
    );
    let pinned = parsed(&format!("ghcr.io/acme/plugins/pg:1.0@{SHA256}"));
    assert_eq!(
        pinned.airgap("10.244.128.11:5000").map(|r| r.to_string()),
        Ok(format!("10.244.128.11:5000/acme/plugins/pg:1.0@{SHA256}"))
    );
    assert_eq!(
        parsed("nginx")
            .airgap("[fd00::1]:5000")
            .map(|r| r.to_string()),
        Ok("[fd00::1]:5000/library/nginx".to_owned())
    );
    assert_eq!(
        reference
            .with_registry("index.docker.io")
            .map(|r| r.registry().to_owned()),
        Ok("docker.io".to_owned())
    );
    assert_eq!(
        reference.airgap("http://x"),
        Err(DomainError::Scheme {
            scheme: "http".into()
        })
    );
}

#[test]
fn pins_and_strips() {
    let reference = parsed("velero/velero:v1.18.2");
    let pinned = reference.with_digest(SHA256.parse().expect("valid digest"));
    assert_eq!(
        pinned.to_string(),
        format!("docker.io/velero/velero:v1.18.2@{SHA256}")
    );
    assert_eq!(
        pinned.without_tag().to_string(),
        format!("docker.io/velero/velero@{SHA256}")
    );
    assert_eq!(
        reference.without_tag().to_string(),
        "docker.io/velero/velero"
    );
    assert!(matches!(
        "sha256:abc".parse::<Digest>(),
        Err(DigestError::Length { actual: 3 })
    ));
}

#[test]
fn equality_and_serde_use_the_canonical_form() {
    assert_eq!(parsed("nginx:1"), parsed("index.docker.io/library/nginx:1"));
    let json = serde_json::to_string(&parsed("nginx:1")).expect("serialise");
    assert_eq!(json, "\"docker.io/library/nginx:1\"");
    let back: Reference = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(back, parsed("nginx:1"));
    assert!(serde_json::from_str::<Reference>("\"UPPER\"").is_err());
}

#[test]
fn dns1123_labels() {
    for name in ["a", "velero-plugin-for-aws", "pg-1", &"a".repeat(63)] {
        assert!(is_dns1123_label(name), "{name}");
    }
    for name in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
        assert!(!is_dns1123_label(name), "{name}");
    }
}
