//! Charts the examples write beside their reports (SVG through plotters).

use std::path::Path;

use plotters::prelude::*;

/// One measured point: a method family (one colour each), its label, x and y.
#[derive(Debug, Clone)]
pub struct Point {
    /// Series (`gptq`, `gguf`, `nf4`...).
    pub family: String,
    /// Written beside the point (`Q4_K_M`, `4-bit g128`).
    pub label: String,
    /// Bits per weight.
    pub x: f64,
    /// Perplexity.
    pub y: f64,
}

/// Perplexity (log scale) against bits per weight, a colour per family, the unquantized
/// model's perplexity as a line; written as SVG at `out`. The axes span the points; a point
/// above `CEILING` times the baseline (a collapsed model) is drawn as a triangle on the top
/// edge, labelled with its value, so it does not squeeze the others into a corner.
pub fn quality_chart(points: &[Point], baseline: f64, title: &str, out: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(!points.is_empty(), "no points to draw");
    let ceiling = baseline * CEILING;
    let (x_min, x_max) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.x), hi.max(p.x)));
    let y_min = points.iter().fold(baseline, |y, p| y.min(p.y));
    let y_max = points.iter().fold(baseline, |y, p| y.max(p.y.min(ceiling)));
    let (x_lo, x_hi) = ((x_min - 0.5).max(0.0), x_max + 0.5);
    let y_hi = y_max * 1.1;
    let root = SVGBackend::new(out, (1200, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_lo..x_hi, ((y_min * 0.95)..y_hi).log_scale())?;
    chart.configure_mesh().x_desc("bits per weight (decoder linear layers)").y_desc("perplexity (held-out text)").draw()?;
    chart
        .draw_series(LineSeries::new([(x_lo, baseline), (x_hi, baseline)], BLACK.stroke_width(1)))?
        .label(format!("unquantized: {baseline:.3}"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
    let mut families: Vec<&str> = points.iter().map(|p| p.family.as_str()).collect();
    families.sort();
    families.dedup();
    let mut collapsed = 0usize;
    for (i, family) in families.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let (inside, above): (Vec<&Point>, Vec<&Point>) = points.iter().filter(|p| p.family == *family).partition(|p| p.y <= ceiling);
        chart
            .draw_series(inside.iter().map(|p| Circle::new((p.x, p.y), 5, color.filled())))?
            .label(family.to_string())
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        chart.draw_series(inside.iter().map(|p| Text::new(p.label.clone(), (p.x, p.y), ("sans-serif", 12))))?;
        // One row per collapsed point of any family, stepping down from the top edge so labels
        // do not overlap.
        let row = |k: usize| y_max * 1.05 * 0.95f64.powi((collapsed + k) as i32);
        chart.draw_series(above.iter().enumerate().map(|(k, p)| TriangleMarker::new((p.x, row(k)), 7, color.filled())))?;
        chart.draw_series(above.iter().enumerate().map(|(k, p)| {
            Text::new(format!("{} ({:.0}, off the chart)", p.label, p.y), (p.x, row(k)), ("sans-serif", 12))
        }))?;
        collapsed += above.len();
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// Perplexities above this multiple of the baseline are marked on the top edge.
const CEILING: f64 = 5.0;

/// One bar of [`metric_bars_svg`]: a model's value of a metric.
#[derive(Debug, Clone)]
pub struct Bar {
    /// The model (one colour per series, the same in every panel).
    pub series: String,
    /// The metric's value.
    pub value: f64,
    /// Standard error, drawn as a ± whisker (none for perplexities and corpus metrics).
    pub stderr: Option<f64>,
}

/// One metric's bars, in a panel of its own: a task's metrics differ in scale (accuracy
/// against perplexity), so they do not share an axis.
#[derive(Debug, Clone)]
pub struct Panel {
    /// The metric's name.
    pub metric: String,
    /// Whether larger is better (an arrow in the panel's title, as lm-eval's table shows it).
    pub higher_is_better: bool,
    /// Its bars, in series order.
    pub bars: Vec<Bar>,
}

/// A task's metrics as bars with ±stderr whiskers, a panel per metric and a colour per
/// model, as SVG text. Proportions (every value and whisker within 0..1) share a 0..1 axis so
/// models and tasks compare by eye; other metrics start at zero.
pub fn metric_bars_svg(panels: &[Panel], title: &str) -> anyhow::Result<String> {
    anyhow::ensure!(!panels.is_empty(), "no metrics to draw");
    let mut svg = String::new();
    {
        // Room for each bar's model name under it.
        let bars = panels.iter().map(|p| p.bars.len()).max().unwrap_or(1) as u32;
        let width = ((100 + 190 * bars) * panels.len() as u32).max(480);
        let root = SVGBackend::with_string(&mut svg, (width, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 20))?;
        for (area, panel) in root.split_evenly((1, panels.len())).iter().zip(panels) {
            draw_panel(area, panel)?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>, panel: &Panel) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let n = panel.bars.len();
    let se = |b: &Bar| b.stderr.filter(|s| s.is_finite() && *s > 0.0);
    let top = panel.bars.iter().map(|b| b.value + se(b).unwrap_or(0.0)).fold(0.0, f64::max);
    let proportion = panel.bars.iter().all(|b| b.value >= 0.0) && top <= 1.0;
    let y_hi = if proportion { 1.0 } else if top > 0.0 { top * 1.15 } else { 1.0 };
    let arrow = if panel.higher_is_better { "↑" } else { "↓" };
    let names: Vec<String> = panel.bars.iter().map(|b| b.series.clone()).collect();
    // Ticks every half unit; only the whole ones (bar centres) are named.
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n { names[i as usize].clone() } else { String::new() }
    };
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{} {arrow}", panel.metric), ("sans-serif", 16))
        .margin(15)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..y_hi)?;
    chart.configure_mesh().disable_x_mesh().x_labels(2 * n + 1).x_label_formatter(&label).draw()?;
    for (i, b) in panel.bars.iter().enumerate() {
        let (x, color) = (i as f64, Palette99::pick(i).to_rgba());
        chart.draw_series([Rectangle::new([(x - 0.3, 0.0), (x + 0.3, b.value.max(0.0))], color.filled())])?;
        if let Some(s) = se(b) {
            let (lo, hi) = ((b.value - s).max(0.0), b.value + s);
            let whisker = [vec![(x, lo), (x, hi)], vec![(x - 0.08, lo), (x + 0.08, lo)], vec![(x - 0.08, hi), (x + 0.08, hi)]];
            chart.draw_series(whisker.into_iter().map(|p| PathElement::new(p, BLACK.stroke_width(2))))?;
        }
        // Text hangs below its anchor: anchor it a little above the whisker.
        let y = ((b.value + se(b).unwrap_or(0.0)) + 0.07 * y_hi).min(y_hi);
        chart.draw_series([Text::new(format!("{:.3}", b.value), (x - 0.15, y), ("sans-serif", 13))])?;
    }
    Ok(())
}
