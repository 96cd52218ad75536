//! How busy the machine was while one side of a bench ran (adamlab's measurements or PyTorch's):
//! the load average at its start and end, and the CPU time that other processes took meanwhile.
//!
//! PyTorch's OpenMP threads collapse when another process shares their cores: the same
//! `bench train --torch` gave PyTorch 169 images/s on a busy 2-core machine and 2,911 on a quiet
//! one, while flex moved from 742 to 1,087 (issue 23). A ratio from such a run measures the other
//! process, so each side records what it shared the machine with, and a busy side is said on
//! stderr and flagged by the report.
//!
//! Other processes' CPU time is the CPUs' busy time (`/proc/stat`, only the CPUs this process may
//! run on) minus this process's own (`/proc/self/stat`: every thread, plus the children it has
//! waited for, which is where PyTorch's process lands once it has ended). Four small files per
//! reading, two readings per side: no walk over `/proc/*`, nothing in the timed loops.

use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The side of adamlab's measurements (the triad included).
pub const ADAMLAB: &str = "adamlab";
/// The side of PyTorch's.
pub const TORCH: &str = "torch";

/// Other processes' CPU use, averaged over a side, in cores, above which the side is busy.
///
/// The benches run one thread per core (rayon's pool; PyTorch is given the same count), so each
/// CPU-second another process gets is taken from one of those threads. Their parallel regions end
/// at a barrier (OpenMP's, rayon's joins), so every region waits for the thread that lost its
/// core: a quarter of a core taken all the time slows such a region by up to a quarter, as large
/// as the gaps between adamlab and PyTorch the benches are run to measure, and OpenMP's spinning
/// threads can lose far more (PyTorch's 17× above). For scale: on the shared 2-core machine this was
/// written on, other processes took 1.5 to 1.9 cores during each side measured.
pub const BUSY_OTHER_CORES: f64 = 0.25;

/// Clock ticks per CPU that two readings may be off by: `/proc/stat` samples each CPU once a tick,
/// while a process's times are its exact run time rounded to ticks. Other processes' time must
/// exceed this too before a side is busy, so that a side of a few hundred milliseconds is not
/// called busy by rounding alone.
pub const NOISE_TICKS_PER_CPU: u64 = 2;

/// One reading of the counters, in clock ticks (`USER_HZ`, the unit of both files).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Every tick of the counted CPUs, idle ones included: wall time × CPUs.
    pub all_ticks: u64,
    /// Ticks those CPUs ran anything: user, nice, system, irq, softirq, and steal (a virtual
    /// machine's CPU taken by other guests).
    pub busy_ticks: u64,
    /// The counted CPUs: those this process may run on.
    pub cpus: usize,
    /// This process's user and system time, with those of the children it has waited for.
    pub own_ticks: u64,
    /// The 1-, 5- and 15-minute load averages.
    pub load_average: Option<[f64; 3]>,
}

impl Reading {
    /// Reads the counters of this machine and process; `None` where `/proc` does not tell (not
    /// Linux).
    pub fn now() -> Option<Self> {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let allowed = read("/proc/self/status").and_then(|status| allowed_cpus(&status));
        Self::parse(
            &read("/proc/stat")?,
            &read("/proc/self/stat")?,
            allowed.as_deref(),
            read("/proc/loadavg").as_deref(),
        )
    }

    /// A reading from the texts of `/proc/stat` and `/proc/self/stat`, counting the CPUs of
    /// `allowed` (every CPU when `None`), with the text of `/proc/loadavg` when given.
    pub fn parse(
        stat: &str,
        self_stat: &str,
        allowed: Option<&[usize]>,
        loadavg: Option<&str>,
    ) -> Option<Self> {
        let (mut all_ticks, mut busy_ticks, mut cpus) = (0, 0, 0);
        for line in stat.lines() {
            let mut fields = line.split_whitespace();
            let Some(cpu) = fields.next().and_then(|name| name.strip_prefix("cpu")) else {
                continue;
            };
            // The first line, `cpu`, sums every CPU; `cpuN` are the CPUs.
            let Ok(cpu) = cpu.parse::<usize>() else {
                continue;
            };
            if allowed.is_some_and(|allowed| !allowed.contains(&cpu)) {
                continue;
            }
            // user nice system idle iowait irq softirq steal guest guest_nice; guest time is
            // already counted in user and nice.
            let ticks: Vec<u64> = fields
                .take(8)
                .map(|f| f.parse().ok())
                .collect::<Option<_>>()?;
            let tick = |i: usize| ticks.get(i).copied().unwrap_or(0);
            busy_ticks += tick(0) + tick(1) + tick(2) + tick(5) + tick(6) + tick(7);
            all_ticks += ticks.iter().sum::<u64>();
            cpus += 1;
        }
        if cpus == 0 {
            return None;
        }
        Some(Self {
            all_ticks,
            busy_ticks,
            cpus,
            own_ticks: own_ticks(self_stat)?,
            load_average: loadavg.and_then(load_average),
        })
    }
}

/// utime + stime + cutime + cstime of a `/proc/PID/stat` text (fields 14 to 17). The command
/// name, field 2, is in parentheses and may hold spaces and parentheses: fields are counted from
/// the last `)`.
pub fn own_ticks(self_stat: &str) -> Option<u64> {
    let after_name = &self_stat[self_stat.rfind(')')? + 1..];
    // After the name: state is field 3, so field N is at N − 3.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    (11..=14)
        .map(|i| fields.get(i)?.parse::<i64>().ok().map(|t| t.max(0) as u64))
        .sum()
}

/// The CPUs of `Cpus_allowed_list:` in a `/proc/PID/status` text (`0-3,8,10-11`).
pub fn allowed_cpus(status: &str) -> Option<Vec<usize>> {
    let list = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))?;
    let mut cpus = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => {
                cpus.extend(first.trim().parse::<usize>().ok()?..=last.trim().parse().ok()?)
            }
            None => cpus.push(part.trim().parse().ok()?),
        }
    }
    (!cpus.is_empty()).then_some(cpus)
}

/// The three load averages of a `/proc/loadavg` text.
pub fn load_average(loadavg: &str) -> Option<[f64; 3]> {
    let mut values = loadavg.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([values.next()??, values.next()??, values.next()??])
}

/// The machine's load over one side of a run, as the bench file records it (`load` in
/// `docs/bench-schema.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideLoad {
    /// Whose measurements: `adamlab` or `torch`.
    pub side: String,
    /// The round of `bench step --rounds N`, from 1; 1 for the other benches.
    pub round: u64,
    /// Seconds from the side's start to its end.
    pub seconds: f64,
    /// The load averages when the side started.
    pub load_average_start: Option<[f64; 3]>,
    /// The load averages when it ended.
    pub load_average_end: Option<[f64; 3]>,
    /// The CPUs counted: those the bench may run on.
    pub cpus: Option<u64>,
    /// CPU time of other processes during the side over its wall time: the cores they took on
    /// average.
    pub other_cores: Option<f64>,
    /// The same for adamlab's process and the PyTorch process it ran.
    pub own_cores: Option<f64>,
    /// Whether other processes took more than [`BUSY_OTHER_CORES`] (and more than the counters'
    /// noise); `null` where the counters could not be read.
    pub busy: Option<bool>,
}

impl SideLoad {
    /// The load between two readings of one side.
    pub fn between(
        side: &str,
        round: u64,
        seconds: f64,
        start: Option<&Reading>,
        end: Option<&Reading>,
    ) -> Self {
        let mut load = Self {
            side: side.to_string(),
            round,
            seconds,
            load_average_start: start.and_then(|r| r.load_average),
            load_average_end: end.and_then(|r| r.load_average),
            cpus: None,
            other_cores: None,
            own_cores: None,
            busy: None,
        };
        let (Some(start), Some(end)) = (start, end) else {
            return load;
        };
        // A CPU brought on- or offline between the readings changes the sums: no figures then.
        let all = end
            .all_ticks
            .checked_sub(start.all_ticks)
            .filter(|&t| t > 0 && start.cpus == end.cpus);
        let (Some(all), Some(busy), Some(own)) = (
            all,
            end.busy_ticks.checked_sub(start.busy_ticks),
            end.own_ticks.checked_sub(start.own_ticks),
        ) else {
            return load;
        };
        // Wall-clock ticks of one CPU over the side.
        let wall = all as f64 / end.cpus as f64;
        let other = busy.saturating_sub(own);
        load.cpus = Some(end.cpus as u64);
        load.other_cores = Some(other as f64 / wall);
        load.own_cores = Some(own as f64 / wall);
        load.busy = Some(
            other as f64 / wall > BUSY_OTHER_CORES && other > NOISE_TICKS_PER_CPU * end.cpus as u64,
        );
        load
    }

    /// One line for people: `PyTorch's side (round 2): other processes took 1.30 cores on
    /// average over 41 s; load average 7.9 at its start, 8.2 at its end` (tenths of a second
    /// below 10 s).
    pub fn describe(&self) -> String {
        let side = match self.side.as_str() {
            "torch" => "PyTorch's side".to_string(),
            other => format!("{other}'s side"),
        };
        let round = if self.round > 1 {
            format!(" (round {})", self.round)
        } else {
            String::new()
        };
        let seconds = if self.seconds < 10.0 {
            format!("{:.1}", self.seconds)
        } else {
            format!("{:.0}", self.seconds)
        };
        let others = match self.other_cores {
            Some(cores) => {
                format!("other processes took {cores:.2} cores on average over {seconds} s")
            }
            None => format!("other processes' CPU time unknown over {seconds} s"),
        };
        let load = match (self.load_average_start, self.load_average_end) {
            (Some([a, ..]), Some([b, ..])) => {
                format!("; load average {a:.1} at its start, {b:.1} at its end")
            }
            _ => String::new(),
        };
        format!("{side}{round}: {others}{load}")
    }
}

/// What a bench file's sides say of the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict<'a> {
    /// A file written before the load was recorded.
    NotRecorded,
    /// Some side's counters could not be read, and no side was busy.
    Unknown,
    /// No side was busy: the most other processes took on average over a side, in cores.
    Quiet(f64),
    /// These sides were busy: no ratio involving their rows is a result.
    Busy(Vec<&'a SideLoad>),
}

/// The verdict over every side of a run.
pub fn verdict(sides: &[SideLoad]) -> Verdict<'_> {
    let busy: Vec<&SideLoad> = sides.iter().filter(|s| s.busy == Some(true)).collect();
    if sides.is_empty() {
        Verdict::NotRecorded
    } else if !busy.is_empty() {
        Verdict::Busy(busy)
    } else if sides.iter().any(|s| s.busy.is_none()) {
        Verdict::Unknown
    } else {
        Verdict::Quiet(
            sides
                .iter()
                .filter_map(|s| s.other_cores)
                .fold(0.0, f64::max),
        )
    }
}

/// A side being measured: a reading and the clock at its start.
#[derive(Debug, Clone)]
pub struct Side {
    name: &'static str,
    round: u64,
    started: Instant,
    start: Option<Reading>,
}

impl Side {
    /// Takes the start reading of side `name` (`adamlab`, `torch`) of round `round`.
    pub fn start(name: &'static str, round: u64) -> Self {
        Self {
            name,
            round,
            started: Instant::now(),
            start: Reading::now(),
        }
    }

    /// Takes the end reading: the load over the side.
    pub fn end(self) -> SideLoad {
        let end = Reading::now();
        let seconds = self.started.elapsed().as_secs_f64();
        SideLoad::between(
            self.name,
            self.round,
            seconds,
            self.start.as_ref(),
            end.as_ref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/stat` with two CPUs and the totals line, in a kernel's layout.
    fn stat(cpu0: [u64; 10], cpu1: [u64; 10]) -> String {
        let line =
            |name: &str, t: [u64; 10]| format!("{name} {}\n", t.map(|x| x.to_string()).join(" "));
        let total: [u64; 10] = std::array::from_fn(|i| cpu0[i] + cpu1[i]);
        format!(
            "{}{}{}intr 1 2 3\nctxt 99\nbtime 1700000000\nprocesses 10\nprocs_running 3\n",
            line("cpu ", total),
            line("cpu0", cpu0),
            line("cpu1", cpu1)
        )
    }

    /// `/proc/self/stat` of a process named `name` with these user, system, children's user and
    /// children's system times.
    fn self_stat(name: &str, [utime, stime, cutime, cstime]: [u64; 4]) -> String {
        format!(
            "4242 ({name}) R 1 4242 4242 0 -1 4194560 1000 0 0 0 {utime} {stime} {cutime} {cstime} 20 0 3 0 \
             12345 100000000 5000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0"
        )
    }

    /// A CPU's counters: `busy` ticks of user time, `idle` idle, `steal` stolen.
    fn cpu(user: u64, idle: u64, steal: u64) -> [u64; 10] {
        [user, 0, 0, idle, 0, 0, 0, steal, 0, 0]
    }

    #[test]
    fn cpu_lists_expand_ranges() {
        let status = "Name:\tadamlab\nCpus_allowed:\t3f\nCpus_allowed_list:\t0-2,4,6-7\nMems_allowed_list:\t0\n";
        assert_eq!(allowed_cpus(status), Some(vec![0, 1, 2, 4, 6, 7]));
        assert_eq!(allowed_cpus("Name:\tx\n"), None);
    }

    #[test]
    fn own_ticks_count_from_the_last_parenthesis_of_a_name_with_spaces() {
        assert_eq!(
            own_ticks(&self_stat("adamlab", [100, 20, 300, 4])),
            Some(424)
        );
        assert_eq!(own_ticks(&self_stat("a) (b c", [1, 2, 3, 4])), Some(10));
        assert_eq!(own_ticks("4242 (adamlab) R 1"), None);
    }

    #[test]
    fn readings_count_only_the_allowed_cpus_and_busy_time_includes_steal() {
        let text = stat(cpu(100, 900, 5), cpu(300, 700, 0));
        let me = self_stat("adamlab", [50, 10, 0, 0]);
        let both = Reading::parse(&text, &me, None, Some("1.50 2.25 3.00 2/300 999\n")).unwrap();
        assert_eq!(
            (both.cpus, both.all_ticks, both.busy_ticks, both.own_ticks),
            (2, 2005, 405, 60)
        );
        assert_eq!(both.load_average, Some([1.5, 2.25, 3.0]));
        let second = Reading::parse(&text, &me, Some(&[1]), None).unwrap();
        assert_eq!(
            (second.cpus, second.all_ticks, second.busy_ticks),
            (1, 1000, 300)
        );
        assert!(Reading::parse("intr 1\n", &me, None, None).is_none());
    }

    /// Two readings `seconds` apart at 100 ticks a second on two CPUs, where the CPUs ran
    /// `busy` ticks in all and this process `own` of them.
    fn side(seconds: u64, busy: [u64; 2], own: u64) -> SideLoad {
        let me = |t| self_stat("adamlab", [t, 0, 0, 0]);
        let start = Reading::parse(
            &stat(cpu(0, 0, 0), cpu(0, 0, 0)),
            &me(0),
            None,
            Some("3.0 2 1 1/1 1"),
        )
        .unwrap();
        let per_cpu = 100 * seconds;
        let end = Reading::parse(
            &stat(
                cpu(busy[0], per_cpu - busy[0], 0),
                cpu(busy[1], per_cpu - busy[1], 0),
            ),
            &me(own),
            None,
            Some("3.5 2 1 1/1 1"),
        )
        .unwrap();
        SideLoad::between("torch", 2, seconds as f64, Some(&start), Some(&end))
    }

    #[test]
    fn a_side_that_had_the_machine_to_itself_is_not_busy() {
        // Both CPUs fully busy for 10 s, all of it this process's tree but 10 ticks (0.01 core).
        let load = side(10, [1000, 1000], 1990);
        assert_eq!(load.busy, Some(false));
        assert!((load.other_cores.unwrap() - 0.01).abs() < 1e-12, "{load:?}");
        assert!((load.own_cores.unwrap() - 1.99).abs() < 1e-12, "{load:?}");
        assert_eq!(load.cpus, Some(2));
        assert_eq!(
            (load.load_average_start, load.load_average_end),
            (Some([3.0, 2.0, 1.0]), Some([3.5, 2.0, 1.0]))
        );
    }

    #[test]
    fn a_side_sharing_its_cores_with_another_process_is_busy() {
        // Another process took a third of the 2 × 10 s: 0.67 cores.
        let load = side(10, [1000, 1000], 1333);
        assert_eq!(load.busy, Some(true));
        assert!(
            (load.other_cores.unwrap() - 0.667).abs() < 1e-12,
            "{load:?}"
        );
        assert!(
            load.describe()
                .starts_with("PyTorch's side (round 2): other processes took 0.67 cores"),
            "{}",
            load.describe()
        );
        // Just above and just below the threshold of a quarter of a core.
        assert_eq!(side(10, [1000, 1000], 2000 - 251).busy, Some(true));
        assert_eq!(side(10, [1000, 1000], 2000 - 250).busy, Some(false));
        // Idle CPUs are not others' time.
        assert_eq!(side(10, [500, 0], 500).busy, Some(false));
    }

    #[test]
    fn a_short_side_is_not_called_busy_by_rounding_alone() {
        // 0.1 s: 3 ticks of others are 0.3 cores, but within the counters' noise.
        let load = side(0, [0, 0], 0);
        assert_eq!(load.busy, None, "no wall time, no figures");
        let me = |t| self_stat("adamlab", [t, 0, 0, 0]);
        let start = Reading::parse(&stat(cpu(0, 0, 0), cpu(0, 0, 0)), &me(0), None, None).unwrap();
        let end = Reading::parse(&stat(cpu(10, 0, 0), cpu(3, 7, 0)), &me(10), None, None).unwrap();
        let load = SideLoad::between("adamlab", 1, 0.1, Some(&start), Some(&end));
        assert!((load.other_cores.unwrap() - 0.3).abs() < 1e-12, "{load:?}");
        assert_eq!(load.busy, Some(false));
    }

    #[test]
    fn without_counters_the_verdict_is_unknown_and_the_line_says_so() {
        let load = SideLoad::between("adamlab", 1, 4.0, None, None);
        assert_eq!((load.busy, load.other_cores), (None, None));
        assert_eq!(
            load.describe(),
            "adamlab's side: other processes' CPU time unknown over 4.0 s"
        );
    }

    #[test]
    fn a_run_is_busy_when_any_side_was_and_unrecorded_when_it_has_none() {
        let quiet = side(10, [1000, 1000], 1990);
        let busy = side(10, [1000, 1000], 1333);
        let unknown = SideLoad::between("adamlab", 1, 4.0, None, None);
        assert_eq!(verdict(&[]), Verdict::NotRecorded);
        assert_eq!(
            verdict(std::slice::from_ref(&quiet)),
            Verdict::Quiet(quiet.other_cores.unwrap())
        );
        assert_eq!(verdict(&[quiet.clone(), unknown.clone()]), Verdict::Unknown);
        let all = [quiet, busy.clone(), unknown];
        assert_eq!(verdict(&all), Verdict::Busy(vec![&busy]));
    }

    #[test]
    fn this_machine_can_be_read() {
        if !std::path::Path::new("/proc/stat").exists() {
            return;
        }
        let reading = Reading::now().expect("Linux's /proc is readable");
        assert!(
            reading.cpus >= 1 && reading.all_ticks >= reading.busy_ticks,
            "{reading:?}"
        );
        assert!(
            reading.own_ticks <= reading.busy_ticks && reading.load_average.is_some(),
            "{reading:?}"
        );
        let load = Side::start("adamlab", 1).end();
        assert_eq!((load.side.as_str(), load.round), ("adamlab", 1));
        assert!(
            load.load_average_start.is_some() && load.load_average_end.is_some(),
            "{load:?}"
        );
    }
}
