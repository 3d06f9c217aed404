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
