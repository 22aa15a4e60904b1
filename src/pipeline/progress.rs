//! Progress: an indicatif bar when stderr is a terminal, plain lines every few
//! seconds when it is not (cron, Airflow logs), nothing with `--quiet`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Default time between progress lines in logs.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct Progress {
    bar: Option<ProgressBar>,
    log: bool,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_log: Instant,
    log_every: Duration,
}

impl Progress {
    pub fn new(total_rows: Option<u64>, quiet: bool, log_every: Duration) -> Progress {
        // JSON logs are for machines: no bar even on a terminal.
        let terminal = std::io::stderr().is_terminal() && !crate::sys::log::is_json();
        let bar = (!quiet && terminal).then(|| {
            let bar = match total_rows {
                Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
                None => ProgressBar::new_spinner(),
            };
            let template = if total_rows.is_some() {
                "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} rows, {per_sec:0}, eta {eta}"
            } else {
                "{elapsed_precise} {spinner} {human_pos} rows, {per_sec:0}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            log: !quiet && !terminal,
            total: total_rows,
            done: 0,
            started: now,
            last_log: now,
            log_every,
        }
    }

    pub fn advance(&mut self, rows: u64) {
        self.done += rows;
        if let Some(bar) = &self.bar {
            bar.inc(rows);
        } else if self.log && self.last_log.elapsed() >= self.log_every {
            self.last_log = Instant::now();
            let secs = self.started.elapsed().as_secs_f64();
            let rate = self.done as f64 / secs.max(1e-9);
            let eta_s = self
                .total
                .filter(|_| rate > 0.0)
                .map(|t| t.saturating_sub(self.done) as f64 / rate);
            let eta = eta_s.map(|e| format!(", eta {e:.0} s")).unwrap_or_default();
            let of = self.total.map(|t| format!(" of {t}")).unwrap_or_default();
            crate::sys::log::event(
                "info",
                "progress",
                serde_json::json!({
                    "rows": self.done,
                    "total_rows": self.total,
                    "rows_per_s": rate.round(),
                    "eta_s": eta_s.map(f64::round),
                    "elapsed_s": secs,
                }),
                &format!(
                    "batchinfer: progress {}{of} rows, {rate:.0} rows/s{eta}\n",
                    self.done
                ),
            );
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
