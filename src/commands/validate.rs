//! `velero-airgap validate`: print every finding, exit 1 on errors (and on
//! warnings with `--strict`).

use super::plugin_table::plugin_table;
use super::settings;
use super::{ExitStatus, Output};
use crate::cli::ValidateArgs;
use velero_airgap::pack::Event;
use velero_airgap::pack::online::{self, OnlineResult};
use velero_airgap::plugin::Severity as FindingSeverity;
use velero_airgap::release;
use velero_airgap::sign::SignatureStatus;
use velero_airgap::validate::{self, Severity};

/// `--online`: every image resolved through the registry flags, and the plugin checks
/// run on the plugin images' layers; their findings are printed as they come.
fn online(args: &ValidateArgs, output: Output) -> anyhow::Result<Vec<OnlineResult>> {
    let request = settings::online_request(args)?;
    let file = args.config.config.display().to_string();
    let on_event = |event| {
        if let Event::PluginFinding { subject, finding } = event
            && !args.json
            && (!output.quiet || finding.severity == FindingSeverity::Error)
        {
            note!(
                "{file}: {}: {subject}: {}",
                finding.severity,
                finding.message
            );
        }
    };
    let report = super::run_async(Default::default(), async {
        Ok(online::check_online(&request, &on_event).await?)
    })?;
    for warning in &report.warnings {
        note!("warning: {warning}");
    }
    Ok(report.images)
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
        Some(online(&args, output)?)
    } else {
        None
    };
    let online_failures = online_results.iter().flatten().filter(|r| !r.ok).count();
    // Under --strict every warning fails the run: the counts say what decided the code.
    let strict_failures = if args.strict { warnings } else { 0 };
    let failures = errors + strict_failures + online_failures;
    if args.json {
        let report = serde_json::json!({
            "file": args.config.config,
            "ok": failures == 0,
            "errors": errors,
            "warnings": warnings,
            "strictFailures": strict_failures,
            "onlineFailures": online_failures,
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
            let table = plugin_table(
                online_results
                    .iter()
                    .flatten()
                    .map(|result| (&result.role, &result.plugin)),
            );
            super::write_output(None, table.as_bytes())?;
            note!(
                "{file}: {}",
                summary(errors, warnings, strict_failures, online_failures)
            );
        }
    }
    Ok(if failures > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// The last line: every count that decides the exit code, and the verdict.
fn summary(
    errors: usize,
    warnings: usize,
    strict_failures: usize,
    online_failures: usize,
) -> String {
    let failures = errors + strict_failures + online_failures;
    if failures + warnings == 0 {
        return "ok".to_string();
    }
    format!(
        "{errors} error(s), {warnings} warning(s), {strict_failures} strict failure(s), {online_failures} online failure(s): {}",
        if failures > 0 { "failed" } else { "ok" }
    )
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn the_summary_names_what_decided_the_exit_code() {
        assert_eq!(summary(0, 0, 0, 0), "ok");
        assert_eq!(
            summary(0, 2, 0, 0),
            "0 error(s), 2 warning(s), 0 strict failure(s), 0 online failure(s): ok"
        );
        assert_eq!(
            summary(0, 2, 2, 0),
            "0 error(s), 2 warning(s), 2 strict failure(s), 0 online failure(s): failed"
        );
        assert_eq!(
            summary(0, 0, 0, 3),
            "0 error(s), 0 warning(s), 0 strict failure(s), 3 online failure(s): failed"
        );
        assert_eq!(
            summary(1, 0, 0, 0),
            "1 error(s), 0 warning(s), 0 strict failure(s), 0 online failure(s): failed"
        );
    }
}
