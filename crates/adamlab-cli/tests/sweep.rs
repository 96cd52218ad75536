//! The fault suite's table-driven sweep (issue 18, item 7): every registered optimizer × every
//! keyword, every schedule of the catalogue × every keyword, and every value-taking flag of
//! `adamlab train` and `adamlab bench step`, each given the edge values {−1, 0, −0.0, 1e-45,
//! 1e300, NaN, inf}.
//!
//! The tables are not written here: the optimizers and their keywords come from
//! `adamlab_optim::registry()`, the schedules and theirs from `adamlab_optim::schedule::SCHEDULES`,
//! the flags from `adamlab train --help` and `adamlab bench step --help`. A new optimizer, keyword, schedule or flag gets the edge
//! values without a line changed in this file. A tuple keyword (`betas`) gets each value in each
//! position, the others at their defaults; a list keyword (`milestones`) gets it as its one element.
//!
//! Each case runs twice:
//!
//! - **in process**, the whole product: the spec is parsed and built (a schedule is also stepped
//!   through 100 steps, and its controls built with Adam), and must come back as `Ok` or as an
//!   error of one line, never a panic;
//! - **through the binary**, the whole product too (each run is the article's MLP for 3 epochs on
//!   flex, about 20 ms, or the smallest `bench step`, about a second): it must end within [`TIME_LIMIT`] with exit 0, or with exactly one
//!   `error:` line, the last on stderr (the MLP's banner line, and in a wgpu build a Vulkan
//!   loader's complaint, may come before it), and exit 2, or exit 1 where that line is the
//!   documented stop on a non-finite loss; a negative value is taken as the value of the flag
//!   before it (never clap's "unexpected argument '-1'"). Never 101 (a panic) or
//!   134 (an abort), never a hang.
//!
//! A schedule whose keywords are all optional is swept from its bare name; one that requires
//! keywords (`cosine`'s `t_max`) from a base spec that fills them with a valid value of their
//! kind, found by trying the catalogue's optional keywords one at a time where the required ones
//! are not enough (`onecycle` needs `total_steps`), or two children (`constant()`) where it
//! takes schedules (`sequential`). About 1,550 runs; 10 to 30 s on two cores.

use adamlab_optim::hyper::{HyperParam, Kind};
use adamlab_optim::schedule::{SCHEDULES, ScheduleEntry, ScheduleSpec};
use adamlab_optim::spec::parse_value;
use adamlab_optim::{OptimizerSpec, registry};
use adamlab_train::controls::{Controls, ControlsSpec};
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// The edge values, as a spec or a command line writes them.
const EDGES: [&str; 7] = ["-1", "0", "-0.0", "1e-45", "1e300", "nan", "inf"];

/// The longest one run may take before it counts as a hang: a run takes about 20 ms.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// One run of the sweep: what it sweeps (for messages) and the arguments after `adamlab`.
#[derive(Debug, Clone)]
struct Case {
    what: String,
    args: Vec<String>,
}

/// `value` written for `kind`, in every position a tuple has (the others at `default`'s values),
/// as a list's element, or as is.
fn values_for(kind: &Kind, default: &str, value: &str) -> Vec<String> {
    match kind {
        Kind::Tuple(kinds) => {
            let defaults: Vec<String> = match parse_value(default) {
                Ok(adamlab_optim::Value::Tuple(items)) => items.iter().map(ToString::to_string).collect(),
                _ => kinds.iter().map(|k| valid(k)).collect(),
            };
            (0..kinds.len())
                .map(|at| {
                    let mut items = defaults.clone();
                    items[at] = value.to_string();
                    format!("({})", items.join(", "))
                })
                .collect()
        }
        Kind::List(_) => vec![format!("[{value}]")],
        _ => vec![value.to_string()],
    }
}

/// A valid value of `kind`, to fill a keyword the sweep does not vary but a spec requires.
fn valid(kind: &Kind) -> String {
    match kind {
        Kind::Float(interval) => ["1", "0.5", "0.1", "1e-6", "10"]
            .into_iter()
            .find(|x| interval.contains(x.parse().unwrap()))
            .expect("an interval holding one of the usual values")
            .to_string(),
        Kind::Int { min, max } => 10i64.clamp(*min, *max).to_string(),
        Kind::Bool => "true".into(),
        Kind::Choice(names) => names[0].to_string(),
        Kind::Tuple(kinds) => format!("({})", kinds.iter().map(|k| valid(k)).collect::<Vec<_>>().join(", ")),
        Kind::List(inner) => format!("[{}]", valid(inner)),
        Kind::Optional(inner) => valid(inner),
    }
}

/// `name(children…, keyword=value…)`, or the bare name.
fn call(name: &str, children: &[String], args: &[(String, String)]) -> String {
    let parts: Vec<String> = children
        .iter()
        .cloned()
        .chain(args.iter().map(|(k, v)| format!("{k}={v}")))
        .collect();
    if parts.is_empty() { name.to_string() } else { format!("{name}({})", parts.join(", ")) }
}

/// Whether the catalogue calls the keyword required: no default, and not optional by kind.
fn is_required(param: &HyperParam) -> bool {
    param.default == "None" && !matches!(param.kind, Kind::Optional(_))
}

/// The smallest spec of `entry` that parses: its children (none unless it takes schedules) and
/// the keywords filled to make it valid. Panics, naming the schedule, when none is found: a new
/// kind of schedule then needs a rule here.
fn schedule_base(entry: &ScheduleEntry) -> (Vec<String>, Vec<(String, String)>) {
    let required: Vec<(String, String)> =
        entry.params.iter().filter(|p| is_required(p)).map(|p| (p.name.to_string(), valid(&p.kind))).collect();
    let mut candidates = vec![(vec![], required.clone())];
    for param in entry.params.iter().filter(|p| p.default == "None" && !is_required(p)) {
        let mut args = required.clone();
        args.push((param.name.to_string(), valid(&param.kind)));
        candidates.push((vec![], args));
    }
    // A schedule of schedules: two children, calls without keywords (the first schedule's
    // keywords all have defaults).
    let child = format!("{}()", SCHEDULES[0].name);
    candidates.push((vec![child.clone(), child], vec![]));
    candidates
        .into_iter()
        .find(|(children, args)| ScheduleSpec::parse(&call(entry.name, children, args)).is_ok())
        .unwrap_or_else(|| panic!("no base spec found for schedule {}", entry.name))
}

/// Every optimizer × keyword × edge value, as `--optimizer` specs.
fn optimizer_specs() -> Vec<(String, String)> {
    let mut specs = Vec::new();
    for entry in registry() {
        for param in entry.params {
            for edge in EDGES {
                for value in values_for(&param.kind, param.default, edge) {
                    let what = format!("{} {}={edge}", entry.name, param.name);
                    specs.push((what, call(entry.name, &[], &[(param.name.to_string(), value)])));
                }
            }
        }
    }
    specs
}

/// Every schedule × keyword × edge value, as `--lr-schedule` specs.
fn schedule_specs() -> Vec<(String, String)> {
    let mut specs = Vec::new();
    for entry in SCHEDULES {
        let (children, base) = schedule_base(entry);
        for param in entry.params {
            for edge in EDGES {
                for value in values_for(&param.kind, param.default, edge) {
                    let mut args: Vec<(String, String)> =
                        base.iter().filter(|(k, _)| k != param.name).cloned().collect();
                    args.push((param.name.to_string(), value));
                    let what = format!("{} {}={edge}", entry.name, param.name);
                    specs.push((what, call(entry.name, &children, &args)));
                }
            }
        }
    }
    specs
}

/// The flags of `adamlab COMMAND --help` that take a value (`--lr <LR>`), but those in `fixed`,
/// which the runs set.
fn value_flags(command: &[&str], fixed: &[&str]) -> Vec<String> {
    let output = adamlab(&strings(&[command, &["--help"]].concat()));
    assert_success(&output);
    let help = String::from_utf8(output.stdout).unwrap();
    help.lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with("--"))
        .filter_map(|line| {
            let (flag, rest) = line.split_once(' ')?;
            rest.starts_with('<').then(|| flag.to_string())
        })
        .filter(|flag| !fixed.contains(&flag.as_str()))
        .collect()
}

/// `base` with `flag` set to `value` (replacing the base's value of it), and `needs`.
fn with_flag(base: &[String], flag: &str, value: &str, needs: &[&str]) -> Vec<String> {
    let mut args = base.to_vec();
    if let Some(at) = args.iter().position(|a| a == flag) {
        args.drain(at..at + 2);
    }
    args.extend(strings(&[flag, value]));
    args.extend(strings(needs));
    args
}

/// The base of every run: the article's MLP, 3 epochs (3 full-batch steps), on flex.
fn mlp_run(extra: &[&str]) -> Vec<String> {
    let mut args = strings(&["train", "--model", "mlp", "--backend", "flex", "--epochs", "3"]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Every case of the binary sweep.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (what, spec) in optimizer_specs() {
        cases.push(Case { what, args: mlp_run(&["--optimizer", &spec]) });
    }
    for (what, spec) in schedule_specs() {
        cases.push(Case { what, args: mlp_run(&["--optimizer", "adam", "--lr-schedule", &spec]) });
    }
    let train_flags = value_flags(&["train"], &["--backend", "--model"]);
    assert!(train_flags.iter().any(|f| f == "--clip-grad-norm"), "flags read from --help: {train_flags:?}");
    for flag in train_flags {
        for edge in EDGES {
            // `--clip-norm-type` needs `--clip-grad-norm`; any other flag is given alone.
            let needs: &[&str] = if flag == "--clip-norm-type" { &["--clip-grad-norm", "1"] } else { &[] };
            let args = with_flag(&mlp_run(&[]), &flag, edge, needs);
            cases.push(Case { what: format!("train {flag} {edge}"), args });
        }
    }
    // `bench step`, at its smallest (about a second a run, most of it the bandwidth probe).
    let bench = strings(&[
        "bench", "step", "--backends", "flex", "--optimizers", "adam", "--params", "1e3", "--warmup", "0", "--repeats", "1",
    ]);
    let bench_flags = value_flags(&["bench", "step"], &["--backends"]);
    assert!(bench_flags.iter().any(|f| f == "--params"), "flags read from --help: {bench_flags:?}");
    for flag in bench_flags {
        for edge in EDGES {
            cases.push(Case { what: format!("bench step {flag} {edge}"), args: with_flag(&bench, &flag, edge, &[]) });
        }
    }
    cases
}

/// What one run ended in: `None` when as promised, else why not.
fn run_case(case: &Case, dir: &Path) -> Option<String> {
    let mut child = command(&case.args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Some(format!("still running after {TIME_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    // The Vulkan loader's complaint where wgpu is compiled in (`bench` looks for a GPU) is the
    // environment's, not adamlab's.
    let lines: Vec<&str> = err.trim_end().lines().filter(|l| !l.contains("XDG_RUNTIME_DIR")).collect();
    let errors = lines.iter().filter(|l| l.starts_with("error:")).count();
    let last = lines.last().copied().unwrap_or("");
    let ok = match status.code() {
        Some(0) => errors == 0,
        Some(2) => errors == 1 && last.starts_with("error:"),
        Some(1) => errors == 1 && last.starts_with("error: the loss became"),
        _ => false,
    };
    // A negative value reaches the flag it follows (clap would call it an unexpected argument).
    let negative_lost = err.contains("unexpected argument '-");
    (!ok || negative_lost || err.contains("panicked")).then(|| format!("{status}, stderr: {err}"))
}

#[test]
fn every_optimizer_and_schedule_keyword_takes_every_edge_value_in_process() {
    let mut failures = Vec::new();
    let one_line = |what: &str, message: String, failures: &mut Vec<String>| {
        if message.lines().count() != 1 {
            failures.push(format!("{what}: an error of {} lines: {message}", message.lines().count()));
        }
    };
    for (what, spec) in optimizer_specs() {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| OptimizerSpec::parse(&spec).map(|s| s.build().map(|_| ())))) {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) | Ok(Err(err)) => one_line(&what, err.to_string(), &mut failures),
            Err(_) => failures.push(format!("{what}: `{spec}` panicked")),
        }
    }
    let adam = OptimizerSpec::parse("adam").unwrap();
    for (what, spec) in schedule_specs() {
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(), String> {
            let schedule = ScheduleSpec::parse(&spec).map_err(|e| e.to_string())?;
            let mut built = schedule.build(0.01).map_err(|e| e.to_string())?;
            for _ in 0..100 {
                let _ = built.peek();
                built.advance(1);
            }
            let controls = ControlsSpec { schedule: Some(schedule), ..ControlsSpec::optimizer(adam.clone()) };
            Controls::new(&controls).map(|_| ()).map_err(|e| e.to_string())
        }));
        match checked {
            Ok(Ok(())) => {}
            Ok(Err(message)) => one_line(&what, message, &mut failures),
            Err(_) => failures.push(format!("{what}: `{spec}` panicked")),
        }
    }
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_optimizer_schedule_and_flag_takes_every_edge_value_through_the_binary() {
    let cases = cases();
    let dir = sandbox("sweep");
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(case) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Some(why) = run_case(case, &dir) {
                        failures.lock().unwrap().push(format!("{}: adamlab {}: {why}", case.what, case.args.join(" ")));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} of {} runs failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert!(cases.len() > 1000, "{} cases: the tables are smaller than the registry", cases.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_tables_cover_every_registered_keyword_and_every_schedule_keyword() {
    let optimizer_cases = optimizer_specs();
    for entry in registry() {
        for param in entry.params {
            let what = format!("{} {}=", entry.name, param.name);
            let count = optimizer_cases.iter().filter(|(w, _)| w.starts_with(&what)).count();
            assert!(count >= EDGES.len(), "{what}: {count} cases");
        }
    }
    let schedule_cases = schedule_specs();
    for entry in SCHEDULES {
        for param in entry.params {
            let what = format!("{} {}=", entry.name, param.name);
            assert!(schedule_cases.iter().filter(|(w, _)| w.starts_with(&what)).count() >= EDGES.len(), "{what}");
        }
    }
    // The base of a schedule with required keywords parses: `cosine` needs `t_max`.
    let cosine = SCHEDULES.iter().find(|e| e.name == "cosine").unwrap();
    assert_eq!(schedule_base(cosine), (vec![], vec![("t_max".to_string(), "10".to_string())]));
}
