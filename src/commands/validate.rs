//! `velero-airgap validate`: print every finding, exit 1 on errors (and on
//! warnings with `--strict`).

use super::{ExitStatus, Output};
use crate::cli::ValidateArgs;
use velero_airgap::release;
use velero_airgap::validate::{self, Severity};

/// Runs `validate`.
pub fn run(args: ValidateArgs, output: Output) -> anyhow::Result<ExitStatus> {
    let release = release::select(args.config.velero_version.as_deref())?;
    let options = validate::Options {
        release,
        local_registry: args.local_registry,
    };
    let findings = validate::validate_file(&args.config.config, &options);
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    if args.json {
        let report = serde_json::json!({
            "file": args.config.config,
            "errors": errors,
            "warnings": warnings,
            "findings": findings,
        });
        super::write_output(None, format!("{report:#}\n").as_bytes())?;
    } else {
        let file = args.config.config.display();
        for finding in &findings {
            if !output.quiet || finding.severity == Severity::Error {
                eprintln!("{file}: {finding}");
            }
        }
        if !output.quiet {
            match (errors, warnings) {
                (0, 0) => eprintln!("{file}: ok"),
                _ => eprintln!("{file}: {errors} error(s), {warnings} warning(s)"),
            }
        }
    }
    let failed = errors > 0 || (args.strict && warnings > 0);
    Ok(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}
