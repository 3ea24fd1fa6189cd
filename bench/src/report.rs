//! Reduces load outcomes to rows, compares each with the echo baseline, and renders the
//! table (Markdown, so it can be pasted as is) and the JSON a README generator reads.

use std::{collections::BTreeMap, fmt, fs::File, io::BufWriter, path::Path};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{BenchError, LoadConfig, LoadOutcome};

/// The scenario every other one is divided by: bare tonic, no Throughline code.
pub const BASELINE_SCENARIO: &str = "echo";

const MIB: f64 = 1024.0 * 1024.0;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Percentiles {
    /// Reads the percentiles of a microsecond histogram; all zero when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        Self {
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            max_us: histogram.max(),
        }
    }
}

/// `value / baseline`, or `None` when there is no meaningful baseline to divide by.
pub fn ratio(value: f64, baseline: f64) -> Option<f64> {
    (baseline.is_finite() && baseline > 0.0 && value.is_finite()).then(|| value / baseline)
}

/// One scenario's measured figures.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    /// What the scenario exercises, printed under the table.
    pub description: String,
    pub callers: usize,
    pub connections: usize,
    /// Calls completed in the measured period, failed ones included.
    pub requests: u64,
    pub errors: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    pub elapsed_secs: f64,
    /// Successful calls per second: a server that fails fast must not look fast.
    pub requests_per_sec: f64,
    /// Latency of successful calls.
    #[serde(flatten)]
    pub latency: Percentiles,
    /// Peak RSS of the server process; for an in-process server that process also holds the
    /// load generator. `None` when it could not be read.
    pub peak_rss_bytes: Option<u64>,
    /// Throughput relative to [`BASELINE_SCENARIO`] in the same run; set by [`Report::new`].
    pub ratio_to_baseline: Option<f64>,
}

impl ScenarioResult {
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        config: &LoadConfig,
        outcome: &LoadOutcome,
        peak_rss_bytes: Option<u64>,
    ) -> Self {
        let errors = outcome.error_count();
        let elapsed_secs = outcome.elapsed.as_secs_f64();
        Self {
            name: name.into(),
            description: description.into(),
            callers: config.callers,
            connections: config.connections,
            requests: outcome.ok + errors,
            errors,
            errors_by_code: outcome.errors.clone(),
            elapsed_secs,
            requests_per_sec: per_second(outcome.ok, elapsed_secs),
            latency: Percentiles::of(&outcome.histogram),
            peak_rss_bytes,
            ratio_to_baseline: None,
        }
    }

    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.peak_rss_bytes.map(|bytes| bytes as f64 / MIB)
    }
}

fn per_second(count: u64, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// A whole run: machine and load parameters plus one row per scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Cores available to this process; every figure depends on it.
    pub cores: usize,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    pub baseline: String,
    pub results: Vec<ScenarioResult>,
}

impl Report {
    /// Builds the report and fills each row's ratio to the baseline, if the baseline ran.
    pub fn new(cores: usize, config: &LoadConfig, mut results: Vec<ScenarioResult>) -> Self {
        let baseline_rps = results
            .iter()
            .find(|r| r.name == BASELINE_SCENARIO)
            .map(|r| r.requests_per_sec);
        for result in &mut results {
            result.ratio_to_baseline =
                baseline_rps.and_then(|base| ratio(result.requests_per_sec, base));
        }
        Self {
            cores,
            warmup_secs: config.warmup.as_secs_f64(),
            duration_secs: config.duration.as_secs_f64(),
            baseline: BASELINE_SCENARIO.to_owned(),
            results,
        }
    }

    /// The results as a Markdown table.
    pub fn table(&self) -> String {
        let header = [
            "scenario",
            "callers",
            "connections",
            "req/s",
            "p50 ms",
            "p99 ms",
            "ratio to echo",
            "peak RSS MiB",
        ];
        let rows: Vec<[String; 8]> = self
            .results
            .iter()
            .map(|r| {
                [
                    r.name.clone(),
                    r.callers.to_string(),
                    r.connections.to_string(),
                    format!("{:.0}", r.requests_per_sec),
                    format_ms(r.latency.p50_us),
                    format_ms(r.latency.p99_us),
                    r.ratio_to_baseline
                        .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}")),
                    r.peak_rss_mib()
                        .map_or_else(|| "-".to_owned(), |x| format!("{x:.1}")),
                ]
            })
            .collect();

        let mut widths = header.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }

        let mut out = String::new();
        push_row(&mut out, &header.map(str::to_owned), &widths);
        let rule = widths.map(|w| "-".repeat(w));
        push_row(&mut out, &rule, &widths);
        for row in &rows {
            push_row(&mut out, row, &widths);
        }
        out
    }

    /// Writes the report as pretty-printed JSON.
    pub fn write_json(&self, path: &Path) -> Result<(), BenchError> {
        let file = BufWriter::new(File::create(path)?);
        serde_json::to_writer_pretty(file, self)?;
        Ok(())
    }
}

fn format_ms(micros: u64) -> String {
    format!("{:.3}", micros as f64 / 1000.0)
}

fn push_row(out: &mut String, cells: &[String; 8], widths: &[usize; 8]) {
    out.push('|');
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        // The scenario name reads best left-aligned, numbers right-aligned.
        if i == 0 {
            out.push_str(&format!(" {cell:<width$} |"));
        } else {
            out.push_str(&format!(" {cell:>width$} |"));
        }
    }
    out.push('\n');
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "throughline-bench: {} cores, warm-up {}s, measured {}s, closed loop",
            self.cores, self.warmup_secs, self.duration_secs
        )?;
        writeln!(f)?;
        write!(f, "{}", self.table())?;
        writeln!(f)?;
        for r in &self.results {
            writeln!(
                f,
                "{}: {} ({} requests in {:.2}s, p90 {} ms, max {} ms)",
                r.name,
                r.description,
                r.requests,
                r.elapsed_secs,
                format_ms(r.latency.p90_us),
                format_ms(r.latency.max_us)
            )?;
            if r.errors > 0 {
                let codes: Vec<String> = r
                    .errors_by_code
                    .iter()
                    .map(|(code, n)| format!("{code}={n}"))
                    .collect();
                writeln!(f, "  errors: {} ({})", r.errors, codes.join(", "))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;
    use crate::load::new_histogram;

    fn outcome(ok_latencies_us: impl IntoIterator<Item = u64>, secs: u64) -> LoadOutcome {
        let mut histogram = new_histogram().unwrap();
        let mut ok = 0;
        for v in ok_latencies_us {
            histogram.record(v).unwrap();
            ok += 1;
        }
        LoadOutcome {
            histogram,
            ok,
            errors: BTreeMap::new(),
            elapsed: Duration::from_secs(secs),
        }
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let o = outcome(1..=1000, 1);
        let p = Percentiles::of(&o.histogram);
        assert_eq!(
            p,
            Percentiles {
                p50_us: 500,
                p90_us: 900,
                p99_us: 990,
                max_us: 1000
            }
        );
    }

    #[test]
    fn percentiles_keep_three_significant_figures_at_large_values() {
        // 999 fast calls and one 1.234 s outlier: p99 stays fast, max shows the outlier.
        let o = outcome(std::iter::repeat_n(200, 999).chain([1_234_000]), 1);
        let p = Percentiles::of(&o.histogram);
        assert_eq!(p.p50_us, 200);
        assert_eq!(p.p99_us, 200);
        assert!(
            p.max_us.abs_diff(1_234_000) <= 1_234,
            "max {} should be within 0.1% of 1.234 s",
            p.max_us
        );
    }

    #[test]
    fn ratio_handles_missing_baselines() {
        assert_eq!(ratio(50.0, 100.0), Some(0.5));
        assert_eq!(ratio(100.0, 0.0), None);
        assert_eq!(ratio(100.0, f64::NAN), None);
    }

    #[test]
    fn rows_count_errors_but_throughput_counts_successes() {
        let mut o = outcome(std::iter::repeat_n(100, 300), 3);
        o.errors.insert("Unavailable".into(), 30);
        let r = ScenarioResult::new("x", "", &LoadConfig::default(), &o, None);
        assert_eq!(r.requests, 330);
        assert_eq!(r.errors, 30);
        assert!((r.requests_per_sec - 100.0).abs() < 1e-9);
    }

    #[test]
    fn report_divides_by_the_echo_baseline() {
        let config = LoadConfig::default();
        let echo = ScenarioResult::new(
            BASELINE_SCENARIO,
            "",
            &config,
            &outcome(std::iter::repeat_n(100, 4000), 2),
            Some(64 * 1024 * 1024),
        );
        let slower = ScenarioResult::new(
            "profile",
            "",
            &config,
            &outcome(std::iter::repeat_n(400, 1000), 2),
            None,
        );
        let report = Report::new(2, &config, vec![slower, echo]);
        assert_eq!(report.results[0].ratio_to_baseline, Some(0.25));
        assert_eq!(report.results[1].ratio_to_baseline, Some(1.0));

        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("| scenario"));
        assert!(lines[2].contains(" 0.25 |"), "{}", lines[2]);
        assert!(lines[2].ends_with(" - |"), "{}", lines[2]);
        assert!(lines[3].contains(" 1.00 |"), "{}", lines[3]);
        assert!(lines[3].ends_with(" 64.0 |"), "{}", lines[3]);

        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["results"][0]["ratio_to_baseline"], 0.25);
        assert_eq!(json["results"][1]["p50_us"], 100);
    }

    #[test]
    fn no_ratio_without_the_baseline() {
        let config = LoadConfig::default();
        let r = ScenarioResult::new("profile", "", &config, &outcome([100], 1), None);
        let report = Report::new(2, &config, vec![r]);
        assert_eq!(report.results[0].ratio_to_baseline, None);
    }
}
