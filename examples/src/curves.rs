//! Training curves: the train and eval loss of a run's `metrics.jsonl` (and a preference run's
//! reward margin and accuracy), drawn as SVG beside it and redrawn as the run goes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;
use serde_json::Value;

/// Step metrics drawn in panels of their own, when a run logs them (DPO, ORPO).
const EXTRA: [&str; 2] = ["rewards/margins", "rewards/accuracies"];

/// The series of one run, keyed by step. A resumed run appends to the same file and may repeat
/// steps; the last record of a step wins, so the curve is the run as it continued.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curves {
    /// Training loss per step.
    pub train: BTreeMap<u64, f64>,
    /// Eval loss per evaluated step.
    pub eval: BTreeMap<u64, f64>,
    /// [`EXTRA`] metrics per step, by name (train and `eval_` records).
    pub metrics: BTreeMap<String, BTreeMap<u64, f64>>,
}

impl Curves {
    /// Reads `metrics.jsonl` as the trainer writes it (step, eval and checkpoint records).
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut curves = Self::default();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).with_context(|| format!("{} line {}", path.display(), i + 1))?;
            curves.add(&v);
        }
        Ok(curves)
    }

    fn add(&mut self, v: &Value) {
        let Some(step) = v["step"].as_u64() else { return };
        let finite = |key: &str| v[key].as_f64().filter(|x| x.is_finite());
        if let Some(loss) = finite("loss") {
            self.train.insert(step, loss);
        }
        if let Some(loss) = finite("eval_loss") {
            self.eval.insert(step, loss);
        }
        for name in EXTRA {
            for key in [name.to_string(), format!("eval_{name}")] {
                if let Some(x) = finite(&key) {
                    self.metrics.entry(key).or_default().insert(step, x);
                }
            }
        }
    }

    /// The curves as SVG text: a loss panel (train and eval) and one panel per reward metric.
    pub fn svg(&self, title: &str) -> anyhow::Result<String> {
        anyhow::ensure!(!self.train.is_empty() || !self.eval.is_empty(), "no loss recorded yet");
        let mut panels = vec![Panel { name: "loss", lines: vec![("train", &self.train), ("eval", &self.eval)] }];
        for name in EXTRA {
            let train = self.metrics.get(name);
            let eval = self.metrics.get(&format!("eval_{name}"));
            if train.is_some() || eval.is_some() {
                let mut lines = vec![];
                lines.extend(train.map(|s| ("train", s)));
                lines.extend(eval.map(|s| ("eval", s)));
                panels.push(Panel { name, lines });
            }
        }
        let mut svg = String::new();
        {
            let width = (520 * panels.len() as u32).max(760);
            let root = SVGBackend::with_string(&mut svg, (width, 420)).into_drawing_area();
            root.fill(&WHITE)?;
            let root = root.titled(title, ("sans-serif", 20))?;
            for (area, panel) in root.split_evenly((1, panels.len())).iter().zip(&panels) {
                panel.draw(area)?;
            }
            root.present()?;
        }
        Ok(svg)
    }
}

/// One panel: a metric's named series over steps.
struct Panel<'a> {
    name: &'a str,
    lines: Vec<(&'a str, &'a BTreeMap<u64, f64>)>,
}

impl Panel<'_> {
    /// The corner the curves leave free: the bottom for rising ones (margins, accuracies), the
    /// top for falling ones (losses).
    fn legend_corner(&self) -> SeriesLabelPosition {
        let rising = self.lines.iter().find_map(|(_, s)| Some(s.values().last()? > s.values().next()?));
        if rising == Some(true) { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperRight }
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, plotters::coord::Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        let points = || self.lines.iter().flat_map(|(_, s)| s.iter());
        let x_max = points().map(|(&s, _)| s).max().unwrap_or(1).max(1) as f64;
        let (lo, hi) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, &y)| (lo.min(y), hi.max(y)));
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.08).max(1e-3);
        let mut chart = ChartBuilder::on(area)
            .caption(self.name, ("sans-serif", 16))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))?;
        chart.configure_mesh().x_desc("step").draw()?;
        for (i, (label, series)) in self.lines.iter().enumerate().filter(|(_, (_, s))| !s.is_empty()) {
            let color = Palette99::pick(i).to_rgba();
            let xy: Vec<(f64, f64)> = series.iter().map(|(&s, &y)| (s as f64, y)).collect();
            chart
                .draw_series(LineSeries::new(xy.clone(), color.stroke_width(2)))?
                .label(format!("{label} (last {:.4})", xy.last().map_or(f64::NAN, |p| p.1)))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
            // Sparse series (evaluations) get markers so a single point shows.
            if xy.len() <= 40 {
                chart.draw_series(xy.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            }
        }
        chart.configure_series_labels().position(self.legend_corner()).background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        Ok(())
    }
}

/// Redraws `run_dir/curves.svg` from `run_dir/metrics.jsonl` (written whole, then renamed, so
/// a viewer never sees half a file) and returns its path.
pub fn write_curves(run_dir: &Path, title: &str) -> anyhow::Result<PathBuf> {
    let svg = Curves::read(&run_dir.join("metrics.jsonl"))?.svg(title)?;
    let out = run_dir.join("curves.svg");
    llm_core::io::atomic::write_bytes_atomic(&out, svg.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

/// A model path as a chart title shows it: its last component.
pub fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// [`write_curves`] from a training loop's event handler: a chart that cannot be drawn is
/// reported above the progress bar and the run goes on.
pub fn redraw(bar: &indicatif::ProgressBar, run_dir: &Path, title: &str) {
    if let Err(e) = write_curves(run_dir, title) {
        bar.println(format!("curves not drawn: {e:#}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumed_steps_keep_the_last_record_and_eval_metrics_stay_apart() {
        let mut c = Curves::default();
        for line in [
            r#"{"step":1,"loss":0.69,"rewards/margins":0.0,"rewards/accuracies":0.0}"#,
            r#"{"step":2,"loss":0.60,"rewards/margins":0.2,"rewards/accuracies":1.0}"#,
            r#"{"step":2,"eval_loss":0.65,"eval_rewards/margins":0.1}"#,
            r#"{"step":2,"checkpoint":"run/checkpoint-2"}"#,
            r#"{"step":2,"loss":0.61,"rewards/margins":0.3,"rewards/accuracies":1.0}"#,
            r#"{"step":3,"loss":null}"#,
        ] {
            c.add(&serde_json::from_str(line).unwrap());
        }
        assert_eq!(c.train, BTreeMap::from([(1, 0.69), (2, 0.61)]));
        assert_eq!(c.eval, BTreeMap::from([(2, 0.65)]));
        assert_eq!(c.metrics["rewards/margins"], BTreeMap::from([(1, 0.0), (2, 0.3)]));
        assert_eq!(c.metrics["eval_rewards/margins"], BTreeMap::from([(2, 0.1)]));
        let svg = c.svg("dpo").unwrap();
        assert!(svg.contains("rewards/margins") && svg.contains("rewards/accuracies"), "a panel per reward metric");
        assert!(svg.contains("train (last 0.6100)") && svg.contains("eval (last 0.6500)"));
    }

    #[test]
    fn an_empty_run_is_an_error_not_an_empty_chart() {
        assert!(Curves::default().svg("x").is_err());
    }
}
