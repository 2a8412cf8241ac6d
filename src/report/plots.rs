//! PNG plots for the report: per-dimension R² bars of the best experiments
//! (and of E3's audio and symbolic pair) and predicted-vs-true scatter
//! panels of one experiment.

use std::io::Write;
use std::sync::Once;

use anyhow::{Result, anyhow, ensure};
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::Ran;
use crate::dims::{DIMENSIONS, N_DIMS};

/// Compiled in so plots have labels on any machine (data/fonts/README.md).
const FONT: &[u8] = include_bytes!("../../data/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Names of the plots, each written to `data/out/plots/<name>.png`.
pub const PLOTS: [&str; 2] = ["r2_by_dimension", "scatter"];

/// E3's plot, drawn when an E3 pair is configured: the audio and symbolic
/// experiments' R² per dimension side by side ([`r2_by_dimension`]).
pub const E3_PLOT: &str = "audio_vs_symbolic";

fn register_font() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| anyhow!("the embedded DejaVuSans.ttf is not a readable font"));
    });
    result
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot: {e:?}")
}

/// An RGB canvas that becomes PNG bytes.
struct Canvas {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(width: u32, height: u32) -> Result<Canvas> {
        register_font()?;
        Ok(Canvas {
            width,
            height,
            rgb: vec![255; (width * height * 3) as usize],
        })
    }

    fn png(&self, out: impl Write) -> Result<()> {
        let mut enc = png::Encoder::new(out, self.width, self.height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Best);
        let mut w = enc.write_header()?;
        w.write_image_data(&self.rgb)?;
        w.finish()?;
        Ok(())
    }
}

/// Horizontal grouped bars: R² of each dimension for each of `runs`, with the
/// legend in its own strip under the chart (it never covers a bar).
pub fn r2_by_dimension(runs: &[&Ran], out: impl Write) -> Result<()> {
    ensure!(!runs.is_empty(), "no experiment to plot");
    const LEGEND_ROW: u32 = 24;
    let legend_h = 16 + LEGEND_ROW * runs.len() as u32;
    let mut canvas = Canvas::new(1100, 120 + 34 * N_DIMS as u32 + legend_h)?;
    {
        let (w, h) = (canvas.width, canvas.height);
        let root = BitMapBackend::with_buffer(&mut canvas.rgb, (w, h)).into_drawing_area();
        let (plot, legend) = root.split_vertically(h - legend_h);
        let values = runs
            .iter()
            .flat_map(|r| r.eval.per_dim.iter().map(|d| d.r2));
        let (lo, hi) = values.fold((0f64, 0.1f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let pad = 0.05 * (hi - lo);
        let mut chart = ChartBuilder::on(&plot)
            .caption("Out-of-fold R² per dimension", (FAMILY, 24))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(190)
            .build_cartesian_2d((lo - pad)..(hi + pad), -0.5f64..(N_DIMS as f64 - 0.5))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(N_DIMS)
            .y_label_formatter(&|v| {
                let i = v.round();
                if (v - i).abs() < 1e-6 && (0.0..N_DIMS as f64).contains(&i) {
                    DIMENSIONS[N_DIMS - 1 - i as usize].to_string()
                } else {
                    String::new()
                }
            })
            .x_desc("R² (out-of-fold, mean over folds)")
            .label_style((FAMILY, 15))
            .draw()
            .map_err(draw_err)?;
        let band = 0.8 / runs.len() as f64;
        for (k, run) in runs.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            // Dimension 0 at the top: row y = N_DIMS - 1 - d.
            chart
                .draw_series(run.eval.per_dim.iter().enumerate().map(|(d, s)| {
                    let y0 = (N_DIMS - 1 - d) as f64 - 0.4 + k as f64 * band;
                    Rectangle::new([(0.0, y0), (s.r2, y0 + band)], color.filled())
                }))
                .map_err(draw_err)?;
            let y = 8 + LEGEND_ROW as i32 * k as i32;
            legend
                .draw(&Rectangle::new(
                    [(202, y + 4), (218, y + 18)],
                    color.filled(),
                ))
                .map_err(draw_err)?;
            legend
                .draw(&Text::new(
                    format!("{} (R² {:.3})", run.info.id, run.eval.r2),
                    (228, y + 2),
                    (FAMILY, 15),
                ))
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    canvas.png(out)
}

/// One panel per dimension: out-of-fold prediction against the label.
pub fn scatter(run: &Ran, out: impl Write) -> Result<()> {
    let mut canvas = Canvas::new(1500, 1250)?;
    {
        let (w, h) = (canvas.width, canvas.height);
        let root = BitMapBackend::with_buffer(&mut canvas.rgb, (w, h)).into_drawing_area();
        let title = format!(
            "{}: predicted vs true, out-of-fold (R² {:.3})",
            run.info.id, run.eval.r2
        );
        let body = root.titled(&title, (FAMILY, 24)).map_err(draw_err)?;
        let t = &run.train;
        let n = t.clip_ids.len();
        for (d, area) in body.split_evenly((4, 5)).iter().enumerate().take(N_DIMS) {
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("{} (R² {:.2})", DIMENSIONS[d], run.eval.per_dim[d].r2),
                    (FAMILY, 15),
                )
                .margin(6)
                .x_label_area_size(34)
                .y_label_area_size(46)
                .build_cartesian_2d(0f32..1f32, 0f32..1f32)
                .map_err(draw_err)?;
            chart
                .configure_mesh()
                .x_labels(3)
                .y_labels(3)
                .label_style((FAMILY, 11))
                .x_desc("true")
                .y_desc("predicted")
                .axis_desc_style((FAMILY, 12))
                .draw()
                .map_err(draw_err)?;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0f32, 0f32), (1.0, 1.0)],
                    BLACK.mix(0.5),
                )))
                .map_err(draw_err)?;
            chart
                .draw_series((0..n).map(|i| {
                    let (yt, yp) = (t.y_true[i * N_DIMS + d], t.y_pred[i * N_DIMS + d]);
                    Circle::new((yt, yp), 2, BLUE.mix(0.35).filled())
                }))
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    canvas.png(out)
}

/// One recording's scores over time, one panel per dimension: each segment's
/// score as a step over its span (overlapping windows drawn one after the
/// other), the overall score as a dashed line. `segments`: (start s, end s,
/// 19 scores), already on the scale named by `scale`.
pub fn score_curves(
    title: &str,
    scale: &str,
    segments: &[(f64, f64, Vec<f32>)],
    overall: &[f32],
    out: impl Write,
) -> Result<()> {
    ensure!(!segments.is_empty(), "no segments to plot");
    let end = segments.iter().map(|s| s.1).fold(0f64, f64::max).max(1e-3);
    let values = segments
        .iter()
        .flat_map(|s| s.2.iter().copied())
        .chain(overall.iter().copied());
    let (lo, hi) = values.fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = (0.1 * (hi - lo)).max(0.05);
    let (lo, hi) = (lo - pad, hi + pad);
    let mut canvas = Canvas::new(1500, 1250)?;
    {
        let (w, h) = (canvas.width, canvas.height);
        let root = BitMapBackend::with_buffer(&mut canvas.rgb, (w, h)).into_drawing_area();
        let body = root
            .titled(&format!("{title} ({scale})"), (FAMILY, 22))
            .map_err(draw_err)?;
        for (d, area) in body.split_evenly((4, 5)).iter().enumerate().take(N_DIMS) {
            let mut chart = ChartBuilder::on(area)
                .caption(DIMENSIONS[d], (FAMILY, 15))
                .margin(6)
                .x_label_area_size(30)
                .y_label_area_size(42)
                .build_cartesian_2d(0f64..end, lo..hi)
                .map_err(draw_err)?;
            chart
                .configure_mesh()
                .x_labels(4)
                .y_labels(4)
                .label_style((FAMILY, 11))
                .x_desc("seconds")
                .axis_desc_style((FAMILY, 12))
                .draw()
                .map_err(draw_err)?;
            // Dashed by hand: 40 dashes across (plotters' line series are not compiled in).
            chart
                .draw_series((0..40).map(|i| {
                    let (a, b) = (end * i as f64 / 40.0, end * (i as f64 + 0.6) / 40.0);
                    PathElement::new(vec![(a, overall[d]), (b, overall[d])], BLACK.mix(0.5))
                }))
                .map_err(draw_err)?;
            chart
                .draw_series(segments.iter().map(|(a, b, s)| {
                    PathElement::new(vec![(*a, s[d]), (*b, s[d])], BLUE.stroke_width(3))
                }))
                .map_err(draw_err)?;
            let mids: Vec<(f64, f32)> = segments
                .iter()
                .map(|(a, b, s)| ((a + b) / 2.0, s[d]))
                .collect();
            chart
                .draw_series(std::iter::once(PathElement::new(mids, BLUE.mix(0.4))))
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    canvas.png(out)
}
