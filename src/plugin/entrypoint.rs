//! Recognising what a plugin image's entrypoint does: copy its binaries into `/target`,
//! the emptyDir that Velero's server container later sees as `/plugins`.
//!
//! Accepted forms: `cp-plugin SRC /target/NAME`, `cp [flags] SRC... DST` with `DST` at or
//! under `/target` (also as `busybox cp`), and a shell (`sh -c`, `/bin/busybox sh -c`, ...)
//! whose script is copies joined by `&&`, `;` or newlines. Anything else (a server, a
//! `sleep`, a copy elsewhere, shell expansions we cannot follow) is not recognised.

use serde::{Deserialize, Serialize};

use super::glob;

/// Where the init container mounts the emptyDir shared with Velero.
pub const TARGET_DIR: &str = "/target";

/// How an image copies its plugin binaries into `/target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyPlan {
    /// The first copy's program as written, e.g. `cp-plugin`, `/bin/cp` or `busybox`.
    pub program: String,
    /// Every copy's sources, in order, as glob patterns (see [`glob`]): literal paths
    /// from an exec-form entrypoint are escaped, wildcards from a shell are kept.
    pub sources: Vec<String>,
    /// The shell as written (`/bin/sh`, `sh`, `/bin/busybox`) when the copies run in `sh -c`.
    pub shell: Option<String>,
    /// Each copy command; `program` and `sources` above summarise them.
    pub commands: Vec<CopyCommand>,
}

/// One copy command into `/target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyCommand {
    /// The program as written; `busybox` for `busybox cp`.
    pub program: String,
    /// The sources as glob patterns; relative ones are relative to the working directory.
    pub sources: Vec<String>,
    /// The destination, normalised: `/target` or a path under it.
    pub destination: String,
    /// Whether the sources go into `destination` as a directory, rather than one source
    /// being copied to the new name `destination`.
    pub into_directory: bool,
    /// Whether directories are copied recursively (`-r`, `-R`, `-a`).
    pub recursive: bool,
    /// Which symbolic links the copy follows rather than copying them as links.
    pub symlinks: SymlinkHandling,
}

/// Which symbolic links a copy follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SymlinkHandling {
    /// Every link, also those found while recursing (`cp -L`).
    Follow,
    /// Links named on the command line (plain `cp`, `cp -H`, `cp-plugin`).
    FollowArguments,
    /// None: links are copied as links (`cp -r`, `cp -a`, `cp -P`).
    Copy,
}

/// Recognises an entrypoint (Entrypoint followed by Cmd) that copies into `/target`.
pub fn recognise(argv: &[String]) -> Option<CopyPlan> {
    let (first, arguments) = argv.split_first()?;
    let (shell, script) = match shell_script(first, arguments) {
        Some((shell, script)) => (Some(shell), script),
        None => {
            let words: Vec<String> = argv.iter().map(|word| glob::escape(word)).collect();
            return plan(None, vec![copy_command(&words)?]);
        }
    };
    let mut commands = Vec::new();
    for words in split_script(script)? {
        let words = match words.first().map(String::as_str) {
            Some("exec") => &words[1..],
            _ => &words[..],
        };
        commands.push(copy_command(words)?);
    }
    plan(shell, commands)
}

/// Summarises recognised commands; `None` when there are none.
fn plan(shell: Option<String>, commands: Vec<CopyCommand>) -> Option<CopyPlan> {
    let program = commands.first()?.program.clone();
    let mut sources: Vec<String> = Vec::new();
    for source in commands.iter().flat_map(|command| &command.sources) {
        if !sources.contains(source) {
            sources.push(source.clone());
        }
    }
    Some(CopyPlan {
        program,
        sources,
        shell,
        commands,
    })
}

/// The last path component of a program name.
fn base_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

fn is_shell(program: &str) -> bool {
    matches!(base_name(program), "sh" | "ash" | "bash" | "dash")
}

/// `(shell as written, script)` for `sh [-e|-x|-u] -c SCRIPT [NAME ARGS...]`, also as
/// `busybox sh -c`.
fn shell_script<'a>(first: &str, arguments: &'a [String]) -> Option<(String, &'a str)> {
    let arguments = if base_name(first) == "busybox" {
        let (applet, rest) = arguments.split_first()?;
        is_shell(applet).then_some(rest)?
    } else {
        is_shell(first).then_some(arguments)?
    };
    let mut saw_c = false;
    for argument in arguments {
        let Some(letters) = argument
            .strip_prefix('-')
            .filter(|letters| !letters.is_empty())
        else {
            return saw_c.then(|| (first.to_string(), argument.as_str()));
        };
        if !letters
            .chars()
            .all(|letter| matches!(letter, 'c' | 'e' | 'u' | 'x' | 'v'))
        {
            return None;
        }
        saw_c |= letters.contains('c');
    }
    None
}

/// Splits a shell script into commands of words written as glob patterns. `None` for
/// anything beyond simple quoting and `&&`/`;`/newline lists: pipes, redirections,
/// expansions, subshells, `||`, background jobs, comments.
fn split_script(script: &str) -> Option<Vec<Vec<String>>> {
    let mut commands: Vec<Vec<String>> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut characters = script.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            ' ' | '\t' | '\n' | ';' | '&' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                if character == '&' && characters.next_if_eq(&'&').is_none() {
                    return None;
                }
                if matches!(character, '\n' | ';' | '&') && !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match characters.next()? {
                        '\'' => break,
                        quoted => glob::push_escaped(&mut word, quoted),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match characters.next()? {
                        '"' => break,
                        '$' | '`' => return None,
                        '\\' => match characters.next()? {
                            escaped @ ('"' | '\\' | '$' | '`') => {
                                glob::push_escaped(&mut word, escaped);
                            }
                            '\n' => {}
                            other => {
                                glob::push_escaped(&mut word, '\\');
                                glob::push_escaped(&mut word, other);
                            }
                        },
                        quoted => glob::push_escaped(&mut word, quoted),
                    }
                }
            }
            '\\' => match characters.next()? {
                '\n' => {}
                escaped => {
                    in_word = true;
                    glob::push_escaped(&mut word, escaped);
                }
            },
            '|' | '<' | '>' | '(' | ')' | '$' | '`' | '{' | '}' => return None,
            '#' | '~' if !in_word => return None,
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if !words.is_empty() {
        commands.push(words);
    }
    Some(commands)
}

/// Recognises one copy command (words as glob patterns) into `/target`.
fn copy_command(words: &[String]) -> Option<CopyCommand> {
    let first = glob::unescape(words.first()?);
    match base_name(&first) {
        "cp-plugin" => cp_plugin(first, &words[1..]),
        "cp" => cp(first, &words[1..]),
        "busybox" if words.get(1).map(|applet| glob::unescape(applet)).as_deref() == Some("cp") => {
            cp(first, &words[2..])
        }
        _ => None,
    }
}

/// `cp-plugin SRC DST`: Velero's single-file copier; `DST` names the file under `/target`.
fn cp_plugin(program: String, arguments: &[String]) -> Option<CopyCommand> {
    let [source, destination] = arguments else {
        return None;
    };
    let destination = target_path(destination)?;
    if destination == TARGET_DIR {
        return None;
    }
    Some(CopyCommand {
        program,
        sources: vec![source.clone()],
        destination,
        into_directory: false,
        recursive: false,
        symlinks: SymlinkHandling::FollowArguments,
    })
}

/// `cp [OPTION]... SRC... DST` and `cp [OPTION]... -t DIR SRC...` as GNU and busybox take them.
fn cp(program: String, arguments: &[String]) -> Option<CopyCommand> {
    let mut operands: Vec<&String> = Vec::new();
    let (mut recursive, mut follow_all, mut follow_arguments, mut copy_links) =
        (false, false, false, false);
    let mut target_directory: Option<String> = None;
    let mut no_target_directory = false;
    let mut options_done = false;
    let mut words = arguments.iter();
    while let Some(word) = words.next() {
        let text = glob::unescape(word);
        if options_done || !text.starts_with('-') || text == "-" {
            operands.push(word);
            continue;
        }
        if let Some(long) = text.strip_prefix("--") {
            match long.split_once('=') {
                _ if long.is_empty() => options_done = true,
                Some(("target-directory", directory)) => {
                    target_directory = Some(directory.to_string());
                }
                Some(("preserve" | "no-preserve", _)) => {}
                _ => match long {
                    "recursive" => recursive = true,
                    "archive" => (recursive, copy_links) = (true, true),
                    "dereference" => follow_all = true,
                    "no-dereference" => copy_links = true,
                    "no-target-directory" => no_target_directory = true,
                    "force" | "preserve" | "verbose" | "no-clobber" | "update" | "interactive" => {}
                    _ => return None,
                },
            }
            continue;
        }
        let letters: Vec<char> = text.chars().skip(1).collect();
        for (index, letter) in letters.iter().enumerate() {
            match letter {
                'r' | 'R' => recursive = true,
                'a' => (recursive, copy_links) = (true, true),
                'L' => follow_all = true,
                'H' => follow_arguments = true,
                'P' | 'd' => copy_links = true,
                'T' => no_target_directory = true,
                'f' | 'p' | 'v' | 'i' | 'n' | 'u' => {}
                't' => {
                    let rest: String = letters[index + 1..].iter().collect();
                    target_directory = Some(if rest.is_empty() {
                        glob::unescape(words.next()?)
                    } else {
                        rest
                    });
                    break;
                }
                // `-l` and `-s` make links, which do not survive into Velero's container.
                _ => return None,
            }
        }
    }
    let written_destination = match target_directory.clone() {
        Some(directory) => directory,
        None => {
            let last = operands.pop()?;
            if glob::has_wildcards(last) {
                return None;
            }
            glob::unescape(last)
        }
    };
    if operands.is_empty() {
        return None;
    }
    let destination = target_path(&written_destination)?;
    let into_directory = !no_target_directory
        && (target_directory.is_some()
            || operands.len() > 1
            || destination == TARGET_DIR
            || written_destination.ends_with('/')
            || written_destination.ends_with("/."));
    let symlinks = if follow_all {
        SymlinkHandling::Follow
    } else if follow_arguments || !(recursive || copy_links) {
        SymlinkHandling::FollowArguments
    } else {
        SymlinkHandling::Copy
    };
    Some(CopyCommand {
        program,
        sources: operands.into_iter().cloned().collect(),
        destination,
        into_directory,
        recursive,
        symlinks,
    })
}

/// `path` normalised when it is `/target` or under it; `..` is applied lexically.
fn target_path(path: &str) -> Option<String> {
    let normalised = normalise_absolute(path)?;
    let under = normalised == TARGET_DIR
        || normalised
            .strip_prefix(TARGET_DIR)
            .is_some_and(|rest| rest.starts_with('/'));
    under.then_some(normalised)
}

/// An absolute path with `.`, `..` and repeated slashes resolved; `None` when relative.
fn normalise_absolute(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut components: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                components.pop();
            }
            other => components.push(other),
        }
    }
    Some(format!("/{}", components.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(std::string::ToString::to_string).collect()
    }

    #[test]
    fn cp_plugin_of_the_aws_image() {
        let plan = recognise(&argv(&[
            "cp-plugin",
            "/plugins/velero-plugin-for-aws",
            "/target/velero-plugin-for-aws",
        ]))
        .unwrap();
        assert_eq!(plan.program, "cp-plugin");
        assert_eq!(plan.sources, ["/plugins/velero-plugin-for-aws"]);
        assert_eq!(plan.shell, None);
        let command = &plan.commands[0];
        assert_eq!(command.destination, "/target/velero-plugin-for-aws");
        assert!(!command.into_directory);
        // The destination must name a file under /target, and there must be exactly two operands.
        assert!(recognise(&argv(&["cp-plugin", "/plugins/x", "/target"])).is_none());
        assert!(recognise(&argv(&["cp-plugin", "/plugins/x", "/tmp/x"])).is_none());
        assert!(recognise(&argv(&["cp-plugin", "/plugins/x"])).is_none());
    }

    #[test]
    fn busybox_cp_recursive_contents() {
        let plan = recognise(&argv(&["/bin/cp", "-r", "/plugins/.", "/target/."])).unwrap();
        assert_eq!(plan.program, "/bin/cp");
        assert_eq!(plan.sources, ["/plugins/."]);
        let command = &plan.commands[0];
        assert_eq!(command.destination, "/target");
        assert!(command.into_directory && command.recursive);
        assert_eq!(command.symlinks, SymlinkHandling::Copy);
    }

    #[test]
    fn exec_form_sources_are_literal() {
        let plan = recognise(&argv(&["cp", "/plugins/*", "/target/"])).unwrap();
        assert_eq!(plan.sources, [r"/plugins/\*"]);
    }

    #[test]
    fn cp_flags() {
        let plan = recognise(&argv(&[
            "busybox",
            "cp",
            "-aLv",
            "--",
            "/p/a",
            "/p/b",
            "/target/x",
        ]));
        let command = &plan.unwrap().commands[0];
        assert_eq!(command.program, "busybox");
        assert_eq!(command.sources, ["/p/a", "/p/b"]);
        assert!(command.into_directory);
        assert_eq!(command.symlinks, SymlinkHandling::Follow);
        let plan = recognise(&argv(&["cp", "-t", "/target", "/p/a"])).unwrap();
        assert_eq!(plan.commands[0].destination, "/target");
        let plan = recognise(&argv(&["cp", "--target-directory=/target/sub", "/p/a"])).unwrap();
        assert!(plan.commands[0].into_directory);
        let plan = recognise(&argv(&["cp", "/p/a", "/target/renamed", "-f"])).unwrap();
        assert!(!plan.commands[0].into_directory);
        assert_eq!(plan.commands[0].symlinks, SymlinkHandling::FollowArguments);
        for rejected in [
            &["cp", "-s", "/p/a", "/target/"][..],
            &["cp", "--link", "/p/a", "/target/"],
            &["cp", "/p/a", "/tmp/"],
            &["cp", "/p/a", "/target/../etc"],
            &["cp", "/target/"],
            &["cp", "/p/a", "target/"],
        ] {
            assert!(recognise(&argv(rejected)).is_none(), "{rejected:?}");
        }
    }

    #[test]
    fn shell_lists_with_globs_and_quotes() {
        let plan = recognise(&argv(&[
            "/bin/sh",
            "-c",
            "cp /plugins/* /target/ && cp '/opt/my plugin' \"/target/b*\"; exec cp -r /x/. /target/.\n",
        ]))
        .unwrap();
        assert_eq!(plan.shell.as_deref(), Some("/bin/sh"));
        assert_eq!(plan.program, "cp");
        assert_eq!(plan.commands.len(), 3);
        assert_eq!(plan.sources, ["/plugins/*", "/opt/my plugin", "/x/."]);
        assert_eq!(plan.commands[1].destination, "/target/b*");
        let plan = recognise(&argv(&[
            "/bin/busybox",
            "sh",
            "-ec",
            "busybox cp /p/x /target/x",
        ]));
        let plan = plan.unwrap();
        assert_eq!(plan.shell.as_deref(), Some("/bin/busybox"));
        assert_eq!(plan.program, "busybox");
        let plan = recognise(&argv(&["sh", "-c", r"cp /p/\* /target"])).unwrap();
        assert_eq!(plan.sources, [r"/p/\*"]);
    }

    #[test]
    fn things_that_are_not_copies() {
        for rejected in [
            &["sleep", "infinity"][..],
            &["/velero-plugin-for-aws"],
            &[],
            &["sh", "-c", "cp /p/x /target/ || true"],
            &["sh", "-c", "cp /p/x /target/ | tee"],
            &["sh", "-c", "cp $SRC /target/"],
            &["sh", "-c", "cp \"$SRC\" /target/"],
            &["sh", "-c", "cp /p/x /target/ &"],
            &["sh", "-c", "cp /p/x /target/ && sleep 1"],
            &["sh", "-c", "sh -c 'cp /p/x /target/'"],
            &["sh", "-c", "cp '/p/x /target/"],
            &["sh", "-c"],
            &["sh", "/copy.sh"],
            &["sh", "-c", ""],
        ] {
            assert!(recognise(&argv(rejected)).is_none(), "{rejected:?}");
        }
    }
}
