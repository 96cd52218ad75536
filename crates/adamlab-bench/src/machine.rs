//! The machine a run measured: CPU, threads, memory, wgpu adapter, versions and commit. Every
//! bench file carries it, so that a number is never separated from where it came from.

use serde::{Deserialize, Serialize};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The version burn is pinned to in the workspace manifest (`burn = { version = "=X" … }`).
const WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");

/// Where a bench ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model, as the OS names it.
    pub cpu: String,
    /// Logical CPUs available to the process.
    pub cores: usize,
    /// Threads burn's CPU backends use (rayon's pool); PyTorch is given the same number.
    pub threads: usize,
    /// Total memory, GiB.
    pub memory_gib: f64,
    /// Operating system and architecture.
    pub os: String,
    /// The adapter wgpu uses, when wgpu is compiled in and finds one.
    pub wgpu_adapter: Option<String>,
    /// The backends compiled into the binary.
    pub backends: Vec<String>,
    /// burn's version.
    pub burn_version: String,
    /// adamlab's version.
    pub adamlab_version: String,
    /// The git commit of the source tree the binary was built from, with `-dirty` when it had
    /// uncommitted changes at run time; `null` outside a git checkout.
    pub git_commit: Option<String>,
    /// PyTorch's version, when `--torch` ran it.
    pub torch_version: Option<String>,
    /// When the run started, UTC, ISO 8601.
    pub started_at: String,
    /// The 1-, 5- and 15-minute load averages when the run started (`/proc/loadavg`): above the
    /// core count, other work competed for the CPUs.
    pub load_average: Option<[f64; 3]>,
}

impl Machine {
    /// Describes the machine this process runs on.
    pub fn detect() -> Self {
        Self {
            cpu: cpu_model().unwrap_or_else(|| "unknown CPU".to_string()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads: rayon::current_num_threads(),
            memory_gib: memory_gib().unwrap_or(0.0),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            wgpu_adapter: adamlab_backend::wgpu_adapter_name(),
            backends: adamlab_backend::compiled().iter().map(|b| b.name().to_string()).collect(),
            burn_version: burn_version(),
            adamlab_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: git_commit(),
            torch_version: None,
            started_at: utc_now(),
            load_average: load_average(),
        }
    }

    /// One line: `2 × Intel Xeon …, 2 threads, 24 GiB; wgpu: llvmpipe …`.
    pub fn summary(&self) -> String {
        let adapter = match &self.wgpu_adapter {
            Some(name) => format!("; wgpu adapter: {name}"),
            None => String::new(),
        };
        format!(
            "{} ({} logical CPUs, {} threads used, {:.0} GiB){adapter}",
            self.cpu, self.cores, self.threads, self.memory_gib
        )
    }

    /// A fixed machine, for tests.
    #[cfg(test)]
    pub(crate) fn example() -> Self {
        Self {
            cpu: "Example CPU @ 2.0GHz".into(),
            cores: 2,
            threads: 2,
            memory_gib: 24.0,
            os: "linux x86_64".into(),
            wgpu_adapter: Some("llvmpipe (LLVM 19.1.7, 256 bits) on Vulkan".into()),
            backends: vec!["ndarray".into(), "flex".into(), "wgpu".into()],
            burn_version: "0.22.1".into(),
            adamlab_version: "0.1.0".into(),
            git_commit: Some("0123456789ab".into()),
            torch_version: Some("2.15.0".into()),
            started_at: "2026-11-27T01:00:00Z".into(),
            load_average: Some([0.5, 0.4, 0.3]),
        }
    }
}

/// burn's version from the workspace manifest's exact pin.
fn burn_version() -> String {
    WORKSPACE_MANIFEST
        .lines()
        .find(|line| line.starts_with("burn = "))
        .and_then(|line| line.split("version = \"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .map(|v| v.trim_start_matches('=').to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

fn cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split(':').nth(1))
        .map(|name| name.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut values = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([values.next()??, values.next()??, values.next()??])
}

/// The machine's memory in bytes (`MemTotal` of `/proc/meminfo`), when known.
pub(crate) fn memory_bytes() -> Option<u64> {
    memory_gib().map(|gib| (gib * (1u64 << 30) as f64) as u64)
}

fn memory_gib() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: f64 = meminfo
        .lines()
        .find(|line| line.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / (1024.0 * 1024.0))
}

fn git_commit() -> Option<String> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let run = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = run(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{commit}-dirty") } else { commit })
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    iso8601(secs)
}

/// Seconds since the Unix epoch as an ISO 8601 UTC time (Howard Hinnant's days-to-civil).
fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_version_comes_from_the_workspace_pin() {
        assert_eq!(burn_version(), "0.22.1");
    }

    #[test]
    fn iso8601_formats_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn the_machine_description_names_threads_and_the_adapter() {
        let line = Machine::example().summary();
        assert!(line.contains("2 threads used") && line.contains("llvmpipe"), "{line}");
    }
}
