//! Plots: drawn as SVG with plotters (text stays text), written as an `.svg` file or, for
//! a `.png` path, rasterised with resvg and the embedded DejaVu Sans font (no font library
//! needed on the machine). Every plot of dynofa goes through [`write()`]; the trace's plot
//! is drawn here ([`trace`]).
//!
//! Behind the `plot` feature (the CLI turns it on; an embedding application need not build
//! plotters and resvg).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use plotters::coord::types::RangedCoordf64;
use resvg::{tiny_skia, usvg};

use crate::contention::LoadSpec;
use crate::error::{Error, Result};
use crate::trace::TraceRow;

/// The font of PNG plots (SVG's `sans-serif`): DejaVu Sans, see `assets/README.md`.
const FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// Pixels per SVG unit of a PNG plot: sharp when pasted into a report or a chat.
pub const PNG_SCALE: f32 = 2.0;

/// What a plot path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An `.svg` file.
    Svg,
    /// A `.png` file ([`PNG_SCALE`] pixels per SVG unit).
    Png,
}

/// The format `path` names by its extension (`.svg` or `.png`; an error names the path
/// otherwise).
pub fn check_path(path: &Path) -> Result<Format> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => Err(Error::invalid("plot file", path.display(), "a .svg or .png path")),
    }
}

/// Writes the plot `svg` to `path` as its extension says ([`check_path`]), atomically
/// (a temporary file in the same folder, renamed into place).
pub fn write(path: &Path, svg: &str) -> Result<()> {
    let bytes = match check_path(path)? {
        Format::Svg => svg.as_bytes().to_vec(),
        Format::Png => rasterise(svg).map_err(|detail| Error::Plot { path: path.to_path_buf(), detail })?,
    };
    dynofa_supernet::files::write_atomically(path, |f| std::io::Write::write_all(f, &bytes))?;
    Ok(())
}

/// The PNG of `svg` at [`PNG_SCALE`] pixels per unit, text in the embedded font.
pub fn rasterise(svg: &str) -> std::result::Result<Vec<u8>, String> {
    static FONTS: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    let fonts = FONTS.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(FONT.to_vec());
        db.set_sans_serif_family("DejaVu Sans");
        Arc::new(db)
    });
    let options = usvg::Options { font_family: "DejaVu Sans".into(), fontdb: fonts.clone(), ..usvg::Options::default() };
    let tree = usvg::Tree::from_str(svg, &options).map_err(|e| format!("reading the drawn SVG: {e}"))?;
    let size = tree.size();
    let (width, height) = ((size.width() * PNG_SCALE).ceil() as u32, (size.height() * PNG_SCALE).ceil() as u32);
    let mut pixmap = tiny_skia::Pixmap::new(width.max(1), height.max(1)).ok_or_else(|| format!("no {width}×{height} image"))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::from_scale(PNG_SCALE, PNG_SCALE), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| format!("encoding the PNG: {e}"))
}

/// Level colours, smallest to largest: on the CPU cool to warm, on a GPU green to purple.
const CPU_PALETTE: [(u8, u8, u8); 8] =
    [(49, 54, 149), (69, 117, 180), (116, 173, 209), (102, 189, 99), (254, 224, 144), (253, 174, 97), (244, 109, 67), (165, 0, 38)];
const GPU_PALETTE: [(u8, u8, u8); 8] =
    [(0, 68, 27), (27, 120, 55), (90, 174, 97), (166, 219, 160), (194, 165, 207), (153, 112, 171), (118, 42, 131), (64, 0, 75)];

/// Draws a trace to `path` (SVG or PNG: see [`write()`]): latency per frame coloured by
/// processor and level against the target (top), level and threads (bottom, the level's
/// line coloured by processor), load windows shaded.
pub fn trace(path: &Path, rows: &[TraceRow], load: &LoadSpec, title: &str) -> Result<()> {
    use plotters::prelude::*;
    let fail = |e: &dyn std::fmt::Display| Error::Plot { path: path.to_path_buf(), detail: e.to_string() };
    check_path(path)?;
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
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 640)).into_drawing_area();
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
        // The load windows, shaded behind a chart's lines.
        let shade = |c: &mut Chart, top: f64| -> Result<()> {
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
            .label(format!("target {} ms", (target * 100.0).round() / 100.0))
            .legend(|(x, y)| PathElement::new([(x - 8, y), (x + 8, y)], RED.stroke_width(2)));
        legend(&mut chart).map_err(|e| fail(&e))?;

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
        legend(&mut bottom).map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    write(path, &svg)
}

/// One of the trace's two charts: time × value, drawn as SVG.
type Chart<'a, 'b> = plotters::chart::ChartContext<'a, plotters::prelude::SVGBackend<'b>, plotters::prelude::Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A trace chart's legend, in the same place on both charts.
fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> std::result::Result<(), String> {
    use plotters::prelude::*;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::tests::row;

    #[test]
    fn a_trace_plots_as_svg_or_png_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<TraceRow> = (0..50).map(|i| row(i as f64 * 0.02, i % 3, 5.0 + (i % 7) as f64, i % 3)).collect();
        let load: LoadSpec = "0.2s-0.6s:2".parse().unwrap();
        trace(&dir.path().join("trace.svg"), &rows, &load, "test").unwrap();
        let svg = std::fs::read_to_string(dir.path().join("trace.svg")).unwrap();
        assert!(svg.contains("target 10 ms") && svg.contains("level 2"));
        // The PNG: the SVG's size at PNG_SCALE, white where nothing is drawn, not blank.
        trace(&dir.path().join("trace.png"), &rows, &load, "test").unwrap();
        let png = image::open(dir.path().join("trace.png")).unwrap().to_rgba8();
        assert_eq!(png.dimensions(), (2000, 1280));
        assert_eq!(png.get_pixel(1, 1).0, [255, 255, 255, 255]);
        let dark = png.pixels().filter(|p| p.0[0] < 100 && p.0[1] < 100 && p.0[2] < 100).count();
        assert!(dark > 2000, "{dark} dark pixels: axes, text and points should be drawn");
        let err = trace(&dir.path().join("trace.pdf"), &rows, &load, "t").unwrap_err();
        assert!(matches!(&err, Error::InvalidValue { field, value, .. } if field == "plot file" && value.ends_with("trace.pdf")), "{err}");
        // A plot that cannot be put in place (a folder is there) leaves no temporary file.
        let taken = dir.path().join("taken.svg");
        std::fs::create_dir(&taken).unwrap();
        std::fs::write(taken.join("file"), "").unwrap();
        assert!(trace(&taken, &rows, &load, "t").is_err());
        assert_eq!(dynofa_golden::entries(dir.path()), ["taken.svg", "trace.png", "trace.svg"], "temporary file left");
    }

    #[test]
    fn text_is_drawn_with_the_embedded_font() {
        // The same picture with and without a word: the word's pixels differ.
        let picture = |text: &str| {
            format!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><text x="10" y="30" font-family="sans-serif" font-size="20">{text}</text></svg>"#
            )
        };
        let (with, without) = (rasterise(&picture("latency")).unwrap(), rasterise(&picture("")).unwrap());
        let decode = |png: &[u8]| image::load_from_memory(png).unwrap().to_rgba8();
        let (with, without) = (decode(&with), decode(&without));
        let changed = with.pixels().zip(without.pixels()).filter(|(a, b)| a != b).count();
        assert!(changed > 200, "{changed} pixels changed by the text");
    }
}
