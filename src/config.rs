//! `--config FILE`: a TOML file that gives any option of the command it is used with.
//!
//! # Form
//! Keys are the long option names (`workers = 2`, `output = "redis://..."`,
//! `when-full = "spool"`); a positional argument is named by its value name's id (`files`,
//! `expression`). Keys at the top of the file apply to whichever command is run, where that
//! command has the option (so one file can serve `read` and `capture`); a section named after
//! a command (`[capture]`, `[read]`, `[dataset.prepare]`, `[send.tcp]`) applies to that
//! command only and wins over the top. A key that no command has, a key in a section that its
//! command does not have, a section that is no command, or a value of the wrong type is an
//! error naming the file, the line and the key.
//!
//! # Values
//! A flag takes `true` (or `false`: not given); an option that takes one value takes a
//! string, an integer or a float; an option that can be repeated (`read-file`, `input`,
//! `drop-column`) takes an array or a single value. Every value goes through the same clap
//! value parser as the command line, so the same ranges and names apply.
//!
//! # Precedence
//! Command-line flags > the file > environment variables > defaults. The file's values are
//! handed to clap in-process as if they had been given on the command line, but only for the
//! arguments the real command line does not give (found with a lenient first parse and
//! clap's [`ValueSource`]); clap then uses an environment variable only where neither gives
//! a value. Nothing from the file reaches the process's argv, so a secret in it is not shown
//! by `ps`.
//!
//! # Trust
//! The file decides where packets go and which programs run (`post-rotate`), so it is used
//! only if it is a regular file (not reached through a symbolic link in its last component)
//! owned by this user or root and not writable by group or others. A broker URL with a
//! password in a file that group or others can read gets a warning: use `password-file`.
//!
//! The derivation is generic over the clap definition (no option is listed here), so options
//! added later are taken from the file without a change to this module.

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, Command};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// `config --help`: the form of the file, shown with the command.
pub(crate) const CONFIG_HELP: &str = "\
Any command takes --config FILE (after the command word): a TOML file whose keys are the long
option names, e.g.

  output = \"redis://127.0.0.1:6379/0\"    # applies to every command that has --output
  password-file = \"/etc/netpipe-fast/broker-password\"
  when-full = \"spool\"
  [capture]                               # only for `capture`; wins over the top
  iface = \"eth0\"
  workers = 2
  no-promisc = true                       # a flag: true (false = not given)
  [read]
  read-file = [\"a.pcap\", \"b.pcap\"]        # a repeatable option: an array
  [dataset.prepare]                       # nested commands: dotted sections
  seed = 7

Precedence: command-line flags > the file > environment variables > defaults. Unknown keys,
unknown sections and values of the wrong type are errors (exit 2), each named with its line.
The file must be a regular file (no symbolic link), owned by you or root and not writable by
group or others; a URL with a password in a file others can read gets a warning (use
password-file).";

/// The largest configuration file read (a mistake such as `--config /dev/zero` ends quickly).
pub(crate) const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The option that names the file (a key of that name in the file is an error).
pub(crate) const CONFIG_OPTION: &str = "config";

/// Commands whose options a file cannot give (they are not run from a file).
const NOT_CONFIGURABLE: [&str; 3] = ["config", "generate", "help"];

/// One problem with a configuration file, with its line when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The 1-based line in the file, or `None` for a problem with the whole file (it cannot
    /// be opened or is not trusted).
    pub line: Option<usize>,
    /// The dotted key with its section (`capture.ring-mb`; an unknown section is named
    /// here too), or `None` for a problem with no key (syntax, the file itself).
    pub key: Option<String>,
    /// What is wrong, in words meant for the user.
    pub message: String,
}

/// Why a configuration file cannot be used: every problem found (not only the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as it was named on the command line.
    pub path: PathBuf,
    /// Every problem found, in file order; never empty.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.path.display())?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            if let Some(key) = &p.key {
                write!(f, ": key {key:?}")?;
            }
            write!(f, ": {}", p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A checked configuration file: the values for each command, as command-line words.
#[derive(Debug, Default)]
pub(crate) struct Config {
    /// (command path, e.g. ["capture"] or [] for the top, key, arguments).
    entries: Vec<Entry>,
    /// Warnings to print (a password readable by others).
    pub warnings: Vec<String>,
}

#[derive(Debug)]
struct Entry {
    section: Vec<String>,
    key: String,
    /// `--long=value` words, or the values of a positional argument.
    words: Vec<OsString>,
    positional: bool,
}

/// Reads and checks `path` against the command tree `root` (every section and key, whatever
/// command is run).
pub(crate) fn load(path: &Path, root: &Command) -> Result<Config, ConfigError> {
    let text = read_trusted(path).map_err(|message| ConfigError {
        path: path.to_owned(),
        problems: vec![Problem {
            line: None,
            key: None,
            message,
        }],
    })?;
    let mut config = parse(&text, root).map_err(|problems| ConfigError {
        path: path.to_owned(),
        problems,
    })?;
    let shared = std::fs::metadata(path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o044 != 0)
        .unwrap_or(false);
    if shared {
        for (line, key) in passwords_in_urls(&text) {
            config.warnings.push(format!(
                "{}:{line}: key {key:?} holds a URL with a password and the file is readable \
                 by group or others: put the password in a file of mode 0600 named by \
                 password-file instead",
                path.display()
            ));
        }
    }
    Ok(config)
}

/// The file's text, if it is ours to trust (see the module documentation).
fn read_trusted(path: &Path) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                "is a symbolic link; not followed (give the real path)".to_owned()
            } else {
                format!("cannot open: {e}")
            }
        })?;
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "is owned by uid {}, not by this user (uid {me}) or root: not trusted",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "is writable by group or others (mode {:04o}): not trusted (chmod go-w)",
            meta.mode() & 0o7777
        ));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(format!("is larger than {MAX_CONFIG_BYTES} bytes"));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read (UTF-8 text expected): {e}"))?;
    Ok(text)
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The commands a file can configure, by path (e.g. ["dataset", "prepare"]), leaves only.
fn leaves(root: &Command) -> Vec<(Vec<String>, Command)> {
    fn walk(cmd: &Command, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Command)>) {
        for sub in cmd.get_subcommands() {
            if NOT_CONFIGURABLE.contains(&sub.get_name()) {
                continue;
            }
            path.push(sub.get_name().to_owned());
            if sub.has_subcommands() {
                walk(sub, path, out);
            } else {
                out.push((path.clone(), sub.clone()));
            }
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(root, &mut Vec::new(), &mut out);
    out
}

/// The key a file uses for `arg`: its long name, or for a positional its id with dashes.
fn key_of(arg: &Arg) -> Option<String> {
    if matches!(
        arg.get_action(),
        ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
    ) {
        return None;
    }
    if arg.is_positional() {
        return Some(arg.get_id().as_str().replace('_', "-"));
    }
    arg.get_long()
        .filter(|l| *l != CONFIG_OPTION)
        .map(str::to_owned)
}

fn find_arg<'c>(cmd: &'c Command, key: &str) -> Option<&'c Arg> {
    cmd.get_arguments()
        .find(|a| key_of(a).as_deref() == Some(key))
}

/// The text clap gets for a scalar TOML value.
fn scalar_text(v: &DeValue<'_>) -> Option<String> {
    match v {
        DeValue::String(s) => Some(s.to_string()),
        // as_str is from_str_radix's form: no prefix, no underscores.
        DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(|n| n.to_string()),
        DeValue::Float(f) => {
            let raw = f.as_str().replace('_', "");
            raw.parse::<f64>().ok().map(|x| x.to_string())
        }
        DeValue::Boolean(b) => Some(b.to_string()),
        DeValue::Datetime(_) | DeValue::Array(_) | DeValue::Table(_) => None,
    }
}

/// The command-line words for `key = value` of `arg`, checked with `arg`'s own value parser.
fn words_for(arg: &Arg, key: &str, value: &DeValue<'_>) -> Result<Vec<OsString>, String> {
    let long = format!("--{}", arg.get_long().unwrap_or(key));
    let values: Vec<String> = match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => {
            return match value {
                DeValue::Boolean(true) => Ok(vec![long.into()]),
                DeValue::Boolean(false) => Ok(Vec::new()),
                other => Err(format!(
                    "expected true or false (a flag), found {}",
                    other.type_str()
                )),
            };
        }
        ArgAction::Count => {
            let n = match value {
                DeValue::Integer(_) => scalar_text(value).and_then(|t| t.parse::<u8>().ok()),
                _ => None,
            }
            .ok_or("expected a small non-negative integer (how many times the flag is given)")?;
            return Ok(vec![OsString::from(long); usize::from(n)]);
        }
        ArgAction::Append => match value {
            DeValue::Array(items) => items
                .iter()
                .map(|item| {
                    scalar_text(item.get_ref()).ok_or_else(|| {
                        format!(
                            "expected an array of strings or numbers, found an element of type {}",
                            item.get_ref().type_str()
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            other => vec![scalar_text(other).ok_or_else(|| {
                format!(
                    "expected a string, a number or an array of them, found {}",
                    other.type_str()
                )
            })?],
        },
        _ => vec![scalar_text(value).ok_or_else(|| {
            format!(
                "expected a string or a number (one value), found {}",
                value.type_str()
            )
        })?],
    };
    check_values(arg, &values)?;
    Ok(if arg.is_positional() {
        values.into_iter().map(OsString::from).collect()
    } else {
        values
            .into_iter()
            .map(|v| OsString::from(format!("{long}={v}")))
            .collect()
    })
}

/// Runs `values` through a command holding only a copy of `arg` (its value parser, number of
/// values and action), so a wrong type or range is reported with the key, before the run.
fn check_values(arg: &Arg, values: &[String]) -> Result<(), String> {
    let mut probe = Arg::new("value")
        .long("value")
        .action(arg.get_action().clone())
        .value_parser(arg.get_value_parser().clone())
        .allow_hyphen_values(true);
    if let Some(d) = arg.get_value_delimiter() {
        probe = probe.value_delimiter(d);
    }
    let cmd = Command::new("config").no_binary_name(true).arg(probe);
    let words: Vec<String> = values.iter().map(|v| format!("--value={v}")).collect();
    cmd.try_get_matches_from(words).map(|_| ()).map_err(|e| {
        // clap's first line, without its "error: " and the probe's name.
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or_default();
        first
            .trim_start_matches("error: ")
            .replace(" for '--value <value>'", "")
            .replace(" for '--value'", "")
    })
}

/// Parses and checks the whole file (every section, whatever command is run).
fn parse(text: &str, root: &Command) -> Result<Config, Vec<Problem>> {
    let doc = DeTable::parse(text).map_err(|e| {
        vec![Problem {
            line: e.span().map(|s| line_of(text, s.start)),
            key: None,
            message: format!("not TOML: {}", e.message()),
        }]
    })?;
    let leaves = leaves(root);
    let mut config = Config::default();
    let mut problems = Vec::new();
    walk_table(
        text,
        &leaves,
        doc.get_ref(),
        &mut Vec::new(),
        &mut config,
        &mut problems,
    );
    if problems.is_empty() {
        Ok(config)
    } else {
        problems.sort_by_key(|p| p.line);
        Err(problems)
    }
}

/// Checks the table at `section` (a command path; empty for the top of the file).
fn walk_table(
    text: &str,
    leaves: &[(Vec<String>, Command)],
    table: &DeTable<'_>,
    section: &mut Vec<String>,
    config: &mut Config,
    problems: &mut Vec<Problem>,
) {
    // The command this section configures, when it is a leaf command.
    let here = leaves.iter().find(|(p, _)| p == section).map(|(_, c)| c);
    for (key, value) in table {
        let (key_text, key_at) = (key.get_ref().to_string(), key.span().start);
        let line = Some(line_of(text, key_at));
        let full_key = section
            .iter()
            .cloned()
            .chain(std::iter::once(key_text.clone()))
            .collect::<Vec<_>>()
            .join(".");
        let problem = |message: String| Problem {
            line,
            key: Some(full_key.clone()),
            message,
        };
        // A sub-table named after a command below this one is a section.
        let mut child = section.clone();
        child.push(key_text.clone());
        let is_section = matches!(value.get_ref(), DeValue::Table(_))
            && leaves
                .iter()
                .any(|(p, _)| p.len() >= child.len() && p[..child.len()] == child[..]);
        if is_section {
            if let DeValue::Table(t) = value.get_ref() {
                section.push(key_text);
                walk_table(text, leaves, t, section, config, problems);
                section.pop();
            }
            continue;
        }
        if key_text == CONFIG_OPTION {
            problems.push(problem(
                "a configuration file cannot name another one".into(),
            ));
            continue;
        }
        // The commands this key is checked against: this section's, or at the top every
        // command that has the option.
        let targets: Vec<&Command> = match (section.is_empty(), here) {
            (true, _) => leaves
                .iter()
                .map(|(_, c)| c)
                .filter(|c| find_arg(c, &key_text).is_some())
                .collect(),
            (false, Some(c)) if find_arg(c, &key_text).is_some() => vec![c],
            (false, _) => Vec::new(),
        };
        if targets.is_empty() {
            let message = if section.is_empty() {
                if matches!(value.get_ref(), DeValue::Table(_)) {
                    format!(
                        "unknown section: no command is named {key_text:?} (sections: {})",
                        section_names(leaves)
                    )
                } else {
                    "unknown key: no command has an option of this name".to_owned()
                }
            } else if here.is_none() {
                format!(
                    "unknown section [{}]: not a command (sections: {})",
                    section.join("."),
                    section_names(leaves)
                )
            } else {
                format!(
                    "unknown key: `{}` has no option --{key_text}",
                    section.join(" ")
                )
            };
            problems.push(problem(message));
            continue;
        }
        let mut words = None;
        for cmd in targets {
            let Some(arg) = find_arg(cmd, &key_text) else {
                continue;
            };
            match words_for(arg, &key_text, value.get_ref()) {
                Ok(w) => {
                    words.get_or_insert((w, arg.is_positional()));
                }
                Err(e) => {
                    problems.push(problem(e));
                    words = None;
                    break;
                }
            }
        }
        if let Some((words, positional)) = words {
            config.entries.push(Entry {
                section: section.clone(),
                key: key_text,
                words,
                positional,
            });
        }
    }
}

fn section_names(leaves: &[(Vec<String>, Command)]) -> String {
    leaves
        .iter()
        .map(|(p, _)| format!("[{}]", p.join(".")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// (line, key) of every string value that is a URL with a password (`scheme://user:pw@`).
fn passwords_in_urls(text: &str) -> Vec<(usize, String)> {
    fn walk(text: &str, table: &DeTable<'_>, out: &mut Vec<(usize, String)>) {
        for (k, v) in table {
            let mut check = |v: &Spanned<DeValue<'_>>| {
                if let DeValue::String(s) = v.get_ref() {
                    if url_has_password(s) {
                        out.push((line_of(text, k.span().start), k.get_ref().to_string()));
                    }
                }
            };
            match v.get_ref() {
                DeValue::Table(t) => walk(text, t, out),
                DeValue::Array(items) => items.iter().for_each(&mut check),
                _ => check(v),
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(doc) = DeTable::parse(text) {
        walk(text, doc.get_ref(), &mut out);
    }
    out
}

/// `scheme://[user]:password@...` with a non-empty password.
fn url_has_password(s: &str) -> bool {
    let Some((_, rest)) = s.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .is_some_and(|(_, pw)| !pw.is_empty())
}

/// Where `--config FILE` (or `--config=FILE`) stands in `args`, before any `--`.
pub(crate) fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let Some(s) = a.to_str() else { continue };
        if s == "--" {
            return None;
        }
        if s == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    None
}

/// The subcommand path at the start of `args` (after the program name): the longest run of
/// words naming subcommands of `root`, and how many words it took.
fn command_path(root: &Command, args: &[OsString]) -> (Vec<String>, usize) {
    let mut cmd = root;
    let mut path = Vec::new();
    for a in args.iter().skip(1) {
        let Some(word) = a.to_str() else { break };
        match cmd
            .get_subcommands()
            .find(|s| s.get_name() == word || s.get_all_aliases().any(|al| al == word))
        {
            Some(sub) => {
                path.push(sub.get_name().to_owned());
                cmd = sub;
            }
            None => break,
        }
    }
    let n = path.len();
    (path, n)
}

/// `args` with the file's values for the command being run put in front of the real
/// arguments, for every argument the real command line does not give. Returns the warnings
/// to print. `args` without `--config` come back unchanged.
pub fn apply(
    root: &Command,
    args: Vec<OsString>,
) -> Result<(Vec<OsString>, Vec<String>), ConfigError> {
    let Some(path) = config_path(&args) else {
        return Ok((args, Vec::new()));
    };
    let config = load(&path, root)?;
    let (cmd_path, taken) = command_path(root, &args);
    let Some((_, leaf)) = leaves(root).into_iter().find(|(p, _)| *p == cmd_path) else {
        // Not a command a file configures: clap says what is wrong with the arguments.
        return Ok((args, config.warnings));
    };
    // What the real command line gives: a lenient parse (required options may be in the
    // file) that only reports where each value came from.
    let given: Vec<String> = match root.clone().ignore_errors(true).try_get_matches_from(&args) {
        Ok(mut m) => {
            for name in &cmd_path {
                m = match m.remove_subcommand() {
                    Some((n, sub)) if n == *name => sub,
                    _ => return Ok((args, config.warnings)),
                };
            }
            leaf.get_arguments()
                .filter(|a| m.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
                .filter_map(key_of)
                .collect()
        }
        Err(_) => return Ok((args, config.warnings)),
    };
    // Top of the file first, then the command's section, which wins per key.
    let mut chosen: Vec<&Entry> = Vec::new();
    let top = config.entries.iter().filter(|e| e.section.is_empty());
    let own = config.entries.iter().filter(|e| e.section == cmd_path);
    for e in top.chain(own) {
        if find_arg(&leaf, &e.key).is_none() || given.contains(&e.key) {
            continue;
        }
        chosen.retain(|c| c.key != e.key);
        chosen.push(e);
    }
    let mut out: Vec<OsString> = args[..=taken].to_vec();
    out.extend(
        chosen
            .iter()
            .filter(|e| !e.positional)
            .flat_map(|e| e.words.iter().cloned()),
    );
    out.extend(args[taken + 1..].iter().cloned());
    let positional: Vec<OsString> = chosen
        .iter()
        .filter(|e| e.positional)
        .flat_map(|e| e.words.iter().cloned())
        .collect();
    if !positional.is_empty() {
        if !args[taken + 1..].iter().any(|a| a == "--") {
            out.push("--".into());
        }
        out.extend(positional);
    }
    Ok((out, config.warnings))
}

/// `config check FILE`: every problem, or how many settings the file holds.
pub fn check(path: &Path, root: &Command) -> Result<(usize, Vec<String>), ConfigError> {
    load(path, root).map(|c| (c.entries.len(), c.warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::CommandFactory;

    fn problems(text: &str) -> Vec<Problem> {
        parse(text, &Cli::command()).err().unwrap_or_default()
    }

    #[test]
    fn a_good_file_has_no_problems() {
        let text = "workers = 2\noutput = \"file:/x\"\nwhen-full = \"drop\"\n\
                    [capture]\niface = \"eth0\"\nno-promisc = true\n\
                    [dataset.prepare]\ninput = [\"a/*.csv\", \"b.csv\"]\nseed = 3\n\
                    [record]\nstop-after-num = -1\n";
        assert_eq!(problems(text), []);
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_their_lines() {
        let text = "workers = 2\nwokers = 3\n[capture]\nring-mb = \"big\"\nfiles = [\"x\"]\n\
                    [nosuch]\na = 1\n[read]\nquiet = 1\nworkers = 999\n";
        let p = problems(text);
        let got: Vec<(Option<usize>, Option<&str>)> =
            p.iter().map(|p| (p.line, p.key.as_deref())).collect();
        assert_eq!(
            got,
            [
                (Some(2), Some("wokers")),
                (Some(4), Some("capture.ring-mb")),
                (Some(5), Some("capture.files")),
                (Some(6), Some("nosuch")),
                (Some(9), Some("read.quiet")),
                (Some(10), Some("read.workers")),
            ],
            "{p:?}"
        );
        assert!(p[1].message.contains("big"), "{:?}", p[1]);
        assert!(p[5].message.contains("256"), "{:?}", p[5]);
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let p = problems("workers = 2\noutput = \n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, Some(2), "{p:?}");
    }

    #[test]
    fn apply_adds_only_what_the_command_line_does_not_give() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("np-config-apply-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "count = 5\nworkers = 2\n[read]\nworkers = 0x3\nfiles = [\"x.pcap\"]\nquiet = true\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let words = |args: &[&str]| -> Vec<String> {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            apply(&Cli::command(), args)
                .unwrap()
                .0
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect()
        };
        let cfg = path.to_str().unwrap();
        // The section's workers win over the top's; -c on the command line wins over the
        // file's count; the file's positional goes after `--`.
        assert_eq!(
            words(&["np", "read", "-c", "1", "--config", cfg]),
            [
                "np",
                "read",
                "--quiet",
                "--workers=3",
                "-c",
                "1",
                "--config",
                cfg,
                "--",
                "x.pcap"
            ]
        );
        // A file on the command line: the file's files are not added.
        let given = words(&["np", "read", "y.pcap", "--config", cfg]);
        assert!(!given.contains(&"x.pcap".to_owned()), "{given:?}");
        // Without --config nothing changes.
        assert_eq!(words(&["np", "read", "y.pcap"]), ["np", "read", "y.pcap"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn urls_with_passwords_are_found() {
        assert!(url_has_password("redis://:pw@h:6379/0"));
        assert!(url_has_password("amqp://u:pw@h/v"));
        assert!(!url_has_password("amqp://u@h/v"));
        assert!(!url_has_password("redis://h:6379"));
        assert!(!url_has_password("file:/a:b@c"));
        assert_eq!(
            passwords_in_urls("a = 1\n[capture]\noutput = \"redis://:x@h\"\n"),
            [(3, "output".to_owned())]
        );
    }

    #[test]
    fn the_command_path_and_the_option_are_found() {
        let args: Vec<OsString> = [
            "np",
            "dataset",
            "prepare",
            "--config=f.toml",
            "--",
            "--config",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        assert_eq!(
            command_path(&Cli::command(), &args),
            (vec!["dataset".to_owned(), "prepare".to_owned()], 2)
        );
        assert_eq!(config_path(&args), Some(PathBuf::from("f.toml")));
        let after_dashes: Vec<OsString> = ["np", "read", "--", "--config", "x"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(config_path(&after_dashes), None);
    }
}
