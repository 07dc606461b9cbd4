//! `node-problem-detector dry-run`: runs the monitors over captured logs (or this
//! machine's /dev/kmsg) and prints what the agent would report. See the README, "Dry-run and validate".

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::config::{ConfigError, Loaded, MonitorConfig, Plugin};
use crate::custom::CustomPluginConfig;
use crate::engine::{Monitor, ProblemMetrics};
use crate::source::LineFilter;
use crate::source::capture::{CaptureError, CaptureParser, CapturedLine, Format, Origin};
use crate::types::{ConditionStatus, Event, Severity};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Text,
    /// One JSON object per line, stable keys (README, "JSON output").
    Json,
}

/// When to exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum FailOn {
    /// Exit 1 when any event or True condition would be reported.
    Problem,
    /// Always exit 0 when the run completed.
    #[default]
    Never,
}

/// Arguments of `dry-run`.
#[derive(Debug, Clone, clap::Args, Default)]
pub struct DryRunArgs {
    /// Monitor config file (repeatable). Default: the embedded default rule sets.
    #[arg(long = "config", value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Exit 1 when a problem would be reported (`problem`), or never.
    #[arg(long = "fail-on", value_enum, default_value_t = FailOn::Never)]
    pub fail_on: FailOn,
    /// Captured logs (`-` for stdin). Default: this machine's /dev/kmsg, up to now.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// What a completed run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunOutcome {
    /// Events that would be reported.
    pub events: usize,
    /// Conditions True at the end.
    pub true_conditions: usize,
    /// Lines that could not be placed.
    pub unplaced: u64,
    /// Exit code to use: 0, or 1 with `--fail-on=problem` and a problem found.
    pub exit_code: i32,
}

/// Errors that stop a dry-run (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    /// A monitor config did not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Custom plugin configs mixed with log monitor configs or log files.
    #[error(
        "{0}: a custom plugin config runs its checks once and reads no logs: pass custom plugin configs alone, without log monitor configs or files"
    )]
    CustomPlugin(PathBuf),
    /// A custom plugin config did not load.
    #[error(transparent)]
    Custom(#[from] crate::custom::runner::CustomError),
    /// An input could not be read.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// /dev/kmsg could not be read.
    #[error("/dev/kmsg: {0}")]
    Kmsg(std::io::Error),
    /// Writing the report failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

impl DryRunError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        2
    }
}

/// Which lines a monitor sees.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Kernel,
    Program(String),
    AllPrograms,
    All,
}

impl Route {
    fn of(c: &MonitorConfig) -> Route {
        match c.plugin {
            Plugin::Kmsg => Route::Kernel,
            Plugin::Filelog if c.log_path.contains("kern") => Route::Kernel,
            Plugin::Filelog => Route::All,
            Plugin::Journald => match c.plugin_config.get("source") {
                Some(s) if s == "kernel" => Route::Kernel,
                Some(s) if !s.is_empty() => Route::Program(s.clone()),
                _ => Route::AllPrograms,
            },
        }
    }

    fn wants(&self, o: &Origin) -> bool {
        match (self, o) {
            (Route::All, _) => true,
            (Route::Kernel, Origin::Kernel) => true,
            (Route::Program(p), Origin::Program(q)) => p == q,
            (Route::AllPrograms, Origin::Program(_)) => true,
            _ => false,
        }
    }
}

struct Runner {
    monitor: Monitor,
    route: Route,
    filter: LineFilter,
}

/// Summary of one (reason, source): two monitors may use the same reason.
#[derive(Debug, Clone)]
struct ReasonSummary {
    count: u64,
    first: Timestamp,
    last: Timestamp,
}

/// Loads the monitor configs: the given files, or the embedded defaults. Custom plugin
/// configs among the files are left out (`dry-run` runs them separately).
pub fn load_configs(paths: &[PathBuf]) -> Result<Vec<MonitorConfig>, DryRunError> {
    let mut out = Vec::new();
    if paths.is_empty() {
        for (name, text) in crate::defaults::DEFAULT_MONITOR_CONFIGS {
            let loaded = crate::config::parse_monitor_config(Path::new(name), text)?;
            out.push(loaded.config);
        }
        return Ok(out);
    }
    for p in paths {
        if let AnyConfig::Log(loaded) = load_any_config(p)? {
            out.push(loaded.config);
        }
    }
    Ok(out)
}

/// A config file given to `dry-run` or `validate`: a log monitor config or a custom
/// plugin monitor config, loaded by its own loader.
#[derive(Debug, Clone)]
pub enum AnyConfig {
    /// kmsg, journald or filelog.
    Log(Loaded<MonitorConfig>),
    /// `"plugin": "custom"`.
    Custom(Loaded<CustomPluginConfig>),
}

/// Reads and parses a config file once and loads it with the loader its `plugin` names:
/// `"custom"` goes to the custom plugin loader, anything else (including a missing or
/// wrong `plugin`, whose error that loader reports) to the log monitor loader. The key is
/// matched case-insensitively, as both loaders match keys.
pub fn load_any_config(path: &Path) -> Result<AnyConfig, ConfigError> {
    let value = crate::config::read_json(path)?;
    if declares_custom_plugin(&value) {
        Ok(AnyConfig::Custom(
            crate::custom::config::custom_config_from_value(path, value)?,
        ))
    } else {
        Ok(AnyConfig::Log(crate::config::monitor_config_from_value(
            path, value,
        )?))
    }
}

/// Whether a config's `plugin` is `"custom"`. The key is found as the loaders'
/// `normalize_keys` finds it: the exact spelling, else the first key (in the map's
/// order) equal to it ignoring ASCII case.
fn declares_custom_plugin(value: &serde_json::Value) -> bool {
    let Some(map) = value.as_object() else {
        return false;
    };
    let plugin = map.get("plugin").or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("plugin"))
            .map(|(_, v)| v)
    });
    plugin.and_then(serde_json::Value::as_str) == Some("custom")
}

struct Report<'a> {
    out: &'a mut dyn Write,
    format: OutputFormat,
    colour: bool,
    events: usize,
    /// Keyed by (reason, source), so it is sorted by reason, then source.
    summary: BTreeMap<(String, String), ReasonSummary>,
    relative: bool,
    err: Option<std::io::Error>,
}

impl Report<'_> {
    fn time(&self, t: Timestamp) -> String {
        fmt_time(t, self.relative)
    }

    fn event(&mut self, source: &str, e: &Event) {
        self.events += 1;
        let s = self
            .summary
            .entry((e.reason.clone(), source.to_string()))
            .or_insert_with(|| ReasonSummary {
                count: 0,
                first: e.timestamp,
                last: e.timestamp,
            });
        s.count += 1;
        s.first = s.first.min(e.timestamp);
        s.last = s.last.max(e.timestamp);
        let r = match self.format {
            OutputFormat::Json => {
                let v = serde_json::json!({
                    "kind": "event",
                    "time": e.timestamp.to_string(),
                    "source": source,
                    "severity": e.severity.event_type(),
                    "reason": e.reason,
                    "message": e.message,
                });
                writeln!(self.out, "{v}")
            }
            OutputFormat::Text => {
                let sev = e.severity.event_type();
                let sev = if self.colour {
                    match e.severity {
                        Severity::Warn => format!("\x1b[33m{sev:<7}\x1b[0m"),
                        Severity::Info => format!("\x1b[32m{sev:<7}\x1b[0m"),
                    }
                } else {
                    format!("{sev:<7}")
                };
                writeln!(
                    self.out,
                    "{:<27}  {:<18}  {}  {:<24}  {}",
                    self.time(e.timestamp),
                    source,
                    sev,
                    e.reason,
                    one_line(&e.message)
                )
            }
        };
        if let Err(e) = r {
            self.err.get_or_insert(e);
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " \u{23ce} ")
}

/// Times before 1990 come from relative (since-boot) stamps of a foreign capture: print
/// them as seconds since boot.
fn fmt_time(t: Timestamp, relative: bool) -> String {
    if relative && t < Timestamp::from_second(631_152_000).unwrap_or(Timestamp::UNIX_EPOCH) {
        let us = t.as_microsecond();
        format!("boot+{}.{:06}s", us / 1_000_000, us % 1_000_000)
    } else {
        t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
}

/// The CLI entry point: runs on stdout, prints errors on stderr, returns the exit code.
pub fn main(args: &DryRunArgs) -> std::process::ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let code = match run_with(args, &mut out, stdout_is_terminal()) {
        Ok(o) => o.exit_code,
        Err(e) => {
            let _ = out.flush();
            eprintln!("node-problem-detector dry-run: {e}");
            e.exit_code()
        }
    };
    std::process::ExitCode::from(code as u8)
}

/// Whether stdout is a terminal.
pub fn stdout_is_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor number.
    unsafe { libc::isatty(libc::STDOUT_FILENO) == 1 }
}

/// Runs the dry-run and writes the report to `out` (colour only when `out` is the real
/// stdout and that is a terminal: pass `colour` through [`run_with`] to choose).
pub fn run(args: &DryRunArgs, out: &mut dyn Write) -> Result<DryRunOutcome, DryRunError> {
    run_with(args, out, false)
}

/// [`run`] with explicit colour (the CLI passes [`stdout_is_terminal`]).
pub fn run_with(
    args: &DryRunArgs,
    out: &mut dyn Write,
    colour: bool,
) -> Result<DryRunOutcome, DryRunError> {
    // Every file is read and parsed once, by the loader its plugin names.
    let mut configs = Vec::new();
    let mut custom = Vec::new();
    if args.config.is_empty() {
        configs = load_configs(&[])?;
    }
    for p in &args.config {
        match load_any_config(p)? {
            AnyConfig::Log(loaded) => configs.push(loaded.config),
            AnyConfig::Custom(loaded) => custom.push((p, loaded)),
        }
    }
    if let Some((first, _)) = custom.first() {
        if !configs.is_empty() || !args.files.is_empty() {
            return Err(DryRunError::CustomPlugin(first.to_path_buf()));
        }
        return run_custom(custom, args, out);
    }
    // Check the inputs exist before printing anything, so a typo gives only the error.
    for f in &args.files {
        if f.as_os_str() != "-"
            && let Err(source) = std::fs::metadata(f)
        {
            return Err(DryRunError::Capture(CaptureError::Io {
                path: f.display().to_string(),
                source,
            }));
        }
    }
    let start = Timestamp::UNIX_EPOCH;
    let mut runners = Vec::with_capacity(configs.len());
    for c in &configs {
        runners.push(Runner {
            monitor: Monitor::new(c, start)?,
            route: Route::of(c),
            filter: LineFilter::captured(c),
        });
    }
    let mut metrics = ProblemMetrics::default();
    for r in &runners {
        r.monitor.init_metrics(&mut metrics);
    }
    let mut report = Report {
        out,
        format: args.output,
        colour: colour && args.output == OutputFormat::Text,
        events: 0,
        summary: BTreeMap::new(),
        relative: !args.files.is_empty(),
        err: None,
    };
    if report.format == OutputFormat::Text {
        writeln!(
            report.out,
            "{:<27}  {:<18}  {:<7}  {:<24}  MESSAGE",
            "TIME", "SOURCE", "TYPE", "REASON"
        )?;
    }
    let mut routed: u64 = 0;
    let mut by_origin: BTreeMap<String, u64> = BTreeMap::new();
    let mut handle = |c: CapturedLine, report: &mut Report<'_>| {
        // No allocation per line: the origin's key exists after its first line.
        match by_origin.get_mut(c.origin.as_str()) {
            Some(n) => *n += 1,
            None => {
                by_origin.insert(c.origin.as_str().to_string(), 1);
            }
        }
        let mut any = false;
        for r in runners.iter_mut() {
            if !r.route.wants(&c.origin) || r.filter.skipped(&c.line.message) {
                continue;
            }
            any = true;
            for st in r.monitor.process(&c.line, &mut metrics) {
                for e in &st.events {
                    report.event(&st.source, e);
                }
            }
        }
        if any {
            routed += 1;
        }
    };
    let now = Timestamp::now();
    // Live kmsg only: records the kernel overwrote while we were reading.
    let mut kmsg_lost: Option<u64> = None;
    let mut stats = if args.files.is_empty() {
        let boot = crate::source::boot_time();
        let mut parser = CaptureParser::new(boot, now);
        kmsg_lost = Some(read_live_kmsg(&mut parser, &mut |c| {
            handle(c, &mut report)
        })?);
        parser.stats
    } else {
        let mut parser = CaptureParser::new(Timestamp::UNIX_EPOCH, now);
        for f in &args.files {
            parser.read_path(f, &mut |c| handle(c, &mut report))?;
        }
        parser.stats
    };
    if let Some(e) = report.err.take() {
        return Err(DryRunError::Output(e));
    }
    // Final conditions.
    let mut true_conditions = 0;
    let all = || {
        runners.iter().flat_map(|r| {
            r.monitor
                .conditions()
                .iter()
                .map(|c| (r.monitor.source(), c))
        })
    };
    let ws = all().map(|(s, _)| s.len()).max().unwrap_or(0).max(6);
    let wt = all().map(|(_, c)| c.type_.len()).max().unwrap_or(0).max(4);
    let wr = all().map(|(_, c)| c.reason.len()).max().unwrap_or(0).max(6);
    if report.format == OutputFormat::Text {
        writeln!(report.out, "\nCONDITIONS (final state)")?;
        writeln!(
            report.out,
            "{:<ws$}  {:<wt$}  {:<7}  {:<27}  {:<wr$}  MESSAGE",
            "SOURCE", "TYPE", "STATUS", "SINCE", "REASON"
        )?;
    }
    for r in &runners {
        for c in r.monitor.conditions() {
            if c.status == ConditionStatus::True {
                true_conditions += 1;
            }
            match report.format {
                OutputFormat::Json => {
                    let v = serde_json::json!({
                        "kind": "condition",
                        "source": r.monitor.source(),
                        "type": c.type_,
                        "status": c.status.as_str(),
                        // null: never changed during the run (still the initial default).
                        "transition": (c.transition != start).then(|| c.transition.to_string()),
                        "reason": c.reason,
                        "message": c.message,
                    });
                    writeln!(report.out, "{v}")?;
                }
                OutputFormat::Text => {
                    let status = if report.colour && c.status == ConditionStatus::True {
                        format!("\x1b[31m{:<7}\x1b[0m", "True")
                    } else {
                        format!("{:<7}", c.status.as_str())
                    };
                    let since = if c.transition == start {
                        "-".to_string()
                    } else {
                        report.time(c.transition)
                    };
                    writeln!(
                        report.out,
                        "{:<ws$}  {:<wt$}  {}  {:<27}  {:<wr$}  {}",
                        r.monitor.source(),
                        c.type_,
                        status,
                        since,
                        c.reason,
                        one_line(&c.message)
                    )?;
                }
            }
        }
    }
    // Summary per reason.
    let wr = report
        .summary
        .keys()
        .map(|(reason, _)| reason.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let ws = report
        .summary
        .keys()
        .map(|(_, source)| source.len())
        .max()
        .unwrap_or(0)
        .max(6);
    if report.format == OutputFormat::Text {
        writeln!(report.out, "\nSUMMARY (events per reason)")?;
        writeln!(
            report.out,
            "{:<wr$}  {:<ws$}  {:>7}  {:<27}  LAST",
            "REASON", "SOURCE", "COUNT", "FIRST"
        )?;
        if report.summary.is_empty() {
            writeln!(report.out, "(no events)")?;
        }
    }
    let summary = std::mem::take(&mut report.summary);
    for ((reason, source), s) in &summary {
        match report.format {
            OutputFormat::Json => {
                let v = serde_json::json!({
                    "kind": "summary",
                    "reason": reason,
                    "source": source,
                    "count": s.count,
                    "first": s.first.to_string(),
                    "last": s.last.to_string(),
                });
                writeln!(report.out, "{v}")?;
            }
            OutputFormat::Text => writeln!(
                report.out,
                "{:<wr$}  {:<ws$}  {:>7}  {:<27}  {}",
                reason,
                source,
                s.count,
                report.time(s.first),
                report.time(s.last)
            )?,
        }
    }
    // Input counts.
    let parsed: BTreeMap<&str, u64> = stats
        .parsed
        .iter()
        .map(|(f, n): (&Format, &u64)| (f.as_str(), *n))
        .collect();
    let read = stats.total_parsed();
    match report.format {
        OutputFormat::Json => {
            let mut v = serde_json::json!({
                "kind": "input",
                "lines_parsed": read,
                "lines_routed": routed,
                "lines_unplaced": stats.unplaced,
                "lines_ignored": stats.ignored,
                "lines_truncated": stats.truncated,
                "by_format": parsed,
                "by_origin": by_origin,
            });
            if let (Some(lost), Some(obj)) = (kmsg_lost, v.as_object_mut()) {
                obj.insert("kmsg_records_lost".into(), lost.into());
            }
            writeln!(report.out, "{v}")?;
        }
        OutputFormat::Text => {
            writeln!(report.out, "\nINPUT")?;
            let fmts: Vec<String> = parsed.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(
                report.out,
                "lines parsed {read} ({}), routed to a monitor {routed}, unplaced {}, ignored {}, truncated {}",
                if fmts.is_empty() {
                    "none".to_string()
                } else {
                    fmts.join(", ")
                },
                stats.unplaced,
                stats.ignored,
                stats.truncated
            )?;
            if let Some(lost) = kmsg_lost {
                writeln!(
                    report.out,
                    "kmsg records overwritten by the kernel before they could be read: {lost}"
                )?;
            }
            for ex in stats.unplaced_examples.drain(..) {
                writeln!(report.out, "  unplaced: {ex}")?;
            }
        }
    }
    report.out.flush()?;
    let problem = report.events > 0 || true_conditions > 0;
    Ok(DryRunOutcome {
        events: report.events,
        true_conditions,
        unplaced: stats.unplaced,
        exit_code: if args.fail_on == FailOn::Problem && problem {
            1
        } else {
            0
        },
    })
}

/// Reads /dev/kmsg from the oldest record still held until caught up (EAGAIN). Returns
/// how many records the kernel overwrote while we read (gaps in the sequence numbers;
/// a read reports them as EPIPE), so the summary never hides a loss.
fn read_live_kmsg(
    parser: &mut CaptureParser,
    f: &mut dyn FnMut(CapturedLine),
) -> Result<u64, DryRunError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .map_err(DryRunError::Kmsg)?;
    // One record per read; records are at most about 8 KiB (with continuation lines).
    let mut buf = vec![0u8; 16 * 1024];
    let mut seqs = crate::source::kmsg::SeqTracker::default();
    let mut lost = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = buf[..n].strip_suffix(b"\n").unwrap_or(&buf[..n]);
                if let Ok(h) = crate::source::kmsg::parse_header(rec) {
                    lost += seqs.observe(h.seq).unwrap_or(0);
                }
                for l in rec.split(|&b| b == b'\n') {
                    parser.feed_line(l, f);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // EPIPE: records were overwritten before we read them; go on with the next.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DryRunError::Kmsg(e)),
        }
    }
    parser.finish(f);
    Ok(lost)
}

/// Dry-run of custom plugin configs: runs every rule once, as the daemon's first round
/// would, and prints the events and final conditions it would report.
fn run_custom(
    configs: Vec<(&PathBuf, Loaded<CustomPluginConfig>)>,
    args: &DryRunArgs,
    out: &mut dyn Write,
) -> Result<DryRunOutcome, DryRunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DryRunError::Output)?;
    let mut events = 0usize;
    let mut true_conditions = 0usize;
    for (p, loaded) in configs {
        for w in &loaded.warnings {
            eprintln!("warning: {w}");
        }
        let config = loaded.config.clone();
        let (statuses, rules) = runtime.block_on(crate::custom::runner::run_once_detailed(config));
        for r in &rules {
            let v = serde_json::json!({
                "kind": "plugin",
                "config": p.display().to_string(),
                "rule": r.reason,
                "kind_of_rule": r.kind,
                "result": format!("{:?}", r.result.status),
                "message": r.result.message,
                "timed_out": r.result.timed_out,
                "millis": r.elapsed_ms as u64,
            });
            match args.output {
                OutputFormat::Json => writeln!(out, "{v}")?,
                OutputFormat::Text => writeln!(
                    out,
                    "plugin {:<24} {:<8} {:>6}ms  {}",
                    r.reason,
                    format!("{:?}", r.result.status),
                    r.elapsed_ms,
                    one_line(&r.result.message)
                )?,
            }
        }
        let mut last_conditions = Vec::new();
        for st in &statuses {
            for e in &st.events {
                events += 1;
                match args.output {
                    OutputFormat::Json => writeln!(
                        out,
                        "{}",
                        serde_json::json!({"kind": "event", "time": e.timestamp.to_string(), "source": st.source,
                            "severity": e.severity.event_type(), "reason": e.reason, "message": e.message})
                    )?,
                    OutputFormat::Text => writeln!(
                        out,
                        "event  {:<18} {:<7}  {:<24}  {}",
                        st.source,
                        e.severity.event_type(),
                        e.reason,
                        one_line(&e.message)
                    )?,
                }
            }
            last_conditions = st.conditions.clone();
        }
        for c in &last_conditions {
            if c.status == ConditionStatus::True {
                true_conditions += 1;
            }
            match args.output {
                OutputFormat::Json => writeln!(
                    out,
                    "{}",
                    serde_json::json!({"kind": "condition", "source": loaded.config.source, "type": c.type_,
                        "status": c.status.as_str(), "reason": c.reason, "message": c.message})
                )?,
                OutputFormat::Text => writeln!(
                    out,
                    "condition {:<24} {:<7}  {:<24}  {}",
                    c.type_,
                    c.status.as_str(),
                    c.reason,
                    one_line(&c.message)
                )?,
            }
        }
    }
    let problem = events > 0 || true_conditions > 0;
    Ok(DryRunOutcome {
        events,
        true_conditions,
        unplaced: 0,
        exit_code: if args.fail_on == FailOn::Problem && problem {
            1
        } else {
            0
        },
    })
}
