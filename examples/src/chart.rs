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
/// model's perplexity as a dashed line; written as SVG at `out`.
pub fn quality_chart(points: &[Point], baseline: f64, title: &str, out: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(!points.is_empty(), "no points to draw");
    let (x_max, y_max) = points.iter().fold((baseline, baseline), |(x, y), p| (x.max(p.x), y.max(p.y)));
    let y_min = points.iter().fold(baseline, |y, p| y.min(p.y));
    let root = SVGBackend::new(out, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..(x_max * 1.1).max(1.0), ((y_min * 0.9)..(y_max * 1.2)).log_scale())?;
    chart.configure_mesh().x_desc("bits per weight (decoder linear layers)").y_desc("perplexity (held-out text)").draw()?;
    chart
        .draw_series(LineSeries::new([(0.0, baseline), (x_max * 1.1, baseline)], BLACK.stroke_width(1)))?
        .label(format!("unquantized: {baseline:.3}"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
    let mut families: Vec<&str> = points.iter().map(|p| p.family.as_str()).collect();
    families.dedup();
    families.sort();
    families.dedup();
    for (i, family) in families.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let series: Vec<&Point> = points.iter().filter(|p| p.family == *family).collect();
        chart
            .draw_series(series.iter().map(|p| Circle::new((p.x, p.y), 5, color.filled())))?
            .label(family.to_string())
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        chart.draw_series(series.iter().map(|p| Text::new(p.label.clone(), (p.x, p.y), ("sans-serif", 12))))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
