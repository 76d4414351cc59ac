//! Run-time traces: one row per frame as CSV, and the summary an experiment reports (the
//! plot of a trace is `plot::trace`, behind the `plot` feature).

use std::path::Path;

use serde::{Deserialize, Serialize, Serializer};

use crate::contention::LoadSpec;
use crate::error::{Error, Result};
use crate::runtime::Inference;

/// One frame of a trace, and a row of its CSV: the columns are these fields, in this
/// order, named as here (the first seven are the ones every trace reader relies on).
/// `level` is a level of the family of the processor in `device`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceRow {
    /// Seconds since the start.
    #[serde(serialize_with = "decimals::<6, _>")]
    pub t_s: f64,
    /// Level that ran (0 = the smallest).
    pub level: usize,
    /// Its predicted accuracy.
    #[serde(serialize_with = "decimals::<5, _>")]
    pub acc_pred: f64,
    /// Measured latency, ms.
    #[serde(serialize_with = "decimals::<4, _>")]
    pub latency_ms: f64,
    /// Predicted idle latency, ms (NaN when unknown).
    #[serde(serialize_with = "decimals::<4, _>")]
    pub latency_pred_ms: f64,
    /// The policy's decision after the frame (`hold`, `down`, `up`, …).
    pub decision: String,
    /// CPU used by other processes, in cores.
    #[serde(serialize_with = "decimals::<3, _>")]
    pub others_cpu: f64,
    /// Frame number.
    pub frame: u64,
    /// Threads that ran it.
    pub threads: usize,
    /// Latency target, ms.
    pub target_ms: f64,
    /// Level chosen for the next frame.
    pub next_level: usize,
    /// Threads chosen for the next frame.
    pub next_threads: usize,
    /// Time the switch took (0 without one), µs.
    #[serde(serialize_with = "decimals::<2, _>")]
    pub switch_us: f64,
    /// CPU used by this process, in cores.
    #[serde(serialize_with = "decimals::<3, _>")]
    pub own_cpu: f64,
    /// CPU frequency, MHz (NaN when unknown).
    #[serde(serialize_with = "decimals::<0, _>")]
    pub cpu_mhz: f64,
    /// The processor that ran the frame (`cpu`, `gpu:0`).
    pub device: String,
    /// The processor of the next frame.
    pub next_device: String,
}

impl From<&Inference> for TraceRow {
    fn from(i: &Inference) -> Self {
        TraceRow {
            t_s: i.t_s,
            level: i.level,
            acc_pred: i.acc_pred,
            latency_ms: i.latency_ms,
            latency_pred_ms: i.latency_pred_ms.unwrap_or(f64::NAN),
            decision: i.decision.reason.to_string(),
            others_cpu: i.system.others_cpu,
            frame: i.frame,
            threads: i.threads,
            target_ms: i.target_ms,
            next_level: i.decision.config.level,
            next_threads: i.decision.config.threads,
            switch_us: i.switch_us,
            own_cpu: i.system.own_cpu,
            cpu_mhz: i.system.cpu_mhz.unwrap_or(f64::NAN),
            device: i.device.clone(),
            next_device: i.next_device.clone(),
        }
    }
}

impl TraceRow {
    /// Whether the frame ran over its target.
    pub fn over_target(&self) -> bool {
        self.latency_ms > self.target_ms
    }

    /// Whether the next frame runs another processor, level or thread count.
    pub fn switches(&self) -> bool {
        (&self.next_device, self.next_level, self.next_threads) != (&self.device, self.level, self.threads)
    }
}

/// Writes `value` rounded to `N` decimals (a trace stays readable and small; NaN stays NaN).
fn decimals<const N: i32, S: Serializer>(value: &f64, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    let scale = 10f64.powi(N);
    serializer.serialize_f64((value * scale).round() / scale)
}

/// The CSV header: [`TraceRow`]'s field names, in order.
pub fn header() -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.serialize(TraceRow::default()).expect("a row serialises");
    let bytes = writer.into_inner().expect("written to memory");
    String::from_utf8_lossy(&bytes).lines().next().unwrap_or_default().to_string()
}

/// Writes `rows` as CSV, the header first even when there is no row (to a temporary
/// file, then renamed into place).
pub fn write_csv(path: &Path, rows: &[TraceRow]) -> Result<()> {
    dynofa_supernet::files::write_atomically(path, |f| {
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(f);
        writer.write_record(header().split(',')).map_err(std::io::Error::other)?;
        for row in rows {
            writer.serialize(row).map_err(std::io::Error::other)?;
        }
        writer.flush()
    })?;
    Ok(())
}

/// Reads a trace written by [`write_csv`] (the error names the file and line).
pub fn read_csv(path: &Path) -> Result<Vec<TraceRow>> {
    let text = dynofa_supernet::files::read_text(path)?;
    let expected = header();
    let first = text.lines().next().unwrap_or("");
    if first != expected {
        return Err(Error::invalid(format!("{} header", path.display()), first, &expected));
    }
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    reader
        .deserialize()
        .map(|row| {
            row.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                Error::invalid(format!("{} line {line}", path.display()), e.to_string(), "a trace row")
            })
        })
        .collect()
}

/// What an experiment reports about one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Frames run.
    pub frames: usize,
    /// Share of frames over the target (%).
    pub over_pct: f64,
    /// Share of frames over the target, leaving out `reaction_frames` after each load onset (%).
    pub over_after_reaction_pct: f64,
    /// Frames allowed to react to an onset.
    pub reaction_frames: usize,
    /// The worst onset: frames from it until the latency is back under the target for
    /// `reaction_frames` frames in a row (`None` if never while the load lasted).
    pub reaction_frames_worst: Option<usize>,
    /// The same in ms.
    pub reaction_ms_worst: Option<f64>,
    /// The slowest recovery: seconds from a load's end until the level it left (or a more
    /// accurate one) runs again for `reaction_frames` frames in a row (`None` if never).
    pub climb_s_worst: Option<f64>,
    /// Mean predicted accuracy over the frames.
    pub mean_acc: f64,
    /// Mean latency, ms.
    pub mean_latency_ms: f64,
    /// Configuration switches.
    pub switches: usize,
    /// Mean switch overhead, µs.
    pub mean_switch_us: f64,
    /// Frames the source could not deliver and the run skipped (e.g. an unreadable image
    /// of an input folder, each time the cycle came to it); not in `frames`. [`Summary::of`]
    /// sets 0: the caller, who reads the frames, knows.
    pub skipped_frames: usize,
    /// Whether the run was interrupted (Ctrl-C, SIGTERM) before its duration: the summary
    /// is then of the frames run until then. [`Summary::of`] sets `false`.
    pub interrupted: bool,
}

impl Summary {
    /// The summary of `rows` under `load` (`reaction_frames` frames allowed after each onset).
    pub fn of(rows: &[TraceRow], load: &LoadSpec, reaction_frames: usize) -> Self {
        let first_at = |t: f64| rows.iter().position(|r| r.t_s >= t);
        let run = reaction_frames.max(1);
        let mut excused = vec![false; rows.len()];
        let (mut reaction_worst, mut reaction_ms_worst, mut climb_worst) = (Some(0usize), Some(0.0f64), Some(0.0f64));
        for window in &load.windows {
            let Some(onset) = first_at(window.start_s) else { continue };
            let end = first_at(window.end_s).unwrap_or(rows.len());
            for e in excused.iter_mut().skip(onset).take(reaction_frames) {
                *e = true;
            }
            match first_run(&rows[onset..end], run, |r| !r.over_target()) {
                Some(k) => {
                    reaction_worst = reaction_worst.map(|w| w.max(k));
                    let ms = (rows[onset + k].t_s - window.start_s) * 1e3;
                    reaction_ms_worst = reaction_ms_worst.map(|w| w.max(ms));
                }
                None => (reaction_worst, reaction_ms_worst) = (None, None),
            }
            // Back to the accuracy that ran just before the onset (its level on its
            // processor, or a more accurate one).
            let before = rows[..onset].last();
            let back = |r: &TraceRow| before.is_none_or(|b| r.acc_pred > b.acc_pred || (r.device == b.device && r.level >= b.level));
            if end < rows.len() {
                let after = &rows[end..];
                match first_run(after, run, back) {
                    Some(k) => climb_worst = climb_worst.map(|w| w.max(after[k].t_s - window.end_s)),
                    None => climb_worst = None,
                }
            }
        }
        let counted: Vec<&TraceRow> = rows.iter().zip(&excused).filter(|(_, e)| !**e).map(|(r, _)| r).collect();
        let switch_rows: Vec<&TraceRow> = rows.iter().filter(|r| r.switches()).collect();
        let pct = |n: usize, of: usize| if of == 0 { 0.0 } else { 100.0 * n as f64 / of as f64 };
        let mean = |f: &dyn Fn(&TraceRow) -> f64, of: &[&TraceRow]| if of.is_empty() { 0.0 } else { of.iter().map(|r| f(r)).sum::<f64>() / of.len() as f64 };
        let all: Vec<&TraceRow> = rows.iter().collect();
        Summary {
            frames: rows.len(),
            over_pct: pct(rows.iter().filter(|r| r.over_target()).count(), rows.len()),
            over_after_reaction_pct: pct(counted.iter().filter(|r| r.over_target()).count(), counted.len()),
            reaction_frames,
            reaction_frames_worst: reaction_worst,
            reaction_ms_worst,
            climb_s_worst: climb_worst,
            mean_acc: mean(&|r| r.acc_pred, &all),
            mean_latency_ms: mean(&|r| r.latency_ms, &all),
            switches: switch_rows.len(),
            mean_switch_us: mean(&|r| r.switch_us, &switch_rows),
            skipped_frames: 0,
            interrupted: false,
        }
    }
}

/// The first index from which `run` rows in a row (or all that are left) satisfy `holds`.
fn first_run(rows: &[TraceRow], run: usize, holds: impl Fn(&TraceRow) -> bool) -> Option<usize> {
    (0..rows.len()).find(|&k| rows[k..].iter().take(run).all(&holds))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A frame on 2 CPU threads against a 10 ms target (for this module's and the plot's tests).
    pub(crate) fn row(t_s: f64, level: usize, latency_ms: f64, next_level: usize) -> TraceRow {
        TraceRow {
            t_s,
            level,
            acc_pred: 0.7 + level as f64 * 0.01,
            latency_ms,
            latency_pred_ms: 5.0,
            decision: "hold".into(),
            others_cpu: 0.0,
            frame: 0,
            threads: 2,
            target_ms: 10.0,
            next_level,
            next_threads: 2,
            switch_us: if next_level != level { 3.0 } else { 0.0 },
            own_cpu: 1.0,
            cpu_mhz: f64::NAN,
            device: "cpu".into(),
            next_device: "cpu".into(),
        }
    }

    #[test]
    fn csv_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.csv");
        let rows = vec![row(0.01, 2, 8.0, 2), row(0.02, 2, 12.0, 1)];
        write_csv(&path, &rows).unwrap();
        let back = read_csv(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!((back[1].level, back[1].next_level, back[1].latency_ms), (2, 1, 12.0));
        assert!(back[0].cpu_mhz.is_nan());
        std::fs::write(&path, format!("{}\n1,2,3\n", header())).unwrap();
        let err = read_csv(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn summary_measures_reaction_and_climb() {
        // Idle at level 2 until 1 s; load 1–2 s: three frames over, then level 1 under; back to 2 at 2.3 s.
        let mut rows = Vec::new();
        for i in 0..10 {
            rows.push(row(0.1 * i as f64, 2, 8.0, 2));
        }
        // The onset frame itself may still be fast: reaction counts from it to a run of 5 under.
        rows.push(row(1.0, 2, 9.0, 2));
        rows.push(row(1.02, 2, 15.0, 2));
        rows.push(row(1.05, 2, 15.0, 1));
        rows.push(row(1.1, 1, 11.0, 1));
        for i in 0..9 {
            rows.push(row(1.2 + 0.1 * i as f64, 1, 7.0, 1));
        }
        rows.push(row(2.1, 1, 5.0, 2));
        rows.push(row(2.3, 2, 8.0, 2));
        let load: LoadSpec = "1s-2s:2".parse().unwrap();
        let s = Summary::of(&rows, &load, 5);
        assert_eq!(s.frames, 25);
        assert_eq!(s.reaction_frames_worst, Some(4));
        assert!((s.reaction_ms_worst.unwrap() - 200.0).abs() < 1e-6);
        assert!((s.climb_s_worst.unwrap() - 0.3).abs() < 1e-9);
        assert!((s.over_pct - 100.0 * 3.0 / 25.0).abs() < 1e-9);
        assert_eq!(s.over_after_reaction_pct, 0.0);
        assert_eq!(s.switches, 2);
        assert_eq!(s.mean_switch_us, 3.0);
        assert_eq!((s.skipped_frames, s.interrupted), (0, false), "the caller's to set");
    }
}
