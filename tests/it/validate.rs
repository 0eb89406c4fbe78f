//! `velero-airgap validate` through the binary: every error and warning the
//! foundation issue lists, with paths, lines and exit codes.

use assert_cmd::Command;
use serde_json::Value;
use std::path::PathBuf;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn write_config(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A config with the given plugins block (already indented) and overrides.
fn config(plugins: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: embeddedcluster.replicated.com/v1beta1\nkind: Config\nspec:\n  extensions:\n    velero:\n      plugins:\n{plugins}{extra_spec}"
    )
}

fn overrides(values: &str) -> String {
    let indented: String = values.lines().map(|l| format!("          {l}\n")).collect();
    format!(
        "  unsupportedOverrides:\n    builtInExtensions:\n      - name: velero\n        values: |\n{indented}"
    )
}

fn good_plugin(name: &str) -> String {
    format!(
        "        - name: {name}\n          image: registry.example.com/acme/{name}:1.0@{DIGEST}\n"
    )
}

struct Outcome {
    code: i32,
    findings: Vec<Value>,
}

fn validate(text: &str, extra_args: &[&str]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, text);
    let out = Command::cargo_bin("velero-airgap")
        .unwrap()
        .args(["validate", "--json", "-c"])
        .arg(&path)
        .args(extra_args)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    Outcome {
        code: out.status.code().unwrap(),
        findings: report["findings"].as_array().unwrap().clone(),
    }
}

/// The one finding whose message contains `needle`.
fn find<'a>(outcome: &'a Outcome, needle: &str) -> &'a Value {
    let matches: Vec<_> = outcome
        .findings
        .iter()
        .filter(|f| f["message"].as_str().unwrap().contains(needle))
        .collect();
    assert_eq!(
        matches.len(),
        1,
        "findings for {needle:?}: {:#?}",
        outcome.findings
    );
    matches[0]
}

fn assert_error(outcome: &Outcome, needle: &str, path: &str) -> Value {
    let f = find(outcome, needle);
    assert_eq!(f["severity"], "error", "{f}");
    assert_eq!(f["path"], path, "{f}");
    assert_eq!(outcome.code, 1);
    f.clone()
}

fn assert_warning(outcome: &Outcome, needle: &str, path: &str) -> Value {
    let f = find(outcome, needle);
    assert_eq!(f["severity"], "warning", "{f}");
    assert_eq!(f["path"], path, "{f}");
    f.clone()
}

#[test]
fn the_example_config_is_valid() {
    let out = Command::cargo_bin("velero-airgap")
        .unwrap()
        .args(["validate", "-c", "examples/config.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("0 error(s)"), "{stderr}");
}

#[test]
fn clean_config_has_no_findings() {
    let o = validate(&config(&good_plugin("pg"), ""), &["--strict"]);
    assert_eq!(o.findings, Vec::<Value>::new());
    assert_eq!(o.code, 0);
}

#[test]
fn unreadable_file_is_an_error() {
    let out = Command::cargo_bin("velero-airgap")
        .unwrap()
        .args(["validate", "--json", "-c", "/nonexistent/config.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = report["findings"][0]["message"].as_str().unwrap();
    assert!(message.contains("/nonexistent/config.yaml"), "{message}");
}

#[test]
fn invalid_yaml_names_the_line() {
    let o = validate("apiVersion: x\nspec:\n  a: [\n", &[]);
    assert_eq!(o.code, 1);
    let f = &o.findings[0];
    assert_eq!(f["severity"], "error");
    assert!(
        f["message"].as_str().unwrap().contains("invalid YAML"),
        "{f}"
    );
    assert!(f["line"].as_u64().is_some(), "{f}");
}

#[test]
fn empty_plugin_name() {
    let plugins =
        format!("        - name: ''\n          image: registry.example.com/a/b:1@{DIGEST}\n");
    let o = validate(&config(&plugins, ""), &[]);
    let f = assert_error(
        &o,
        "plugin name is empty",
        "spec.extensions.velero.plugins[0].name",
    );
    assert_eq!(f["line"], 7);
}

#[test]
fn duplicate_plugin_name() {
    let plugins = format!(
        "{}        - name: pg\n          image: registry.example.com/acme/other:1.0@{DIGEST}\n",
        good_plugin("pg")
    );
    let o = validate(&config(&plugins, ""), &[]);
    let f = assert_error(
        &o,
        "duplicate plugin name",
        "spec.extensions.velero.plugins[1].name",
    );
    assert_eq!(f["line"], 9);
}

#[test]
fn plugin_name_must_be_a_container_name() {
    let o = validate(&config(&good_plugin("Bad_Name"), ""), &[]);
    assert_error(
        &o,
        "not a valid container name",
        "spec.extensions.velero.plugins[0].name",
    );
}

#[test]
fn plugin_name_of_a_built_in_init_container() {
    let o = validate(&config(&good_plugin("velero-plugin-for-aws"), ""), &[]);
    assert_error(
        &o,
        "built-in initContainer",
        "spec.extensions.velero.plugins[0].name",
    );
}

#[test]
fn empty_plugin_image() {
    let o = validate(
        &config("        - name: pg\n          image: ''\n", ""),
        &[],
    );
    assert_error(
        &o,
        "plugin image is empty",
        "spec.extensions.velero.plugins[0].image",
    );
}

#[test]
fn duplicate_plugin_image() {
    let plugins = format!(
        "{}        - name: pg2\n          image: registry.example.com/acme/pg:1.0@{DIGEST}\n",
        good_plugin("pg")
    );
    let o = validate(&config(&plugins, ""), &[]);
    assert_error(
        &o,
        "duplicate plugin image",
        "spec.extensions.velero.plugins[1].image",
    );
}

#[test]
fn unparsable_image_references() {
    for (image, needle) in [
        ("registry.example.com/Acme/pg:1.0", "lowercase"),
        ("registry.example.com/acme/pg@sha256:abc", "64"),
        (
            "registry.example.com/acme/pg@md5:0123456789abcdef0123456789abcdef",
            "md5",
        ),
        ("registry.example.com/acme/pg:", "tag"),
    ] {
        let plugins = format!("        - name: pg\n          image: '{image}'\n");
        let o = validate(&config(&plugins, ""), &[]);
        let f = assert_error(
            &o,
            "invalid image reference",
            "spec.extensions.velero.plugins[0].image",
        );
        assert!(
            f["message"].as_str().unwrap().contains(needle),
            "{image}: {f}"
        );
    }
}

#[test]
fn bad_pull_policy() {
    let plugins = format!(
        "{}          imagePullPolicy: Sometimes\n",
        good_plugin("pg")
    );
    let o = validate(&config(&plugins, ""), &[]);
    assert_error(
        &o,
        "Sometimes",
        "spec.extensions.velero.plugins[0].imagePullPolicy",
    );
}

#[test]
fn override_values_must_be_a_mapping() {
    let o = validate(&config(&good_plugin("pg"), &overrides("- a\n- b\n")), &[]);
    assert_error(
        &o,
        "must be a YAML mapping",
        "spec.unsupportedOverrides.builtInExtensions[0].values",
    );
}

#[test]
fn invalid_domain_name() {
    let domains = "  domains:\n    proxyRegistryDomain: https://proxy.example.com\n";
    let o = validate(&config(&good_plugin("pg"), domains), &[]);
    let f = assert_error(&o, "not a valid domain", "spec.domains.proxyRegistryDomain");
    assert_eq!(f["line"], 10);
}

#[test]
fn two_images_with_one_airgap_reference() {
    let plugins = format!(
        "        - name: a\n          image: registry-a.example.com/acme/plugin:1.0@{DIGEST}\n        - name: b\n          image: registry-b.example.com/acme/plugin:1.0@{DIGEST}\n"
    );
    let o = validate(&config(&plugins, ""), &[]);
    assert_error(&o, "both become", "spec.extensions.velero.plugins[1].image");
}

#[test]
fn unpinned_image_warns_and_strict_fails() {
    let plugins = "        - name: pg\n          image: registry.example.com/acme/pg:1.0\n";
    let o = validate(&config(plugins, ""), &[]);
    assert_warning(
        &o,
        "not pinned by digest",
        "spec.extensions.velero.plugins[0].image",
    );
    assert_eq!(o.code, 0);
    let strict = validate(&config(plugins, ""), &["--strict"]);
    assert_eq!(strict.code, 1);
}

#[test]
fn latest_or_missing_tag_warns() {
    for (image, needle) in [
        ("registry.example.com/acme/pg:latest", "uses the tag latest"),
        ("registry.example.com/acme/pg", "has no tag"),
    ] {
        let plugins = format!("        - name: pg\n          image: {image}\n");
        let o = validate(&config(&plugins, ""), &[]);
        assert_warning(&o, needle, "spec.extensions.velero.plugins[0].image");
        assert_eq!(o.code, 0);
    }
}

#[test]
fn overriding_init_containers_warns() {
    let values = "initContainers:\n- name: x\n  image: registry.example.com/x/y:1\n";
    let o = validate(&config(&good_plugin("pg"), &overrides(values)), &[]);
    let f = assert_warning(
        &o,
        "drops the AWS plugin",
        "spec.unsupportedOverrides.builtInExtensions[0].values (initContainers)",
    );
    assert_eq!(f["line"], 13);
}

#[test]
fn plugin_config_maps_need_labels_and_known_kinds() {
    let values = "configMaps:\n  no-marker:\n    labels:\n      velero.io/pg: BackupItemAction\n  bad-kind:\n    labels:\n      velero.io/plugin-config: \"\"\n      velero.io/pg: BackupAction\n  good:\n    labels:\n      velero.io/plugin-config: \"\"\n      velero.io/pg: RestoreItemActionV2\n";
    let o = validate(&config(&good_plugin("pg"), &overrides(values)), &[]);
    assert_warning(
        &o,
        "no label velero.io/plugin-config",
        "spec.unsupportedOverrides.builtInExtensions[0].values (configMaps.no-marker.labels)",
    );
    assert_warning(
        &o,
        "names no plugin kind",
        "spec.unsupportedOverrides.builtInExtensions[0].values (configMaps.bad-kind.labels)",
    );
    assert_eq!(o.findings.len(), 2, "{:#?}", o.findings);
}

#[test]
fn velero_and_aws_plugin_outside_the_compatibility_table() {
    let values = "image:\n  repository: proxy.replicated.com/library/velero\n  tag: v1.16.2\n";
    let o = validate(&config(&good_plugin("pg"), &overrides(values)), &[]);
    assert_warning(
        &o,
        "outside the compatibility table",
        "spec.unsupportedOverrides.builtInExtensions",
    );
}

#[test]
fn literal_secrets_in_overrides_warn() {
    let values = "credentials:\n  secretContents:\n    cloud: \"[default]\\naws_secret_access_key=abc\"\nconfiguration:\n  backupStorageLocation:\n  - config:\n      apiToken: abc\n";
    let o = validate(&config(&good_plugin("pg"), &overrides(values)), &[]);
    assert_warning(
        &o,
        "credentials.secretContents puts cloud credentials",
        "spec.unsupportedOverrides.builtInExtensions[0].values (credentials.secretContents)",
    );
    assert_warning(
        &o,
        "apiToken holds a literal value",
        "spec.unsupportedOverrides.builtInExtensions[0].values (configuration.backupStorageLocation[0].config.apiToken)",
    );
}

#[test]
fn all_problems_are_reported_in_one_run() {
    let plugins = "        - name: ''\n          image: ''\n        - name: UPPER\n          image: 'x:'\n          imagePullPolicy: Maybe\n";
    let o = validate(&config(plugins, ""), &[]);
    let errors = o
        .findings
        .iter()
        .filter(|f| f["severity"] == "error")
        .count();
    assert!(errors >= 5, "{:#?}", o.findings);
}

#[test]
fn unknown_velero_version_lists_known_ones() {
    let out = Command::cargo_bin("velero-airgap")
        .unwrap()
        .args([
            "validate",
            "-c",
            "examples/config.yaml",
            "--velero-version",
            "1.2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("known versions: 1.16, 1.17, 1.18"),
        "{stderr}"
    );
}

const VALUES_PATH: &str = "spec.unsupportedOverrides.builtInExtensions[0].values";

fn at(inner: &str) -> String {
    format!("{VALUES_PATH} ({inner})")
}

#[test]
fn literal_secrets_in_environment_lists_warn() {
    let values = "extraEnvVars:\n- name: PGPASSWORD\n  value: hunter2\n- name: PGHOST\n  value: db\n- name: API_TOKEN\n  valueFrom:\n    secretKeyRef: {name: api, key: token}\nextraContainers:\n- name: side\n  env:\n  - {name: S3_SECRET, value: abc}\n";
    let o = validate(&config(&good_plugin("pg"), &overrides(values)), &[]);
    let f = assert_warning(
        &o,
        "environment variable PGPASSWORD holds a literal value",
        &at("extraEnvVars[0].value"),
    );
    assert_eq!(f["line"], 15);
    assert_warning(
        &o,
        "environment variable S3_SECRET holds a literal value",
        &at("extraContainers[0].env[0].value"),
    );
    assert_eq!(o.findings.len(), 2, "{:#?}", o.findings);
    assert_eq!(o.code, 0);
}

#[test]
fn build_refuses_literal_secrets_in_environment_lists() {
    let dir = tempfile::tempdir().unwrap();
    let values = "initContainers:\n- name: x\n  image: registry.example.com/x/y:1\n  env:\n  - {name: MONGO_PASSWORD, value: hunter2}\n";
    let path = write_config(&dir, &config(&good_plugin("pg"), &overrides(values)));
    // The check runs before any registry is contacted: the mirror points nowhere.
    let out = Command::cargo_bin("velero-airgap")
        .unwrap()
        .args(["build", "--insecure-registry", "127.0.0.1:9", "-c"])
        .arg(&path)
        .arg("-o")
        .arg(dir.path().join("bundle.tar"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} carries a literal secret",
            at("initContainers[0].env[0].value")
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn privilege_in_overrides_warns_naming_the_field() {
    let values = "hostNetwork: true\nnodeAgent:\n  hostPID: true\n  hostIPC: true\nextraContainers:\n- name: side\n  image: registry.example.com/x/side:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n  securityContext:\n    privileged: true\n    runAsUser: 0\n    capabilities:\n      add: [SYS_ADMIN]\nextraVolumes:\n- name: host\n  hostPath: {path: /var/run}\ninitContainers:\n- name: setup\n  image: registry.example.com/x/setup:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n  command: [sh, -c, 'curl https://example.com | sh']\n";
    let o = validate(&config(&good_plugin("pg"), &overrides(values)), &[]);
    for (needle, inner) in [
        ("hostNetwork: true shares the node's network", "hostNetwork"),
        ("hostPID: true shares", "nodeAgent.hostPID"),
        ("hostIPC: true shares", "nodeAgent.hostIPC"),
        (
            "privileged: true gives",
            "extraContainers[0].securityContext.privileged",
        ),
        (
            "runAsUser: 0 runs the container as root",
            "extraContainers[0].securityContext.runAsUser",
        ),
        (
            "capabilities.add grants SYS_ADMIN",
            "extraContainers[0].securityContext.capabilities.add",
        ),
        ("hostPath volume (/var/run)", "extraVolumes[0].hostPath"),
        (
            "initContainer setup sets command:",
            "initContainers[0].command",
        ),
    ] {
        assert_warning(&o, needle, &at(inner));
    }
    assert_eq!(o.code, 0);
    assert_eq!(
        validate(
            &config(&good_plugin("pg"), &overrides(values)),
            &["--strict"]
        )
        .code,
        1
    );
}

#[test]
fn unpinned_kubectl_image_in_overrides_warns() {
    let values = "upgradeCRDs: true\nkubectl:\n  image:\n    repository: registry.example.com/bitnami/kubectl\n    tag: latest\n";
    let o = validate(&config(&good_plugin("pg"), &overrides(values)), &[]);
    let f = assert_warning(&o, "is not pinned by digest", &at("kubectl.image"));
    assert_eq!(f["line"], 15);
    assert_warning(&o, "uses the tag latest", &at("kubectl.image"));
    assert_eq!(o.code, 0);
    let strict = validate(
        &config(&good_plugin("pg"), &overrides(values)),
        &["--strict"],
    );
    assert_eq!(strict.code, 1);
}

/// `validate --json | head -c 10` and `validate 2>&1 | head -1`: the verdict survives
/// the closed pipe.
#[test]
fn a_closed_pipe_keeps_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        &config("        - name: ''\n          image: ''\n", ""),
    );
    for json in [true, false] {
        let mut args = vec!["validate".as_ref(), "-c".as_ref(), path.as_os_str()];
        if json {
            args.push("--json".as_ref());
        }
        assert_eq!(
            crate::lab::run_with_closed_pipe(&args, &[]),
            Some(1),
            "json: {json}"
        );
    }
}

/// `validate ARGS` on `text`: (exit code, stderr, JSON report with `--json`).
fn validate_raw(text: &str, args: &[&str]) -> (i32, String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, text);
    let out = Command::cargo_bin("velero-airgap")
        .unwrap()
        .current_dir(dir.path())
        .args(["validate", "-c", "config.yaml"])
        .args(args)
        .output()
        .unwrap();
    assert!(path.exists());
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
    )
}

#[test]
fn strict_failures_are_counted_in_the_summary() {
    let plugins = "        - name: pg\n          image: registry.example.com/acme/pg:1.0\n";
    let (code, stderr, _) = validate_raw(&config(plugins, ""), &["--strict"]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr.lines().last(),
        Some(
            "config.yaml: 0 error(s), 1 warning(s), 1 strict failure(s), 0 online failure(s): failed"
        ),
        "{stderr}"
    );
    let (code, _, json) = validate_raw(&config(plugins, ""), &["--strict", "--json"]);
    assert_eq!(code, 1);
    assert_eq!(json["ok"], false, "{json:#}");
    assert_eq!(json["errors"], 0);
    assert_eq!(json["warnings"], 1);
    assert_eq!(json["strictFailures"], 1);
    assert_eq!(json["onlineFailures"], 0);

    // Without --strict the same warning passes, and the summary says so.
    let (code, stderr, _) = validate_raw(&config(plugins, ""), &[]);
    assert_eq!(code, 0);
    assert_eq!(
        stderr.lines().last(),
        Some("config.yaml: 0 error(s), 1 warning(s), 0 strict failure(s), 0 online failure(s): ok"),
        "{stderr}"
    );
}

#[test]
fn online_failures_are_counted_in_the_summary() {
    // Every image is looked up on a port of 127.0.0.1 where nothing listens.
    let port = crate::lab::free_port();
    let nowhere = format!("127.0.0.1:{port}");
    let args = [
        "--online".to_string(),
        "--retries=0".to_string(),
        format!("--insecure-registry={nowhere}"),
        format!("--mirror=proxy.replicated.com={nowhere}"),
        format!("--mirror=registry.example.com={nowhere}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stderr, _) = validate_raw(&config(&good_plugin("pg"), ""), &args);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some(
            "config.yaml: 0 error(s), 0 warning(s), 0 strict failure(s), 3 online failure(s): failed"
        ),
        "{stderr}"
    );
    let mut json_args = args.clone();
    json_args.push("--json");
    let (code, _, json) = validate_raw(&config(&good_plugin("pg"), ""), &json_args);
    assert_eq!(code, 1);
    assert_eq!(json["ok"], false, "{json:#}");
    assert_eq!(json["errors"], 0);
    assert_eq!(json["onlineFailures"], 3);
    assert_eq!(json["strictFailures"], 0);
}

/// A file that cannot be read or parsed is one finding without a path; each thing is
/// said once: the file, the cause, the line.
#[test]
fn unreadable_and_unparsable_files_say_each_thing_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("velero-airgap")
        .unwrap()
        .current_dir(dir.path())
        .args(["validate", "-c", "nope.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr.lines().next(),
        Some("nope.yaml: error: cannot read nope.yaml: No such file or directory (os error 2)"),
        "{stderr}"
    );
    let (code, stderr, _) = validate_raw(
        "apiVersion: x\nkind: Config\nspec:\n  a: [1,\n  b: c: d\n",
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(
        stderr.lines().next(),
        Some("config.yaml: error: line 5: invalid YAML: invalid indentation in flow construct"),
        "{stderr}"
    );
}
