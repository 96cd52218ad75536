//! The report's figures, drawn with plotters as SVG. Every figure is a chart above a footer that
//! names its machine, backends and command ([`chart`]): the step times and the accuracy curves
//! are lines ([`line`]), images per second and the split of a training step horizontal bars
//! ([`bar_chart`], [`bars`]).

use super::tables::fmt_ms;
use crate::schema::Record;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{SegmentValue, SegmentedCoord};
use plotters::coord::types::{RangedCoordf64, RangedCoordusize};
use plotters::prelude::*;
use std::error::Error;

/// What drawing a figure returns.
pub(super) type DrawResult = Result<(), Box<dyn Error>>;

/// A part of a figure.
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// A chart of horizontal bars: values along x, one row per label along y.
type BarChart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, SegmentedCoord<RangedCoordusize>>>;

/// One line of the step figure: label, whether it is PyTorch's (dashed), (params, ms) points.
pub(super) struct Line {
    label: String,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// The step figure's lines, one per backend × optimizer × implementation (× tensors), points in
/// order of parameters.
pub(super) fn step_lines(rows: &[&Record]) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    for r in rows {
        let (Some(params), Some(ms)) = (r.params, r.median_ms) else { continue };
        let tensors = match r.tensors {
            Some(t) if t > 1 => format!(" · {t} tensors"),
            _ => String::new(),
        };
        let label = format!(
            "{} · {} · {}{tensors}",
            r.backend,
            r.optimizer.as_deref().unwrap_or("?"),
            r.implementation.as_deref().unwrap_or("?")
        );
        match lines.iter_mut().find(|l| l.label == label) {
            Some(line) => line.points.push((params as f64, ms)),
            None => lines.push(Line {
                label,
                dashed: r.backend.starts_with("torch"),
                points: vec![(params as f64, ms)],
            }),
        }
    }
    for line in &mut lines {
        line.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    lines
}

/// A training row's name in the throughput and split figures.
pub(super) fn train_label(r: &Record) -> String {
    format!(
        "{} · {} · {}",
        r.backend,
        r.optimizer.as_deref().unwrap_or("?"),
        r.implementation.as_deref().unwrap_or("?")
    )
}

/// A shoot-out run's name in the accuracy curves: its optimizer, with its backend when the file
/// has several, and its seed.
pub(super) fn shootout_label(r: &Record, backends: &[&str]) -> String {
    let mut label = r.optimizer.clone().unwrap_or_default();
    if backends.len() > 1 {
        label = format!("{label} · {}", r.backend);
    }
    if let Some(seed) = r.seed {
        label = format!("{label} · seed {seed}");
    }
    label
}

/// The batch size whose split is drawn: 64 (the article's) when measured, else the largest.
pub(super) fn split_batch(rows: &[&Record]) -> u64 {
    let sizes: Vec<u64> = rows.iter().filter_map(|r| r.batch_size).collect();
    if sizes.contains(&64) {
        64
    } else {
        sizes.into_iter().max().unwrap_or(0)
    }
}

const FONT: &str = "sans-serif";
const WIDTH: u32 = 960;
const FOOTER: u32 = 44;

fn color(i: usize) -> RGBColor {
    // Tableau 10, then repeated: distinct and legible on white.
    const COLORS: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = COLORS[i % COLORS.len()];
    RGBColor(r, g, b)
}

fn footer(area: &Area, caption: &[String; 2]) -> DrawResult {
    let style = (FONT, 12).into_font().color(&RGBColor(80, 80, 80));
    area.draw_text(&caption[0], &style, (12, 6))?;
    area.draw_text(&caption[1], &style, (12, 24))?;
    Ok(())
}

/// A figure [`WIDTH`] wide into `svg`: a white chart area `height` high, drawn by `plot`, above
/// the two lines of `caption` (machine and backends, then the command).
fn chart(svg: &mut String, height: u32, caption: &[String; 2], plot: impl FnOnce(&Area) -> DrawResult) -> DrawResult {
    let root = SVGBackend::with_string(svg, (WIDTH, height + FOOTER)).into_drawing_area();
    root.fill(&WHITE)?;
    let (chart_area, footer_area) = root.split_vertically(height);
    plot(&chart_area)?;
    footer(&footer_area, caption)?;
    root.present()?;
    Ok(())
}

/// The legend every figure draws, at `position`.
fn legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    position: SeriesLabelPosition,
) -> DrawResult {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    Ok(())
}

/// The least and greatest x and y of `points`; `None` when there are none.
fn extent<'p>(points: impl Iterator<Item = &'p (f64, f64)>) -> Option<(f64, f64, f64, f64)> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    (x0 <= x1).then_some((x0, x1, y0, y1))
}

/// Line `i` of a chart, in the `i`-th colour with its points marked by circles of `radius`,
/// named `label` in the legend; a dashed line (PyTorch's) gets a short stroke there.
fn line<X, Y>(
    chart: &mut ChartContext<SVGBackend, Cartesian2d<X, Y>>,
    i: usize,
    label: &str,
    points: &[(f64, f64)],
    dashed: bool,
    radius: i32,
) -> DrawResult
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let style = color(i).stroke_width(2);
    if dashed {
        chart
            .draw_series(DashedLineSeries::new(points.to_vec(), 8, 5, style))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], style));
    } else {
        chart
            .draw_series(LineSeries::new(points.to_vec(), style))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart.draw_series(points.iter().map(|&p| Circle::new(p, radius, color(i).filled())))?;
    Ok(())
}

/// A chart of horizontal bars on `area`, one row per label, its x axis from 0 to 1.35 × `max`
/// (room for the legend), with its mesh drawn.
fn bar_chart<'a, 'b>(
    area: &'a Area<'b>,
    title: &str,
    title_size: u32,
    label_width: u32,
    labels: &[String],
    max: f64,
    x_desc: &str,
) -> Result<BarChart<'a, 'b>, Box<dyn Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, title_size))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(label_width)
        .build_cartesian_2d(0.0..max * 1.35, (0..labels.len()).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(labels.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc(x_desc)
        .label_style((FONT, 12))
        .draw()?;
    Ok(chart)
}

/// One series of bars (row, value) in `fill`, named `label` in the legend, drawn in the order
/// given. The bars are plotters' `Histogram::horizontal` ones (from 0 to the value, 3 pixels off
/// each edge of the row), drawn here because `Histogram` draws them in the order of a `HashMap`,
/// which changed from one run to the next and so changed the SVG files of an unchanged report.
fn bars(chart: &mut BarChart, data: Vec<(usize, f64)>, fill: ShapeStyle, label: impl Into<String>) -> DrawResult {
    let rows = chart.as_coord_spec().y_spec().clone();
    let rectangles = data.into_iter().filter_map(|(row, value)| {
        let row = rows.index_of(&SegmentValue::Exact(row))?;
        let (top, bottom) = (rows.from_index(row)?, rows.from_index(row + 1)?);
        let mut bar = Rectangle::new([(value, top), (0.0, bottom)], fill);
        bar.set_margin(3, 3, 0, 0);
        Some(bar)
    });
    chart
        .draw_series(rectangles)?
        .label(label)
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill));
    Ok(())
}

/// Log-log median step time against parameters, one line per backend × optimizer ×
/// implementation; PyTorch's dashed.
pub(super) fn draw_step_figure(svg: &mut String, title: &str, lines: &[Line], caption: &[String; 2]) -> DrawResult {
    chart(svg, 520, caption, |area| {
        let (x0, x1, y0, y1) = extent(lines.iter().flat_map(|l| l.points.iter())).unwrap_or((1.0, 10.0, 1.0, 10.0));
        let mut chart = ChartBuilder::on(area)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d((x0 / 1.5..x1 * 1.5).log_scale(), (y0 / 2.0..y1 * 2.0).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("parameters (f32)")
            .y_desc("median step time (ms)")
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .y_label_formatter(&|y| fmt_ms(*y))
            .label_style((FONT, 13))
            .draw()?;
        for (i, l) in lines.iter().enumerate() {
            line(&mut chart, i, &l.label, &l.points, l.dashed, 3)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

/// Horizontal bars of images per second, one per measurement, coloured by batch size.
pub(super) fn draw_throughput_figure(svg: &mut String, title: &str, rows: &[(String, u64, f64)], caption: &[String; 2]) -> DrawResult {
    let labels: Vec<String> = rows.iter().map(|(label, batch, _)| format!("{label} · b{batch}")).collect();
    chart(svg, 120 + 22 * rows.len() as u32, caption, |area| {
        let max = rows.iter().map(|b| b.2).fold(0.0, f64::max).max(1.0);
        let x_desc = "images per second (higher is better)";
        let mut chart = bar_chart(area, title, 20, 330, &labels, max, x_desc)?;
        let batches = {
            let mut b: Vec<u64> = rows.iter().map(|b| b.1).collect();
            b.sort_unstable();
            b.dedup();
            b
        };
        for (i, batch) in batches.iter().enumerate() {
            let data: Vec<(usize, f64)> = rows
                .iter()
                .enumerate()
                .filter(|(_, b)| b.1 == *batch)
                .map(|(j, b)| (j, b.2))
                .collect();
            bars(&mut chart, data, color(i).filled(), format!("batch {batch}"))?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

/// Horizontal stacked bars of forward, backward and optimizer-step time.
pub(super) fn draw_split_figure(svg: &mut String, title: &str, rows: &[(String, [f64; 3])], caption: &[String; 2]) -> DrawResult {
    chart(svg, 120 + 24 * rows.len() as u32, caption, |area| {
        let max = rows.iter().map(|(_, p)| p.iter().sum::<f64>()).fold(0.0, f64::max).max(1e-3);
        let labels: Vec<String> = rows.iter().map(|(l, _)| l.clone()).collect();
        let x_desc = "milliseconds per training step (median of each phase)";
        let mut chart = bar_chart(area, title, 18, 300, &labels, max, x_desc)?;
        // Stacked by drawing the cumulative sums from the longest down.
        let phases = ["optimizer step", "backward", "forward"];
        for (k, phase) in phases.iter().enumerate() {
            let upto = 3 - k;
            let data: Vec<(usize, f64)> = rows.iter().enumerate().map(|(i, (_, p))| (i, p[..upto].iter().sum())).collect();
            bars(&mut chart, data, color(upto - 1).filled(), *phase)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

/// Test accuracy (%) against `x`, one line with markers per series.
pub(super) fn draw_curves(svg: &mut String, title: &str, x_desc: &str, series: &[(String, Vec<(f64, f64)>)], caption: &[String; 2]) -> DrawResult {
    chart(svg, 460 + 18 * series.len() as u32, caption, |area| {
        let (x0, x1, y0, y1) = extent(series.iter().flat_map(|(_, p)| p.iter())).unwrap_or((0.0, 1.0, 0.0, 100.0));
        let x_pad = ((x1 - x0) * 0.08).max(0.5);
        let y_pad = ((y1 - y0) * 0.08).max(1.0);
        let mut chart = ChartBuilder::on(area)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d((x0 - x_pad).max(0.0)..x1 + x_pad, (y0 - y_pad).max(0.0)..(y1 + y_pad).min(100.0))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc("test accuracy (%)")
            .label_style((FONT, 13))
            .draw()?;
        for (i, (label, points)) in series.iter().enumerate() {
            line(&mut chart, i, label, points, false, 4)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

/// One optimizer's curve over seeds: at each x, the mean and the range (worst seed to best).
pub(super) struct Band {
    pub(super) label: String,
    /// (x, mean, low, high), in order of x.
    pub(super) points: Vec<(f64, f64, f64, f64)>,
}

/// Curves with bands: each band's range filled lightly, its mean drawn as a line with markers.
/// `log_y` for metrics that shrink by orders of magnitude (a distance to an optimum); the legend
/// goes where the curves are not, below them when they rise (`rising`), above when they fall.
pub(super) fn draw_bands(
    svg: &mut String,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    log_y: bool,
    rising: bool,
    bands: &[Band],
    caption: &[String; 2],
) -> DrawResult {
    chart(svg, 460 + 18 * bands.len() as u32, caption, |area| {
        let corners: Vec<(f64, f64)> = bands
            .iter()
            .flat_map(|b| b.points.iter().flat_map(|&(x, _, lo, hi)| [(x, lo), (x, hi)]))
            .collect();
        let (x0, x1, y0, y1) = extent(corners.iter()).unwrap_or((0.0, 1.0, 0.0, 1.0));
        let x_range = x0..x1.max(x0 + 1e-9) + (x1 - x0) * 0.02;
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(70);
        let position = if rising { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperRight };
        if log_y {
            let lo = y0.max(1e-12);
            let hi = y1.max(lo * 1.01);
            let mut chart = builder.build_cartesian_2d(x_range, (lo / 1.1..hi * 1.1).log_scale())?;
            plot_bands(&mut chart, (x_desc, y_desc), bands, position, &|y: &f64| format!("{y:.0e}"))
        } else {
            let pad = ((y1 - y0) * 0.05).max(1e-9);
            let mut chart = builder.build_cartesian_2d(x_range, y0 - pad..y1 + pad)?;
            plot_bands(&mut chart, (x_desc, y_desc), bands, position, &|y: &f64| format!("{y}"))
        }
    })
}

fn plot_bands<'a, 'b: 'a, Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>,
    (x_desc, y_desc): (&str, &str),
    bands: &[Band],
    position: SeriesLabelPosition,
    y_label: &dyn Fn(&f64) -> String,
) -> DrawResult {
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .y_label_formatter(y_label)
        .label_style((FONT, 13))
        .draw()?;
    for (i, band) in bands.iter().enumerate() {
        let mut outline: Vec<(f64, f64)> = band.points.iter().map(|&(x, _, lo, _)| (x, lo)).collect();
        outline.extend(band.points.iter().rev().map(|&(x, _, _, hi)| (x, hi)));
        chart.draw_series(std::iter::once(Polygon::new(outline, color(i).mix(0.15).filled())))?;
        let mean: Vec<(f64, f64)> = band.points.iter().map(|&(x, m, _, _)| (x, m)).collect();
        line(chart, i, &band.label, &mean, false, 3)?;
    }
    legend(chart, position)
}
