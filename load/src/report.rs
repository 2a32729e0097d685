//! What `tpk-load` prints: text for people, JSON for scripts.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug)]
pub struct Rss {
    pub kib: u64,
}

impl Rss {
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| anyhow::anyhow!("--rss-pid {pid}: cannot read its status: {e}"))?;
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("--rss-pid {pid}: no VmRSS line"))?;
        Ok(Self { kib })
    }

    fn mib(self) -> f64 {
        self.kib as f64 / 1024.0
    }
}

pub struct LoadReport<'a> {
    pub url: String,
    pub concurrency: usize,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub latency: &'a Histogram<u64>,
    pub rss_before: Option<Rss>,
    pub rss_after: Option<Rss>,
}

impl LoadReport<'_> {
    pub fn print(&self, as_json: bool) {
        let rps = self.requests as f64 / self.seconds;
        let percentile = |q: f64| self.latency.value_at_quantile(q);
        if as_json {
            let mut report = json!({
                "url": self.url,
                "concurrency": self.concurrency,
                "requests": self.requests,
                "errors": self.errors,
                "seconds": self.seconds,
                "rps": rps,
                "latency_us": {
                    "p50": percentile(0.50),
                    "p90": percentile(0.90),
                    "p99": percentile(0.99),
                    "max": self.latency.max(),
                },
            });
            if let (Some(before), Some(after)) = (self.rss_before, self.rss_after) {
                report["rss_kib"] = json!({ "before": before.kib, "after": after.kib });
            }
            println!("{report}");
            return;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        println!("{} at concurrency {}", self.url, self.concurrency);
        println!(
            "requests  {} in {:.2} s: {:.0} req/s, {} errors",
            self.requests, self.seconds, rps, self.errors
        );
        println!(
            "latency   p50 {:.3} ms   p90 {:.3} ms   p99 {:.3} ms   max {:.3} ms",
            ms(percentile(0.50)),
            ms(percentile(0.90)),
            ms(percentile(0.99)),
            ms(self.latency.max())
        );
        if let (Some(before), Some(after)) = (self.rss_before, self.rss_after) {
            println!(
                "rss       {:.1} MiB before, {:.1} MiB after",
                before.mib(),
                after.mib()
            );
        }
    }
}

pub struct StartupReport {
    pub runs: Vec<Duration>,
}

impl StartupReport {
    pub fn print(&self, as_json: bool) {
        let mut sorted = self.runs.clone();
        sorted.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let (min, median, max) = (
            sorted[0],
            sorted[sorted.len() / 2],
            sorted[sorted.len() - 1],
        );
        if as_json {
            println!(
                "{}",
                json!({
                    "runs": sorted.len(),
                    "first_healthz_ms": { "min": ms(min), "median": ms(median), "max": ms(max) },
                })
            );
        } else {
            println!(
                "first 200 on /healthz after start, {} runs: min {:.1} ms, median {:.1} ms, max {:.1} ms",
                sorted.len(),
                ms(min),
                ms(median),
                ms(max)
            );
        }
    }
}
