//! `velero-airgap validate`: print every finding, exit 1 on errors (and on
//! warnings with `--strict`).

use super::settings;
use super::{ExitStatus, Output};
use crate::cli::ValidateArgs;
use velero_airgap::pack::online::{self, OnlineResult};
use velero_airgap::release;
use velero_airgap::sign::SignatureStatus;
use velero_airgap::validate::{self, Severity};

/// `--online`: every image resolved (manifests only) through the registry flags.
fn online(args: &ValidateArgs) -> anyhow::Result<Vec<OnlineResult>> {
    let request = settings::online_request(args)?;
    super::run_async(Default::default(), async {
        Ok(online::check_online(&request).await?)
    })
}

/// Runs `validate`.
pub fn run(args: ValidateArgs, output: Output) -> anyhow::Result<ExitStatus> {
    let release = release::select(args.config.velero_version.as_deref())?;
    let options = validate::Options {
        release,
        local_registry: args.local_registry.clone(),
    };
    let findings = validate::validate_file(&args.config.config, &options);
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    let online_results = if args.online && errors == 0 {
        Some(online(&args)?)
    } else {
        None
    };
    let online_failures = online_results.iter().flatten().filter(|r| !r.ok).count();
    if args.json {
        let report = serde_json::json!({
            "file": args.config.config,
            "errors": errors,
            "warnings": warnings,
            "findings": findings,
            "online": online_results,
        });
        super::write_output(None, format!("{report:#}\n").as_bytes())?;
    } else {
        let file = args.config.config.display();
        for finding in &findings {
            if !output.quiet || finding.severity == Severity::Error {
                note!("{file}: {finding}");
            }
        }
        for result in online_results.iter().flatten() {
            match (&result.error, &result.signature) {
                (Some(error), _) => note!("{file}: error: {error}"),
                (None, signature) if !output.quiet => {
                    let signature = match signature {
                        Some(SignatureStatus::Verified { key_fingerprint }) => {
                            format!(", signed by {key_fingerprint}")
                        }
                        Some(SignatureStatus::Unsigned) => ", unsigned".to_string(),
                        None => String::new(),
                    };
                    note!(
                        "{file}: online: {} resolves to {}{signature}",
                        result.reference,
                        result
                            .digest
                            .map_or_else(|| "?".to_string(), |d| d.to_string())
                    );
                }
                _ => {}
            }
        }
        if !output.quiet {
            match (errors, warnings) {
                (0, 0) => note!("{file}: ok"),
                _ => note!("{file}: {errors} error(s), {warnings} warning(s)"),
            }
        }
    }
    let failed = errors > 0 || online_failures > 0 || (args.strict && warnings > 0);
    Ok(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}
