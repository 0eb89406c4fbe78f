//! Lookups, symbolic links, globs and `which` on trees built from tar layers.

use super::*;
use crate::plugin::test_support::{Item, TAR, apply_layers, layer, tar};

fn filesystem(items: &[Item]) -> Filesystem {
    apply_layers([layer(TAR, tar(items))]).unwrap()
}

fn busybox() -> Filesystem {
    filesystem(&[
        Item::File("bin/busybox", 0o755, b"\x7fELF"),
        Item::Symlink("bin/cp", "busybox"),
        Item::Symlink("bin/sh", "/bin/busybox"),
        Item::Symlink("usr/bin/env", "../../bin/busybox"),
        Item::Symlink("escape", "../../../../bin/busybox"),
        Item::Symlink("plugins", "opt/plugins"),
        Item::File("opt/plugins/velero-plugin-for-a", 0o755, b"a"),
        Item::File("opt/plugins/velero-plugin-for-b", 0o755, b"b"),
        Item::File("opt/plugins/.hidden", 0o755, b"h"),
        Item::File("opt/plugins/sub/nested", 0o644, b"n"),
        Item::File("opt/plugins-other", 0o644, b"o"),
        Item::Symlink("loop/a", "b"),
        Item::Symlink("loop/b", "a"),
        Item::Symlink("dangling", "/nowhere"),
    ])
}

#[test]
fn symbolic_links_resolve_within_the_root() {
    let filesystem = busybox();
    assert_eq!(
        filesystem.resolve("/bin/cp", true).as_deref(),
        Some("/bin/busybox")
    );
    assert_eq!(
        filesystem.resolve("/bin/cp", false).as_deref(),
        Some("/bin/cp")
    );
    assert_eq!(
        filesystem.resolve("/bin/sh", true).as_deref(),
        Some("/bin/busybox")
    );
    assert_eq!(
        filesystem.resolve("/usr/bin/env", true).as_deref(),
        Some("/bin/busybox")
    );
    // `..` stops at the root.
    assert_eq!(
        filesystem.resolve("/escape", true).as_deref(),
        Some("/bin/busybox")
    );
    assert_eq!(
        filesystem.resolve("/../../bin/./cp", true).as_deref(),
        Some("/bin/busybox")
    );
    assert_eq!(
        filesystem
            .resolve("/plugins/velero-plugin-for-a", true)
            .as_deref(),
        Some("/opt/plugins/velero-plugin-for-a")
    );
    assert_eq!(filesystem.resolve("/loop/a", true), None);
    assert_eq!(
        filesystem.resolve("/loop/a", false).as_deref(),
        Some("/loop/a")
    );
    assert_eq!(filesystem.resolve("/dangling", true), None);
    assert!(filesystem.lookup_no_follow("/dangling").is_some());
    assert_eq!(filesystem.resolve("/bin/busybox/x", true), None);
    assert_eq!(filesystem.resolve("/", true).as_deref(), Some("/"));
    assert!(matches!(
        filesystem.lookup("/plugins"),
        Some(Entry {
            kind: EntryKind::Directory { .. },
            ..
        })
    ));
    assert!(matches!(
        filesystem.lookup_no_follow("/plugins"),
        Some(Entry {
            kind: EntryKind::Symlink { .. },
            ..
        })
    ));
    assert!(
        filesystem.exists("/") && filesystem.exists("/bin/cp") && !filesystem.exists("/missing")
    );
}

#[test]
fn which_searches_the_path_and_follows_links() {
    let filesystem = busybox();
    let path = vec![
        "/usr/local/bin".to_string(),
        "/usr/bin".to_string(),
        "/bin".to_string(),
    ];
    assert_eq!(filesystem.which("cp", &path).as_deref(), Some("/bin/cp"));
    assert_eq!(
        filesystem.which("env", &path).as_deref(),
        Some("/usr/bin/env")
    );
    assert_eq!(
        filesystem.which("/bin/sh", &path).as_deref(),
        Some("/bin/sh")
    );
    assert_eq!(filesystem.which("cp-plugin", &path), None);
    // Not executable, or not a file.
    assert_eq!(filesystem.which("/opt/plugins-other", &path), None);
    assert_eq!(filesystem.which("plugins", &["/".to_string()]), None);
}

#[test]
fn globs_expand_like_the_shell() {
    let filesystem = busybox();
    assert_eq!(
        filesystem.glob("/plugins/*"),
        [
            "/plugins/sub",
            "/plugins/velero-plugin-for-a",
            "/plugins/velero-plugin-for-b"
        ]
    );
    assert_eq!(
        filesystem.glob("/plugins/velero-plugin-for-?"),
        [
            "/plugins/velero-plugin-for-a",
            "/plugins/velero-plugin-for-b"
        ]
    );
    assert_eq!(
        filesystem.glob("/opt/plugins*"),
        ["/opt/plugins", "/opt/plugins-other"]
    );
    assert_eq!(
        filesystem.glob("/*/plugins/sub/nested"),
        ["/opt/plugins/sub/nested"]
    );
    assert_eq!(filesystem.glob("/plugins/.h*"), ["/plugins/.hidden"]);
    assert_eq!(
        filesystem.glob("/plugins/velero-plugin-for-a"),
        ["/plugins/velero-plugin-for-a"]
    );
    assert!(filesystem.glob("/plugins/none*").is_empty());
    assert!(filesystem.glob("/missing/*").is_empty());
    assert_eq!(filesystem.glob("/dangl*"), ["/dangling"]);
}

#[test]
fn children_skip_subtrees_but_not_siblings_sorting_between() {
    let filesystem = filesystem(&[
        Item::File("d/a/deep/x", 0o644, b""),
        Item::File("d/a-b", 0o644, b""),
        Item::File("d/a.c", 0o644, b""),
        Item::File("d/a/y", 0o644, b""),
        Item::File("d/b", 0o644, b""),
    ]);
    let names: Vec<&str> = filesystem.children("/d").map(|(name, _)| name).collect();
    assert_eq!(names, ["a", "a-b", "a.c", "b"]);
    let top: Vec<&str> = filesystem.children("/").map(|(name, _)| name).collect();
    assert_eq!(top, ["d"]);
}

#[test]
fn files_under_a_directory_keep_the_written_prefix() {
    let filesystem = busybox();
    let files: Vec<String> = filesystem
        .files_under("/plugins")
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert_eq!(
        files,
        [
            "/plugins/.hidden",
            "/plugins/sub/nested",
            "/plugins/velero-plugin-for-a",
            "/plugins/velero-plugin-for-b"
        ]
    );
    assert!(filesystem.files_under("/nowhere").is_empty());
}

#[test]
fn replacing_a_directory_with_a_file_drops_its_subtree() {
    let filesystem = apply_layers([
        layer(TAR, tar(&[Item::File("a/b/c", 0o644, b"")])),
        layer(TAR, tar(&[Item::File("a/b", 0o755, b"")])),
    ])
    .unwrap();
    assert!(matches!(
        filesystem.lookup("/a/b"),
        Some(Entry {
            kind: EntryKind::File { .. },
            layer: 1
        })
    ));
    assert!(!filesystem.exists("/a/b/c"));
    assert_eq!(filesystem.len(), 2);
}
