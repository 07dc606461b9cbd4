//! `node-problem-detector validate`: checks monitor configs without running anything.
//! See the README, "Dry-run and validate".

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use jiff::Timestamp;

use crate::config::{ConfigError, ConfigWarning, MonitorConfig};
use crate::dryrun::{AnyConfig, load_any_config};
use crate::engine::{Monitor, pattern};

/// Arguments of `validate`.
#[derive(Debug, Clone, clap::Args, Default)]
pub struct ValidateArgs {
    /// Monitor config files to check.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// The CLI entry point: prints findings on stdout, returns the exit code (2 when the
/// report cannot be written).
pub fn main(args: &ValidateArgs) -> std::process::ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run(args, &mut out) {
        Ok(o) => std::process::ExitCode::from(o.exit_code() as u8),
        Err(e) => {
            eprintln!("node-problem-detector validate: writing output: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValidateOutcome {
    /// Errors found (the config would not load or a rule cannot work).
    pub errors: usize,
    /// Warnings found.
    pub warnings: usize,
}

impl ValidateOutcome {
    /// 1 when there were errors, else 0.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.errors > 0)
    }
}

/// Checks every file and prints one line per finding:
/// `path: rule 3 (reason "X"): warning: ...` or `path: error: ...`.
pub fn run(args: &ValidateArgs, out: &mut dyn Write) -> std::io::Result<ValidateOutcome> {
    let mut total = ValidateOutcome::default();
    for path in &args.files {
        let p = path.display().to_string();
        // Read once, loaded by the loader its plugin names (custom plugin configs get
        // the custom loader's errors and warnings).
        let loaded = match load_any_config(path) {
            Err(e) => {
                does_not_load(out, &p, &e, &mut total)?;
                continue;
            }
            Ok(AnyConfig::Custom(loaded)) => {
                print_warnings(out, &loaded.warnings, &mut total)?;
                if loaded.warnings.is_empty() {
                    writeln!(out, "{p}: ok (custom plugin)")?;
                }
                continue;
            }
            Ok(AnyConfig::Log(loaded)) => loaded,
        };
        print_warnings(out, &loaded.warnings, &mut total)?;
        let findings = check(&loaded.config);
        for f in &findings {
            writeln!(out, "{p}: {f}")?;
        }
        let errors = findings.iter().filter(|f| f.error).count();
        total.errors += errors;
        total.warnings += findings.len() - errors;
        // Every rule compiled on its own; now the monitor as the daemon and the dry-run
        // build it (the combined single-line rule set can still be too big).
        if errors == 0
            && let Err(e) = Monitor::new(&loaded.config, Timestamp::now())
        {
            does_not_load(out, &p, &e, &mut total)?;
            continue;
        }
        if findings.is_empty() && loaded.warnings.is_empty() {
            writeln!(
                out,
                "{p}: ok ({} rules, {} conditions)",
                loaded.config.rules.len(),
                loaded.config.conditions.len()
            )?;
        }
    }
    Ok(total)
}

/// Prints an error that keeps the config from loading, then
/// `path: error: the config does not load`.
fn does_not_load(
    out: &mut dyn Write,
    p: &str,
    e: &ConfigError,
    total: &mut ValidateOutcome,
) -> std::io::Result<()> {
    writeln!(out, "{e}")?;
    writeln!(out, "{p}: error: the config does not load")?;
    total.errors += 1;
    Ok(())
}

/// Prints a loader's warnings.
fn print_warnings(
    out: &mut dyn Write,
    warnings: &[ConfigWarning],
    total: &mut ValidateOutcome,
) -> std::io::Result<()> {
    for w in warnings {
        writeln!(out, "{}: warning: {}", w.path.display(), w.message)?;
        total.warnings += 1;
    }
    Ok(())
}

/// One finding about a loaded config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// 0-based rule index, when about a rule.
    pub rule: Option<(usize, String)>,
    /// Error (the rule cannot work) or warning.
    pub error: bool,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some((i, reason)) = &self.rule {
            write!(f, "rule {i} (reason {reason:?}): ")?;
        }
        let level = if self.error { "error" } else { "warning" };
        write!(f, "{level}: {}", self.message)
    }
}

/// The checks beyond the loader's (which already rejects undeclared conditions, bad
/// `minOccurrences`/`window`/`recoverAfter` values and warns about a `window` without
/// `minOccurrences`): patterns that do not compile as the engine compiles them, rules
/// that can never fire or will surprise.
pub fn check(c: &MonitorConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, r) in c.rules.iter().enumerate() {
        let mut push = |error: bool, message: String| {
            out.push(Finding {
                rule: Some((i, r.reason.clone())),
                error,
                message,
            })
        };
        match pattern::analyse(&r.pattern)
            .and_then(|info| pattern::compile_anchored(&r.pattern).map(|_| info))
        {
            Err(e) => push(true, format!("pattern {:?}: {e}", r.pattern)),
            Ok(info) => {
                if info.matches_empty {
                    push(
                        true,
                        format!(
                            "pattern {:?} matches the empty string, so it matches every line",
                            r.pattern
                        ),
                    );
                }
                if info.can_match_newline && c.buffer_size == 1 {
                    push(
                        false,
                        format!(
                            "pattern {:?} can match across lines but bufferSize is 1, so only one line is ever seen",
                            r.pattern
                        ),
                    );
                }
                if info.anchors_buffer_start {
                    push(
                        false,
                        format!(
                            "pattern {:?} uses ^ or \\A, which anchors to the start of the whole buffer of {} lines, not of a line; use (?m)^ for line starts",
                            r.pattern, c.buffer_size
                        ),
                    );
                }
                if info.top_level_alternation {
                    push(
                        false,
                        format!(
                            "pattern {:?} has a top-level alternation: upstream anchors only the last branch to the end of the buffer, this agent anchors every branch; group it as (a|b) to mean the same in both",
                            r.pattern
                        ),
                    );
                }
            }
        }
        if let Some(j) = seen.get(r.pattern.as_str()) {
            push(
                false,
                format!("same pattern as rule {j} ({:?})", c.rules[*j].reason),
            );
        } else {
            seen.insert(&r.pattern, i);
        }
    }
    out
}
