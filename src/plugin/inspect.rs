//! Inspecting one platform manifest of a plugin image, once its layers are applied:
//! recognise the copy into `/target`, check the copy program and every binary it
//! installs, and read their Go build information.

use super::entrypoint::{CopyCommand, CopyPlan, SymlinkHandling, TARGET_DIR, recognise};
use super::filesystem::{EntryKind, Filesystem};
use super::glob;
use super::report::{BinaryReport, Finding, PluginReport, codes};
use crate::oci::ImageConfig;

/// The exact message of the `not-a-plugin` finding.
pub const NOT_A_PLUGIN_MESSAGE: &str =
    "not a Velero plugin image: its entrypoint does not copy into /target";

/// Where a dynamic loader looks for libraries in the images we meet (glibc and musl,
/// amd64 and arm64).
pub const LIBRARY_DIRS: &[&str] = &[
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
];

/// The report of one plugin image (one platform manifest): `filesystem` is its layers
/// applied, `velero` the Velero image's of the same platform when it was read (a dynamic
/// plugin binary runs only when Velero's image holds its loader and libraries), and
/// `allow_unrecognised` turns an unrecognised entrypoint into a warning.
pub fn inspect_plugin(
    config: &ImageConfig,
    filesystem: &Filesystem,
    velero: Option<&Filesystem>,
    allow_unrecognised: bool,
) -> PluginReport {
    let plan = recognise(&config.argv());
    let mut findings = check_recognised(plan.as_ref(), allow_unrecognised);
    let mut binaries = Vec::new();
    if let Some(plan) = &plan {
        findings.extend(check_copy_programs(filesystem, config, plan));
        let (reports, binary_findings) = check_binaries(filesystem, config, plan, velero);
        findings.extend(binary_findings);
        findings.extend(check_build_info(&reports));
        binaries = reports;
    }
    findings.extend(check_user(config));
    PluginReport {
        platform: config.platform.to_string(),
        entrypoint: config.entrypoint.clone(),
        cmd: config.cmd.clone(),
        user: config.user.clone(),
        binaries,
        findings,
    }
}

/// A source pattern made absolute against the working directory.
fn absolute_pattern(source: &str, working_dir: &str) -> String {
    if source.starts_with('/') {
        source.to_string()
    } else {
        format!(
            "{}/{source}",
            glob::escape(working_dir.trim_end_matches('/'))
        )
    }
}

/// Splits a trailing `/.` (copy the directory's contents) off a pattern.
fn split_contents(pattern: &str) -> (String, bool) {
    let trimmed = pattern.trim_end_matches('/');
    match trimmed.strip_suffix("/.") {
        Some("") => ("/".to_string(), true),
        Some(base) => (base.to_string(), true),
        None if trimmed.is_empty() => ("/".to_string(), false),
        None => (trimmed.to_string(), false),
    }
}

/// Check 1a: the entrypoint must be a copy into `/target`.
fn check_recognised(plan: Option<&CopyPlan>, allow_unrecognised: bool) -> Vec<Finding> {
    match plan {
        Some(_) => Vec::new(),
        None if allow_unrecognised => {
            vec![Finding::warning(codes::NOT_A_PLUGIN, NOT_A_PLUGIN_MESSAGE)]
        }
        None => vec![Finding::error(codes::NOT_A_PLUGIN, NOT_A_PLUGIN_MESSAGE)],
    }
}

/// Check 1b: the shell and the copy programs exist in the image and can run there.
fn check_copy_programs(
    filesystem: &Filesystem,
    config: &ImageConfig,
    plan: &CopyPlan,
) -> Vec<Finding> {
    let path_dirs = config.path_dirs();
    let searched = path_dirs.join(":");
    let mut findings = Vec::new();
    let mut programs: Vec<(&str, &str)> = Vec::new();
    if let Some(shell) = &plan.shell {
        programs.push((shell, codes::MISSING_SHELL));
    }
    for command in &plan.commands {
        if !programs
            .iter()
            .any(|(program, _)| *program == command.program)
        {
            programs.push((&command.program, codes::MISSING_COPY_PROGRAM));
        }
    }
    for (program, code) in programs {
        let located = if program.contains('/') && !program.starts_with('/') {
            format!("{}/{program}", config.working_dir.trim_end_matches('/'))
        } else {
            program.to_string()
        };
        let Some(found) = filesystem.which(&located, &path_dirs) else {
            findings.push(Finding::error(
                code,
                format!("the entrypoint runs `{program}`, which is not an executable file in the image (PATH {searched})"),
            ));
            continue;
        };
        let Some(elf) = filesystem
            .analysis(&found)
            .and_then(|analysis| analysis.elf.as_ref())
        else {
            continue;
        };
        if let Some(problem) = architecture_mismatch(&found, elf.architecture, elf.machine, config)
        {
            findings.push(problem);
        }
        if let Some(interpreter) = &elf.interpreter {
            let missing = missing_libraries(filesystem, interpreter, &elf.needed);
            if !missing.is_empty() {
                findings.push(Finding::error(
                    codes::MISSING_LIBRARY,
                    format!(
                        "`{found}` needs {}, which the image does not have",
                        missing.join(", ")
                    ),
                ));
            }
        }
    }
    findings
}

/// The dynamic loader and libraries from `needed` that `filesystem` lacks: the interpreter at its
/// path, each library by its path when it has a `/`, else in one of [`LIBRARY_DIRS`].
fn missing_libraries(filesystem: &Filesystem, interpreter: &str, needed: &[String]) -> Vec<String> {
    let is_file = |path: &str| {
        matches!(
            filesystem.lookup(path).map(|entry| &entry.kind),
            Some(EntryKind::File { .. })
        )
    };
    let mut missing = Vec::new();
    if !interpreter.is_empty() && !is_file(interpreter) {
        missing.push(interpreter.to_string());
    }
    for library in needed {
        let found = if library.contains('/') {
            is_file(library)
        } else {
            LIBRARY_DIRS
                .iter()
                .any(|directory| is_file(&format!("{directory}/{library}")))
        };
        if !found {
            missing.push(library.clone());
        }
    }
    missing
}

/// One file a copy installs.
struct Installed<'a> {
    path: String,
    target_name: String,
    command: &'a CopyCommand,
    /// Whether the copy follows it when it is a symbolic link.
    followed: bool,
}

/// Check 2: every file the copies install exists, is an executable static ELF for the
/// image's architecture.
fn check_binaries(
    filesystem: &Filesystem,
    config: &ImageConfig,
    plan: &CopyPlan,
    velero: Option<&Filesystem>,
) -> (Vec<BinaryReport>, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut installed = Vec::new();
    for command in &plan.commands {
        installed.extend(expand(filesystem, config, command, &mut findings));
    }
    let reports = installed
        .iter()
        .map(|file| check_binary(filesystem, config, file, velero, &mut findings))
        .collect();
    (reports, findings)
}

/// The files one copy installs, with findings for sources that lead nowhere.
fn expand<'a>(
    filesystem: &Filesystem,
    config: &ImageConfig,
    command: &'a CopyCommand,
    findings: &mut Vec<Finding>,
) -> Vec<Installed<'a>> {
    let mut sources: Vec<(String, bool)> = Vec::new();
    for source in &command.sources {
        let (base, contents) = split_contents(&absolute_pattern(source, &config.working_dir));
        let matches = if glob::has_wildcards(&base) {
            filesystem.glob(&base)
        } else {
            vec![glob::unescape(&base)]
        };
        if matches.is_empty() {
            let source = glob::unescape(source);
            findings.push(Finding::error(
                codes::MISSING_BINARY,
                format!("`{source}` matches nothing in the image"),
            ));
        }
        sources.extend(matches.into_iter().map(|path| (path, contents)));
    }
    let destination = command
        .destination
        .strip_prefix(TARGET_DIR)
        .unwrap_or("")
        .trim_start_matches('/');
    let into_directory = command.into_directory || sources.len() > 1;
    let mut installed = Vec::new();
    for (path, contents) in sources {
        let is_directory = matches!(
            filesystem.lookup(&path).map(|entry| &entry.kind),
            Some(EntryKind::Directory { .. })
        );
        let name = if contents || path == "/" {
            ""
        } else {
            path.rsplit('/').next().unwrap_or("")
        };
        let prefix = if into_directory {
            join_relative(destination, name)
        } else {
            destination.to_string()
        };
        if !is_directory {
            let followed = command.symlinks != SymlinkHandling::Copy;
            installed.push(Installed {
                path,
                target_name: prefix,
                command,
                followed,
            });
            continue;
        }
        if !command.recursive {
            findings.push(Finding::error(
                codes::DIRECTORY_NOT_COPIED,
                format!("`{path}` is a directory, which `{}` does not copy without -r, so the copy fails", command.program),
            ));
            continue;
        }
        let files = filesystem.files_under(&path);
        if files.is_empty() {
            findings.push(Finding::error(
                codes::MISSING_BINARY,
                format!("`{path}` holds no files to copy"),
            ));
        }
        let written = path.trim_end_matches('/');
        for (file, _) in files {
            let relative = file
                .strip_prefix(written)
                .unwrap_or(&file)
                .trim_start_matches('/');
            installed.push(Installed {
                target_name: join_relative(&prefix, relative),
                path: file,
                command,
                followed: command.symlinks == SymlinkHandling::Follow,
            });
        }
    }
    installed
}

/// `base/name` for relative paths, either of which may be empty.
fn join_relative(base: &str, name: &str) -> String {
    match (base.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (_, true) => base.to_string(),
        _ => format!("{base}/{name}"),
    }
}

/// Checks and reports one installed file.
fn check_binary(
    filesystem: &Filesystem,
    config: &ImageConfig,
    file: &Installed,
    velero: Option<&Filesystem>,
    findings: &mut Vec<Finding>,
) -> BinaryReport {
    let path = &file.path;
    let mut report = BinaryReport {
        path: path.clone(),
        target: file.target_name.clone(),
        architecture: None,
        is_static: None,
        interpreter: None,
        needed: Vec::new(),
        go_version: None,
        main_module: None,
        velero_version: None,
    };
    let link = filesystem.lookup_no_follow(path).map(|entry| &entry.kind);
    if let (Some(EntryKind::Symlink { target }), false) = (link, file.followed) {
        findings.push(Finding::error(
            codes::COPIES_SYMLINK,
            format!(
                "`{path}` is a symbolic link to `{target}`, which `{}` copies as a link; it will not resolve in Velero's container",
                file.command.program
            ),
        ));
    }
    let executable = match filesystem.lookup(path).map(|entry| &entry.kind) {
        None => {
            findings.push(Finding::error(
                codes::MISSING_BINARY,
                format!("`{path}` does not exist in the image once its layers are applied"),
            ));
            return report;
        }
        Some(EntryKind::File { mode, .. }) => mode & 0o111 != 0,
        Some(_) => false,
    };
    if !executable {
        findings.push(Finding::error(
            codes::NOT_EXECUTABLE,
            format!(
                "`{path}` is not a regular file with an execute bit, so Velero will not run it"
            ),
        ));
        // Only executable files are analysed (see `layer`): nothing more to say.
        return report;
    }
    let Some(analysis) = filesystem.analysis(path) else {
        return report;
    };
    let Some(elf) = &analysis.elf else {
        findings.push(Finding::error(
            codes::NOT_ELF,
            format!("`{path}` is not an ELF executable"),
        ));
        return report;
    };
    report.architecture = Some(
        elf.architecture
            .map_or_else(|| format!("machine-{}", elf.machine), str::to_string),
    );
    report.is_static = elf.is_static();
    report.interpreter = elf.interpreter.clone();
    report.needed = elf.needed.clone();
    if let Some(go) = &analysis.go {
        report.go_version = Some(go.go_version.clone());
        report.main_module = go.main.as_ref().map(|module| module.path.clone());
        report.velero_version = go.velero_version();
    }
    findings.extend(architecture_mismatch(
        path,
        elf.architecture,
        elf.machine,
        config,
    ));
    match (report.is_static, &report.interpreter) {
        (Some(false), Some(interpreter)) => {
            findings.push(dynamic_binary(path, interpreter, elf, velero));
        }
        (None, _) => findings.push(Finding::warning(codes::UNKNOWN_LINKAGE, format!("`{path}` has program headers that could not be read; whether it is static is unknown"))),
        _ => {}
    }
    report
}

/// The finding for a dynamically linked plugin binary. It runs inside Velero's
/// container, so it can start only when the Velero image holds its loader and every
/// library it names: then a warning, else (or when Velero's image was not read) an error.
fn dynamic_binary(
    path: &str,
    interpreter: &str,
    elf: &super::elf::ElfInfo,
    velero: Option<&Filesystem>,
) -> Finding {
    let libraries = if elf.needed_known {
        elf.needed.join(", ")
    } else {
        "libraries that could not be read".to_string()
    };
    let linked =
        format!("`{path}` is dynamically linked (interpreter {interpreter}; needs {libraries})");
    let missing = velero.map(|velero| missing_libraries(velero, interpreter, &elf.needed));
    match missing {
        Some(missing) if missing.is_empty() && elf.needed_known => Finding::warning(
            codes::DYNAMIC_BINARY,
            format!(
                "{linked}; the Velero image has all of them, but a static build (CGO_ENABLED=0) would not depend on it"
            ),
        ),
        Some(missing) if !missing.is_empty() => Finding::error(
            codes::DYNAMIC_BINARY,
            format!(
                "{linked}, and the Velero image it runs in lacks {}; build it static (CGO_ENABLED=0)",
                missing.join(", ")
            ),
        ),
        _ => Finding::error(
            codes::DYNAMIC_BINARY,
            format!(
                "{linked}; Velero runs plugins inside its own container, so they must be static (CGO_ENABLED=0)"
            ),
        ),
    }
}

/// A `wrong-architecture` error when an ELF file is not for the image's architecture.
fn architecture_mismatch(
    path: &str,
    architecture: Option<&str>,
    machine: u16,
    config: &ImageConfig,
) -> Option<Finding> {
    let expected = config.platform.normalized_architecture();
    if architecture == Some(expected) {
        return None;
    }
    let actual = architecture.map_or_else(|| format!("ELF machine {machine}"), str::to_string);
    Some(Finding::error(
        codes::WRONG_ARCHITECTURE,
        format!(
            "`{path}` is built for {actual} but the image is for {}",
            config.platform
        ),
    ))
}

/// Check 3: Go build information, without which compatibility is unknown.
fn check_build_info(binaries: &[BinaryReport]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for binary in binaries
        .iter()
        .filter(|binary| binary.architecture.is_some())
    {
        let path = &binary.path;
        if binary.go_version.is_none() {
            findings.push(Finding::note(
                codes::NO_BUILD_INFO,
                format!("`{path}` carries no Go build information (Go 1.18 or later); compatibility with Velero is unknown"),
            ));
        } else if binary.velero_version.is_none() {
            findings.push(Finding::note(
                codes::NO_VELERO_DEPENDENCY,
                format!("`{path}` does not record a Velero dependency; compatibility with Velero is unknown"),
            ));
        }
    }
    findings
}

/// Check 5: plugin init containers need no root.
fn check_user(config: &ImageConfig) -> Vec<Finding> {
    if !config.runs_as_root() {
        return Vec::new();
    }
    let user = match config.user.as_deref() {
        None | Some("") => "no user is set".to_string(),
        Some(user) => format!("User is {user:?}"),
    };
    vec![Finding::warning(
        codes::RUNS_AS_ROOT,
        format!("the image runs as root ({user}); copying plugins needs no privileges"),
    )]
}

#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod tests;
