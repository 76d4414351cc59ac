//! Run-time traces: one row per frame as CSV, the summary an experiment reports, and the
//! plot (latency against the target over time, coloured by processor and level, load
//! windows shaded).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::load::LoadSpec;
use crate::runtime::Inference;

/// The CSV header; the first seven columns are the ones every trace reader relies on.
/// `level` is a level of the family of the processor in `device`.
pub const HEADER: &str = "t_s,level,acc_pred,latency_ms,latency_pred_ms,decision,others_cpu,frame,threads,target_ms,next_level,next_threads,switch_us,own_cpu,cpu_mhz,device,next_device";

/// One frame of a trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceRow {
    /// Seconds since the start.
    pub t_s: f64,
    /// Level that ran (0 = the smallest).
    pub level: usize,
    /// Its predicted accuracy.
    pub acc_pred: f64,
    /// Measured latency, ms.
    pub latency_ms: f64,
    /// Predicted idle latency, ms (NaN when unknown).
    pub latency_pred_ms: f64,
    /// The policy's decision after the frame (`hold`, `down`, `up`, …).
    pub decision: String,
    /// CPU used by other processes, in cores.
    pub others_cpu: f64,
    /// Frame number.
    pub frame: u64,
    /// Threads that ran it.
    pub threads: usize,
    /// Latency target, ms.
    pub target_ms: f64,
    /// Configuration chosen for the next frame.
    pub next_level: usize,
    pub next_threads: usize,
    /// Time the switch took (0 without one), µs.
    pub switch_us: f64,
    /// CPU used by this process, in cores.
    pub own_cpu: f64,
    /// CPU frequency, MHz (NaN when unknown).
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

    fn csv_line(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "{:.6},{},{:.5},{:.4},{:.4},{},{:.3},{},{},{},{},{},{:.2},{:.3},{:.0},{},{}",
            self.t_s, self.level, self.acc_pred, self.latency_ms, self.latency_pred_ms, self.decision, self.others_cpu, self.frame,
            self.threads, self.target_ms, self.next_level, self.next_threads, self.switch_us, self.own_cpu, self.cpu_mhz, self.device, self.next_device
        );
    }

    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != HEADER.split(',').count() {
            return None;
        }
        let num = |i: usize| f[i].parse::<f64>().ok();
        let int = |i: usize| f[i].parse::<u64>().ok();
        Some(TraceRow {
            t_s: num(0)?,
            level: int(1)? as usize,
            acc_pred: num(2)?,
            latency_ms: num(3)?,
            latency_pred_ms: num(4)?,
            decision: f[5].to_string(),
            others_cpu: num(6)?,
            frame: int(7)?,
            threads: int(8)? as usize,
            target_ms: num(9)?,
            next_level: int(10)? as usize,
            next_threads: int(11)? as usize,
            switch_us: num(12)?,
            own_cpu: num(13)?,
            cpu_mhz: num(14)?,
            device: f[15].to_string(),
            next_device: f[16].to_string(),
        })
    }
}

/// Writes `rows` as CSV (to a temporary file, then renamed into place).
pub fn write_csv(path: &Path, rows: &[TraceRow]) -> Result<()> {
    let mut text = String::with_capacity(rows.len() * 96 + HEADER.len() + 1);
    text.push_str(HEADER);
    text.push('\n');
    for row in rows {
        row.csv_line(&mut text);
    }
    dynofa_supernet::tensor_io::write_atomically(path, |f| f.write_all(text.as_bytes()))?;
    Ok(())
}

/// Reads a trace written by [`write_csv`] (the error names the file and line).
pub fn read_csv(path: &Path) -> Result<Vec<TraceRow>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(Error::invalid(format!("{} header", path.display()), text.lines().next().unwrap_or(""), HEADER));
    }
    lines
        .enumerate()
        .map(|(i, line)| TraceRow::parse(line).ok_or_else(|| Error::invalid(format!("{} line {}", path.display(), i + 2), line, "a trace row")))
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

/// Checks that `path` names a plot this module can draw (an `.svg` file).
pub fn check_plot_path(path: &Path) -> Result<()> {
    if path.extension().and_then(|e| e.to_str()) != Some("svg") {
        return Err(Error::invalid("plot file", path.display(), "a .svg path (plots are SVG: text stays text, no font library needed)"));
    }
    Ok(())
}

/// Level colours, smallest to largest: on the CPU cool to warm, on a GPU green to purple.
const CPU_PALETTE: [(u8, u8, u8); 8] =
    [(49, 54, 149), (69, 117, 180), (116, 173, 209), (102, 189, 99), (254, 224, 144), (253, 174, 97), (244, 109, 67), (165, 0, 38)];
const GPU_PALETTE: [(u8, u8, u8); 8] =
    [(0, 68, 27), (27, 120, 55), (90, 174, 97), (166, 219, 160), (194, 165, 207), (153, 112, 171), (118, 42, 131), (64, 0, 75)];

/// Draws the trace as an SVG: latency per frame coloured by processor and level against
/// the target (top), level and threads (bottom, the level's line coloured by processor),
/// load windows shaded.
pub fn plot(path: &Path, rows: &[TraceRow], load: &LoadSpec, title: &str) -> Result<()> {
    use plotters::prelude::*;
    let fail = |e: &dyn std::fmt::Display| Error::Plot { path: path.to_path_buf(), detail: e.to_string() };
    check_plot_path(path)?;
    let t_end = rows.last().map_or(1.0, |r| r.t_s).max(load.windows.iter().map(|w| w.end_s).fold(0.0, f64::max)).max(1e-3);
    let target = rows.iter().map(|r| r.target_ms).fold(0.0, f64::max);
    let y_top = rows.iter().map(|r| r.latency_ms).fold(target, f64::max) * 1.1;
    let mut devices: Vec<&str> = Vec::new();
    for r in rows {
        if !devices.contains(&r.device.as_str()) {
            devices.push(&r.device);
        }
    }
    let levels = rows.iter().map(|r| r.level).max().unwrap_or(0) + 1;
    let colour = |device: &str, level: usize| {
        let palette = if device.starts_with("gpu") { &GPU_PALETTE } else { &CPU_PALETTE };
        let (r, g, b) = palette[(level * (palette.len() - 1)) / levels.saturating_sub(1).max(1)];
        RGBColor(r, g, b)
    };
    // Each processor's line in the lower chart: the colour of its middle level.
    let device_colour = |device: &str| colour(device, levels / 2);
    // Drawn into a temporary file, renamed into place; removed if anything fails.
    let tmp = path.with_extension("svg.tmp");
    let drawn = (|| -> Result<()> {
        let root = SVGBackend::new(&tmp, (1000, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let (upper, lower) = root.split_vertically(440);
        let mut chart = ChartBuilder::on(&upper)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..t_end, 0.0..y_top)
            .map_err(|e| fail(&e))?;
        chart.configure_mesh().y_desc("latency (ms)").draw().map_err(|e| fail(&e))?;
        let shade = |c: &mut ChartContext<_, _>, top: f64| -> Result<()> {
            let c: &mut ChartContext<SVGBackend, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>> = c;
            c.draw_series(load.windows.iter().map(|w| Rectangle::new([(w.start_s, 0.0), (w.end_s, top)], BLACK.mix(0.08).filled())))
                .map_err(|e| fail(&e))?
                .label("load")
                .legend(|(x, y)| Rectangle::new([(x - 8, y - 5), (x + 8, y + 5)], BLACK.mix(0.15).filled()));
            Ok(())
        };
        shade(&mut chart, y_top)?;
        for &device in &devices {
            for level in 0..levels {
                let points: Vec<(f64, f64)> = rows.iter().filter(|r| r.device == device && r.level == level).map(|r| (r.t_s, r.latency_ms)).collect();
                if points.is_empty() {
                    continue;
                }
                let c = colour(device, level);
                let label = if devices.len() > 1 { format!("{device} level {level}") } else { format!("level {level}") };
                chart
                    .draw_series(points.into_iter().map(|p| Circle::new(p, 2, c.filled())))
                    .map_err(|e| fail(&e))?
                    .label(label)
                    .legend(move |(x, y)| Circle::new((x, y), 4, c.filled()));
            }
        }
        chart
            .draw_series(LineSeries::new([(0.0, target), (t_end, target)], RED.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(format!("target {target} ms"))
            .legend(|(x, y)| PathElement::new([(x - 8, y), (x + 8, y)], RED.stroke_width(2)));
        chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).position(SeriesLabelPosition::UpperRight).draw().map_err(|e| fail(&e))?;

        let max_threads = rows.iter().map(|r| r.threads).max().unwrap_or(1);
        let mut bottom = ChartBuilder::on(&lower)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..t_end, -0.5..(levels.max(max_threads) as f64 - 0.5))
            .map_err(|e| fail(&e))?;
        bottom.configure_mesh().x_desc("time (s)").y_desc("level / threads").draw().map_err(|e| fail(&e))?;
        shade(&mut bottom, levels.max(max_threads) as f64 - 0.5)?;
        // `value` of rows `from..to` as a step line (each frame from the previous one's end).
        let steps = |from: usize, to: usize, value: &dyn Fn(&TraceRow) -> f64| -> Vec<(f64, f64)> {
            let mut points = Vec::with_capacity((to - from) * 2);
            for i in from..to {
                let start = if i == 0 { 0.0 } else { rows[i - 1].t_s };
                points.push((start, value(&rows[i])));
                points.push((rows[i].t_s, value(&rows[i])));
            }
            points
        };
        // The level, one line per stretch of frames on one processor.
        let mut start = 0;
        while start < rows.len() {
            let device = rows[start].device.as_str();
            let end = rows[start..].iter().position(|r| r.device != device).map_or(rows.len(), |n| start + n);
            let c = device_colour(device);
            let series = bottom.draw_series(LineSeries::new(steps(start, end, &|r| r.level as f64), c.stroke_width(2))).map_err(|e| fail(&e))?;
            if rows[..start].iter().all(|r| r.device != device) {
                series.label(format!("level ({device})")).legend(move |(x, y)| PathElement::new([(x - 8, y), (x + 8, y)], c.stroke_width(2)));
            }
            start = end;
        }
        bottom
            .draw_series(LineSeries::new(steps(0, rows.len(), &|r| r.threads as f64 - 1.0 + 0.1), BLACK.mix(0.5).stroke_width(1)))
            .map_err(|e| fail(&e))?
            .label("threads − 1")
            .legend(|(x, y)| PathElement::new([(x - 8, y), (x + 8, y)], BLACK.mix(0.5).stroke_width(1)));
        bottom.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).position(SeriesLabelPosition::UpperRight).draw().map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
        Ok(())
    })();
    let published = drawn.and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if published.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    published
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t_s: f64, level: usize, latency_ms: f64, next_level: usize) -> TraceRow {
        TraceRow {
            t_s, level, acc_pred: 0.7 + level as f64 * 0.01, latency_ms, latency_pred_ms: 5.0, decision: "hold".into(), others_cpu: 0.0,
            frame: 0, threads: 2, target_ms: 10.0, next_level, next_threads: 2, switch_us: if next_level != level { 3.0 } else { 0.0 }, own_cpu: 1.0, cpu_mhz: f64::NAN,
            device: "cpu".into(), next_device: "cpu".into(),
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
        std::fs::write(&path, format!("{HEADER}\n1,2,3\n")).unwrap();
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

    #[test]
    fn plots_svg_and_refuses_other_formats() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<TraceRow> = (0..50).map(|i| row(i as f64 * 0.02, i % 3, 5.0 + (i % 7) as f64, i % 3)).collect();
        let load: LoadSpec = "0.2s-0.6s:2".parse().unwrap();
        let path = dir.path().join("trace.svg");
        plot(&path, &rows, &load, "test").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("target 10 ms") && svg.contains("level 2"));
        assert!(plot(&dir.path().join("trace.png"), &rows, &load, "t").is_err());
        // A plot that cannot be put in place (a folder is there) leaves no temporary file.
        let taken = dir.path().join("taken.svg");
        std::fs::create_dir(&taken).unwrap();
        std::fs::write(taken.join("file"), "").unwrap();
        assert!(plot(&taken, &rows, &load, "t").is_err());
        assert!(!dir.path().join("taken.svg.tmp").exists(), "temporary file left");
    }
}
