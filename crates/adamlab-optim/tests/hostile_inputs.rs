//! Hostile values for every keyword of every optimizer and schedule (issue 18): each spec is
//! accepted or refused in one line, and an accepted one builds and steps, never panicking; and
//! the schedule catalogue's ranges are what the parser accepts.

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use adamlab_optim::schedule::{SCHEDULES, ScheduleSpec};
use adamlab_optim::{Kind, OptimizerSpec, Value, registry};

/// The edge values of the issue: −1, 0, −0.0, 1e-45, 1e300, NaN, inf.
const EDGES: [f64; 7] = [-1.0, 0.0, -0.0, 1e-45, 1e300, f64::NAN, f64::INFINITY];

#[derive(Module, Debug)]
struct Point {
    x: Param<Tensor<2>>,
}

/// `value` in place of `default` (the keyword's default or given value): the number itself, or
/// in each position of a tuple or list in turn.
fn substitutions(kind: Kind, default: &Value, edge: f64) -> Vec<Value> {
    match (kind, default) {
        (Kind::Tuple(_) | Kind::List(_), Value::Tuple(values)) if !values.is_empty() => (0..values.len())
            .map(|i| {
                let mut values = values.clone();
                values[i] = Value::Number(edge);
                Value::Tuple(values)
            })
            .collect(),
        (Kind::List(_), _) => vec![Value::Tuple(vec![Value::Number(edge)])],
        _ => vec![Value::Number(edge)],
    }
}

/// One step of `optimizer` on a 2×3 point (2-D, so Muon orthogonalises it) with gradient 1.
fn one_step(optimizer: &mut ModuleOptimizer, lr: f64) {
    let device = Device::flex().autodiff();
    let point = Point {
        x: Param::from_tensor(Tensor::<2>::from_floats([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]], &device)),
    };
    let grads = GradientsParams::from_grads(point.x.val().sum().backward(), &point);
    let _ = optimizer.step(lr, point, grads);
}

/// Fails listing every case that panicked or gave an error of more than one line.
fn assert_no_panics(failures: Vec<String>) {
    assert!(failures.is_empty(), "{} cases:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_optimizer_keyword_takes_edge_values_without_panicking() {
    let mut failures = Vec::new();
    for entry in registry() {
        let spec = OptimizerSpec::parse(entry.name).unwrap();
        for param in entry.params {
            for edge in EDGES {
                for value in substitutions(param.kind, &spec.args().values()[param.name], edge) {
                    let case = format!("{}({}={value})", entry.name, param.name);
                    let outcome = catch_unwind(AssertUnwindSafe(|| match spec.with(param.name, value.clone()) {
                        Ok(spec) => {
                            let mut optimizer = spec.build().map_err(|e| e.to_string())?.module_optimizer();
                            one_step(&mut optimizer, spec.lr());
                            Ok(())
                        }
                        Err(err) => Err(err.to_string()),
                    }));
                    match outcome {
                        Err(_) => failures.push(format!("{case}: panicked")),
                        Ok(Err(message)) if message.lines().count() != 1 => {
                            failures.push(format!("{case}: {message}"))
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
    }
    assert_no_panics(failures);
}

#[test]
fn every_schedule_keyword_takes_edge_values_without_panicking() {
    let mut failures = Vec::new();
    for entry in SCHEDULES.iter().filter(|e| e.name != "sequential") {
        // Every required keyword given a valid value, so that each edge is the only change.
        let required: Vec<String> = entry
            .params
            .iter()
            .filter(|p| p.default == "None" && !matches!(p.kind, Kind::Optional(_)))
            .map(|p| format!("{}={}", p.name, if p.name == "max_lr" { "0.1" } else { "10" }))
            .collect();
        for param in entry.params {
            for edge in EDGES {
                let defaults = adamlab_optim::spec::parse_value(param.default).unwrap_or(Value::None);
                for value in substitutions(param.kind, &defaults, edge) {
                    let mut args: Vec<String> = required
                        .iter()
                        .filter(|a| !a.starts_with(&format!("{}=", param.name)))
                        .cloned()
                        .collect();
                    args.push(format!("{}={}", param.name, show(&value)));
                    let text = format!("{}({})", entry.name, args.join(", "));
                    let outcome = catch_unwind(AssertUnwindSafe(|| {
                        let spec = ScheduleSpec::parse(&text).map_err(|e| e.to_string())?;
                        let mut schedule = spec.build(0.1).map_err(|e| e.to_string())?;
                        schedule.advance(3);
                        Ok::<(), String>(())
                    }));
                    match outcome {
                        Err(_) => failures.push(format!("{text}: panicked")),
                        Ok(Err(message)) if message.lines().count() != 1 => failures.push(format!("{text}: {message}")),
                        Ok(_) => {}
                    }
                }
            }
        }
    }
    assert_no_panics(failures);
}

/// A value as a spec writes it (NaN as `nan`, which the parser refuses: a case of its own).
fn show(value: &Value) -> String {
    match value {
        Value::Number(x) if x.is_nan() => "nan".to_string(),
        Value::Number(x) if x.is_infinite() => if *x > 0.0 { "inf".to_string() } else { "-inf".to_string() },
        Value::Tuple(values) => format!("({})", values.iter().map(show).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// The ranges `adamlab schedules` prints are the ranges the parser accepts: for every number
/// keyword of every schedule, each of a set of values around its range's ends is accepted by the
/// catalogue's kind exactly when the spec parses.
#[test]
fn the_schedule_catalogue_ranges_are_what_the_parser_accepts() {
    let mut mismatches = Vec::new();
    for entry in SCHEDULES.iter().filter(|e| e.name != "sequential") {
        for param in entry.params {
            let kind = match param.kind {
                Kind::Optional(inner) => *inner,
                kind => kind,
            };
            let candidates: Vec<f64> = match kind {
                Kind::Float(range) => [range.min, range.max, 0.0, 0.5, 1.0, 2.0, -1.0, 1e-45]
                    .iter()
                    .filter(|x| x.is_finite())
                    .flat_map(|x| [*x, x - 1e-3, x + 1e-3])
                    .collect(),
                Kind::Int { min, .. } => vec![min as f64 - 1.0, min as f64, min as f64 + 1.0, 0.5, 7.0],
                _ => continue,
            };
            for x in candidates {
                let mut args: Vec<String> = entry
                    .params
                    .iter()
                    .filter(|p| p.name != param.name && p.default == "None" && !matches!(p.kind, Kind::Optional(_)))
                    .map(|p| format!("{}={}", p.name, if p.name == "max_lr" { "0.1" } else { "10" }))
                    .collect();
                if entry.name == "onecycle" && !["total_steps", "epochs", "steps_per_epoch"].contains(&param.name) {
                    args.push("total_steps=100".to_string());
                }
                if entry.name == "onecycle" && ["epochs", "steps_per_epoch"].contains(&param.name) {
                    let other = if param.name == "epochs" { "steps_per_epoch" } else { "epochs" };
                    args.push(format!("{other}=10"));
                }
                args.push(format!("{}={x:?}", param.name));
                let text = format!("{}({})", entry.name, args.join(", "));
                let catalogue = param.kind.check(&Value::Number(x)).is_ok();
                let parser = ScheduleSpec::parse(&text);
                if catalogue != parser.is_ok() {
                    mismatches.push(format!("{text}: catalogue {catalogue}, parser {parser:?}"));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
