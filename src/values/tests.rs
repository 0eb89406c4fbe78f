//! Unit tests for each render step.

use super::*;

fn yaml(text: &str) -> Value {
    crate::yaml::from_str(text).unwrap()
}

fn release() -> Release {
    crate::release::select(None).unwrap()
}

fn plugin(name: &str, image: &str, policy: &str) -> PluginImage {
    PluginImage {
        name: name.into(),
        image: image.into(),
        pull_policy: policy.into(),
    }
}

fn input() -> Recipe {
    Recipe {
        release: release(),
        plugins: vec![],
        proxy_registry_domain: None,
        overrides: vec![],
        inputs: RenderInputs::default(),
    }
}

fn get<'a>(values: &'a Value, path: &str) -> &'a Value {
    images::get_path(values, path).unwrap_or_else(|| panic!("{path} missing"))
}

#[test]
fn step1_base_fills_release_images() {
    let values = base(&release()).unwrap();
    assert_eq!(
        get(&values, "image.repository"),
        "proxy.replicated.com/library/velero"
    );
    assert_eq!(get(&values, "image.tag"), "v1.18.2");
    assert_eq!(
        get(&values, "initContainers[0].image"),
        "proxy.replicated.com/library/velero-plugin-for-aws:v1.14.2"
    );
    assert_eq!(
        get(&values, "initContainers[0].name"),
        "velero-plugin-for-aws"
    );
    assert_eq!(
        get(&values, "configMaps.fs-restore-action-config.data.image"),
        "proxy.replicated.com/library/velero:v1.18.2",
        "the restore helper runs the Velero image, never ':'"
    );
    assert_eq!(
        get(&values, "credentials.existingSecret"),
        "cloud-credentials"
    );
    assert_eq!(get(&values, "deployNodeAgent"), &Value::Bool(true));
    assert_eq!(get(&values, "backupsEnabled"), &Value::Bool(false));
    assert_eq!(get(&values, "snapshotsEnabled"), &Value::Bool(false));
    assert_eq!(
        get(&values, "nodeAgent.podVolumePath"),
        "/var/lib/embedded-cluster/k0s/kubelet/pods"
    );
}

#[test]
fn step2_plugins_follow_the_aws_plugin_in_config_order() {
    let mut values = base(&release()).unwrap();
    add_plugins(
        &mut values,
        &[
            plugin("pg", "registry.example.com/acme/pg:1.0", "IfNotPresent"),
            plugin("mongo", "registry.example.com/acme/mongo:2.0", "Always"),
        ],
    );
    let names: Vec<_> = get(&values, "initContainers")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["velero-plugin-for-aws", "pg", "mongo"]);
    assert_eq!(get(&values, "initContainers[2].imagePullPolicy"), "Always");
    assert_eq!(
        get(&values, "initContainers[1].volumeMounts"),
        &yaml("[{mountPath: /target, name: plugins}]")
    );
}

#[test]
fn step2_hardens_every_plugin_and_overrides_still_win() {
    let mut recipe = input();
    recipe.plugins = vec![
        plugin("pg", "registry.example.com/acme/pg:1.0", "IfNotPresent"),
        plugin(
            "named",
            "registry.example.com/acme/named:1.0",
            "IfNotPresent",
        ),
    ];
    recipe.inputs.plugin_users = BTreeMap::from([
        (
            "velero-plugin-for-aws".to_string(),
            "65532:65532".to_string(),
        ),
        ("named".to_string(), "nonroot".to_string()),
    ]);
    let values = render(&recipe).unwrap().values;
    let context = yaml(
        "allowPrivilegeEscalation: false\nreadOnlyRootFilesystem: true\ncapabilities: {drop: [ALL]}\nseccompProfile: {type: RuntimeDefault}",
    );
    let mut non_root = context.clone();
    if let Value::Mapping(map) = &mut non_root {
        map.insert("runAsNonRoot".into(), true.into());
    }
    assert_eq!(get(&values, "initContainers[0].securityContext"), &non_root);
    // No user recorded, or a name the kubelet cannot check: no runAsNonRoot.
    assert_eq!(get(&values, "initContainers[1].securityContext"), &context);
    assert_eq!(get(&values, "initContainers[2].securityContext"), &context);
    assert_eq!(
        get(&values, "initContainers[1].resources"),
        &yaml("requests: {cpu: 10m, memory: 32Mi}\nlimits: {memory: 128Mi}")
    );

    recipe.overrides = vec![yaml("initContainers: [{name: mine, image: x/y:1}]")];
    let overridden = render(&recipe).unwrap().values;
    assert!(
        overridden["initContainers"][0]
            .get("securityContext")
            .is_none()
    );

    recipe.overrides.clear();
    recipe.inputs.plugin_hardening = false;
    let plain = render(&recipe).unwrap().values;
    assert!(plain["initContainers"][1].get("securityContext").is_none());
    assert!(plain["initContainers"][1].get("resources").is_none());
}

#[test]
fn step3_proxy_domain_replaces_exact_host_in_images_only() {
    let mut values = base(&release()).unwrap();
    add_plugins(
        &mut values,
        &[
            plugin("a", "proxy.replicated.com.evil.io/x/a:1", "IfNotPresent"),
            plugin("b", "proxy.replicated.com/vendor/b:1", "IfNotPresent"),
        ],
    );
    values
        .as_mapping_mut()
        .unwrap()
        .insert("note".into(), "proxy.replicated.com stays in text".into());
    let names = vec!["a".to_string(), "b".to_string()];
    replace_proxy_domain(&mut values, "proxy.acme.io", &names).unwrap();
    assert_eq!(
        get(&values, "image.repository"),
        "proxy.acme.io/library/velero"
    );
    assert_eq!(get(&values, "image.tag"), "v1.18.2");
    assert_eq!(
        get(&values, "initContainers[0].image"),
        "proxy.acme.io/library/velero-plugin-for-aws:v1.14.2"
    );
    assert_eq!(
        get(&values, "initContainers[1].image"),
        "proxy.replicated.com.evil.io/x/a:1"
    );
    assert_eq!(
        get(&values, "initContainers[2].image"),
        "proxy.acme.io/vendor/b:1"
    );
    assert_eq!(get(&values, "note"), "proxy.replicated.com stays in text");
    assert_eq!(
        get(&values, "configMaps.fs-restore-action-config.data.image"),
        "proxy.acme.io/library/velero:v1.18.2"
    );
}

#[test]
fn step4_proxy_env_as_name_value_list() {
    let mut values = yaml("{}");
    add_proxy_env(
        &mut values,
        &ProxySettings {
            http_proxy: Some("http://p:3128".into()),
            https_proxy: None,
            no_proxy: Some("localhost,10.0.0.0/8".into()),
        },
    );
    let expected = yaml(
        "[{name: HTTP_PROXY, value: 'http://p:3128'}, {name: NO_PROXY, value: 'localhost,10.0.0.0/8'}]",
    );
    assert_eq!(get(&values, "configuration.extraEnvVars"), &expected);
    assert_eq!(get(&values, "nodeAgent.extraEnvVars"), &expected);
}

#[test]
fn proxy_credentials_are_found_per_flag_and_hidden_in_output() {
    let settings = |http: Option<&str>, https: Option<&str>| ProxySettings {
        http_proxy: http.map(str::to_string),
        https_proxy: https.map(str::to_string),
        no_proxy: Some("10.0.0.0/8".into()),
    };
    assert_eq!(
        settings(Some("http://p:3128"), None).credential_flag(),
        None
    );
    assert_eq!(
        settings(Some("http://p:3128"), Some("http://u:s3cret@p:3128")).credential_flag(),
        Some("--https-proxy")
    );
    assert_eq!(
        settings(Some("u:s3cret@p:3128"), None).credential_flag(),
        Some("--http-proxy")
    );
    // `@` after the authority is not userinfo.
    assert!(!settings(Some("http://p:3128/a@b"), None).has_credentials());
    let secret = settings(Some("u:s3cret@p:3128"), Some("http://u:s3cret@p:3128"));
    let redacted = secret.redacted();
    assert_eq!(redacted.http_proxy.as_deref(), Some("***@p:3128"));
    assert_eq!(redacted.https_proxy.as_deref(), Some("http://***@p:3128"));
    assert_eq!(redacted.no_proxy.as_deref(), Some("10.0.0.0/8"));
    let debug = format!("{secret:?}");
    assert!(
        !debug.contains("s3cret") && debug.contains("***"),
        "{debug}"
    );
    let plain = settings(Some("http://p:3128"), None);
    assert_eq!(plain.redacted(), plain);
}

#[test]
fn step5_ca_bundle_volume_mount_and_cert_dir() {
    let mut values = yaml("configuration: {extraEnvVars: [{name: A, value: b}]}");
    add_ca_bundle(&mut values, "/etc/ssl/certs/ca-certificates.crt");
    assert_eq!(
        get(&values, "extraVolumes"),
        &yaml(
            "[{name: host-ca-bundle, hostPath: {path: /etc/ssl/certs/ca-certificates.crt, type: FileOrCreate}}]"
        )
    );
    assert_eq!(
        get(&values, "extraVolumeMounts"),
        &yaml("[{mountPath: /certs/ca-certificates.crt, name: host-ca-bundle, readOnly: true}]")
    );
    assert_eq!(
        get(&values, "nodeAgent.extraVolumes"),
        get(&values, "extraVolumes")
    );
    assert_eq!(
        get(&values, "configuration.extraEnvVars"),
        &yaml("[{name: A, value: b}, {name: SSL_CERT_DIR, value: /certs}]")
    );
}

#[test]
fn step6_overrides_applied_last_as_merge_patch() {
    let mut input = input();
    input.inputs.proxy.http_proxy = Some("http://p".into());
    input.overrides = vec![
        yaml("configuration: {extraEnvVars: [{name: X, value: y}]}\nbackupsEnabled: null\n"),
        yaml("resources: {limits: {memory: 1Gi}}"),
    ];
    let values = render(&input).unwrap().values;
    assert_eq!(
        get(&values, "configuration.extraEnvVars"),
        &yaml("[{name: X, value: y}]"),
        "lists are replaced whole"
    );
    assert!(values.get("backupsEnabled").is_none(), "null deletes");
    assert_eq!(get(&values, "resources.limits.memory"), "1Gi");
}

#[test]
fn step7_collects_every_image_the_chart_runs() {
    let mut input = input();
    input.plugins = vec![plugin(
        "pg",
        "registry.example.com/acme/pg:1.0",
        "IfNotPresent",
    )];
    input.overrides = vec![yaml(
        "upgradeCRDs: true\nkubectl: {image: {repository: docker.io/bitnami/kubectl, tag: '1.33'}}",
    )];
    let rendered = render(&input).unwrap();
    let images: Vec<_> = rendered
        .images
        .iter()
        .map(|u| (u.field.role.to_string(), u.reference.to_string()))
        .collect();
    assert_eq!(
        images,
        [
            (
                "velero".into(),
                "proxy.replicated.com/library/velero:v1.18.2".to_string()
            ),
            (
                "aws-plugin".into(),
                "proxy.replicated.com/library/velero-plugin-for-aws:v1.14.2".into()
            ),
            (
                "plugin:pg".into(),
                "registry.example.com/acme/pg:1.0".into()
            ),
            (
                "velero".into(),
                "proxy.replicated.com/library/velero:v1.18.2".into()
            ),
            ("other".into(), "docker.io/bitnami/kubectl:1.33".into()),
        ]
    );
    assert_eq!(rendered.distinct_images().len(), 4);
}

#[test]
fn step8_airgap_rewrites_pins_and_sets_pull_policy() {
    let mut input = input();
    input.plugins = vec![
        plugin("pg", "registry.example.com/acme/pg:1.0", "Always"),
        plugin("frozen", "registry.example.com/acme/frozen:2", "Never"),
    ];
    let rendered = render(&input).unwrap();
    let digest = format!("sha256:{}", "a".repeat(64));
    let pins = BTreeMap::from([(
        Reference::parse("proxy.replicated.com/library/velero:v1.18.2").unwrap(),
        digest.parse().unwrap(),
    )]);
    let values = to_airgap(&rendered, DEFAULT_LOCAL_REGISTRY, &pins).unwrap();
    assert_eq!(
        get(&values, "image.repository"),
        "10.244.128.11:5000/library/velero"
    );
    assert_eq!(
        get(&values, "image.tag").as_str().unwrap(),
        format!("v1.18.2@{digest}")
    );
    assert_eq!(get(&values, "image.pullPolicy"), "IfNotPresent");
    assert_eq!(
        get(&values, "initContainers[1].image"),
        "10.244.128.11:5000/acme/pg:1.0"
    );
    assert_eq!(
        get(&values, "initContainers[1].imagePullPolicy"),
        "IfNotPresent"
    );
    assert_eq!(get(&values, "initContainers[2].imagePullPolicy"), "Never");
    assert_eq!(
        get(&values, "configMaps.fs-restore-action-config.data.image")
            .as_str()
            .unwrap(),
        format!("10.244.128.11:5000/library/velero:v1.18.2@{digest}")
    );
}

#[test]
fn output_is_deterministic_and_quotes_tags() {
    let rendered = render(&input()).unwrap();
    let first = to_yaml(&rendered.values);
    let second = to_yaml(&render(&input()).unwrap().values);
    assert_eq!(first, second);
    assert!(first.contains("  tag: \"v1.18.2\"\n"), "{first}");
}

#[test]
fn render_errors_print_their_cause_once() {
    let mut with_bad_image = input();
    with_bad_image.overrides = vec![yaml("image: {repository: Bad/Repo, tag: '1'}")];
    let error = render(&with_bad_image).unwrap_err();
    assert_eq!(
        crate::chain(&error),
        "in image: invalid image reference \"Bad/Repo:1\": repository name must be lowercase"
    );
    let rendered = render(&input()).unwrap();
    let error = to_airgap(&rendered, "http://10.0.0.1:5000", &BTreeMap::new()).unwrap_err();
    assert_eq!(
        crate::chain(&error),
        "registry address: give the host only, without http://"
    );
}
