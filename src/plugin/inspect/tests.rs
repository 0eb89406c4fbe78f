//! The per-image checks one by one.

use super::*;
use crate::plugin::report::Severity;
use crate::plugin::test_support::{
    ElfBuilder, Item, apply_layers, busybox_layer, image_config as config, static_tool,
};

#[test]
fn check_functions_one_by_one() {
    assert!(
        check_recognised(
            recognise(&["cp".into(), "/a".into(), "/target/".into()]).as_ref(),
            false
        )
        .is_empty()
    );
    assert_eq!(check_recognised(None, false)[0].severity, Severity::Error);

    let image = ImageConfig::parse(&config(&[], Some("root"), "amd64")).unwrap();
    assert_eq!(check_user(&image)[0].code, codes::RUNS_AS_ROOT);
    let image = ImageConfig::parse(&config(&[], Some("65532"), "amd64")).unwrap();
    assert!(check_user(&image).is_empty());

    let filesystem = apply_layers([busybox_layer(&[Item::File(
        "plugins/p",
        0o755,
        &static_tool(),
    )])])
    .unwrap();
    let plan = recognise(&[
        "/bin/sh".into(),
        "-c".into(),
        "cp /plugins/p /target/".into(),
    ])
    .unwrap();
    assert!(check_copy_programs(&filesystem, &image, &plan).is_empty());
    let plan = recognise(&["cp-plugin".into(), "/plugins/p".into(), "/target/p".into()]).unwrap();
    assert_eq!(
        check_copy_programs(&filesystem, &image, &plan)[0].code,
        codes::MISSING_COPY_PROGRAM
    );

    let (binaries, findings) = check_binaries(&filesystem, &image, &plan, None);
    assert!(findings.is_empty());
    assert_eq!(check_build_info(&binaries)[0].code, codes::NO_BUILD_INFO);

    let arm = ImageConfig::parse(&config(&[], None, "arm64")).unwrap();
    let (_, findings) = check_binaries(&filesystem, &arm, &plan, None);
    assert_eq!(findings[0].code, codes::WRONG_ARCHITECTURE);
    // The copy program runs in the plugin image, where a dynamic one needs its libraries.
    let dynamic = ElfBuilder::amd64()
        .interpreter("/lib/ld-musl-x86_64.so.1")
        .needed(&["libc.musl-x86_64.so.1"])
        .build();
    let filesystem =
        apply_layers([busybox_layer(&[Item::File("bin/busybox", 0o755, &dynamic)])]).unwrap();
    let plan = recognise(&["/bin/cp".into(), "/a".into(), "/target/".into()]).unwrap();
    let findings = check_copy_programs(&filesystem, &image, &plan);
    assert_eq!(findings[0].code, codes::MISSING_LIBRARY);
    assert!(
        findings[0]
            .message
            .contains("/lib/ld-musl-x86_64.so.1, libc.musl-x86_64.so.1")
    );
}

#[test]
fn source_helpers() {
    assert_eq!(split_contents("/plugins/."), ("/plugins".to_string(), true));
    assert_eq!(
        split_contents("/plugins/./"),
        ("/plugins".to_string(), true)
    );
    assert_eq!(split_contents("/."), ("/".to_string(), true));
    assert_eq!(split_contents("/plugins/"), ("/plugins".to_string(), false));
    assert_eq!(absolute_pattern("p*", "/work dir"), "/work dir/p*");
    assert_eq!(absolute_pattern("p", "/"), "/p");
    assert_eq!(join_relative("", "a"), "a");
    assert_eq!(join_relative("sub", ""), "sub");
}
