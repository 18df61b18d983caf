//! `--plot FILE.svg`: throughput (sent, received, confirmed) and consumer latency (median,
//! 99th) over time, as two stacked line charts in a hand-written SVG.

use std::fmt::Write as _;

use super::stats::{IntervalRow, Summary};

const WIDTH: f64 = 900.0;
const PANEL_HEIGHT: f64 = 260.0;
const MARGIN_LEFT: f64 = 80.0;
const MARGIN_TOP: f64 = 40.0;
const GAP: f64 = 70.0;

struct Series<'a> {
    name: &'a str,
    colour: &'a str,
    values: Vec<f64>,
}

/// Renders the chart.
pub(crate) fn svg(summary: &Summary, rows: &[IntervalRow]) -> String {
    let times: Vec<f64> = rows.iter().map(|r| r.time_s).collect();
    let throughput = [
        Series {
            name: "sent msg/s",
            colour: "#1f77b4",
            values: rows.iter().map(|r| r.sent_msgs_per_s).collect(),
        },
        Series {
            name: "received msg/s",
            colour: "#2ca02c",
            values: rows.iter().map(|r| r.received_msgs_per_s).collect(),
        },
        Series {
            name: "confirmed msg/s",
            colour: "#ff7f0e",
            values: rows.iter().map(|r| r.confirmed_msgs_per_s).collect(),
        },
    ];
    let latency = [
        Series {
            name: "median µs",
            colour: "#9467bd",
            values: rows.iter().map(|r| r.latency_us.p50 as f64).collect(),
        },
        Series {
            name: "99th µs",
            colour: "#d62728",
            values: rows.iter().map(|r| r.latency_us.p99 as f64).collect(),
        },
    ];
    let height = MARGIN_TOP + 2.0 * PANEL_HEIGHT + GAP + 50.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{MARGIN_LEFT}\" y=\"22\" font-size=\"15\">warren bench {}: {:.0} msg/s sent, {:.0} msg/s received, p99 {} µs</text>\n",
        escape(&summary.id),
        summary.sent_msgs_per_s,
        summary.received_msgs_per_s,
        summary.latency_us.p99
    );
    panel(&mut out, MARGIN_TOP, "throughput (msg/s)", &times, &throughput);
    panel(&mut out, MARGIN_TOP + PANEL_HEIGHT + GAP, "consumer latency (µs)", &times, &latency);
    out.push_str("</svg>\n");
    out
}

fn panel(out: &mut String, top: f64, title: &str, times: &[f64], series: &[Series<'_>]) {
    let plot_w = WIDTH - MARGIN_LEFT - 30.0;
    let t_max = times.iter().copied().fold(0.0, f64::max).max(1e-9);
    let y_max = series.iter().flat_map(|s| s.values.iter().copied()).fold(0.0, f64::max).max(1.0) * 1.1;
    let bottom = top + PANEL_HEIGHT;
    let _ = writeln!(
        out,
        "<text x=\"{MARGIN_LEFT}\" y=\"{}\" font-weight=\"bold\">{}</text>\n\
         <rect x=\"{MARGIN_LEFT}\" y=\"{top}\" width=\"{plot_w}\" height=\"{PANEL_HEIGHT}\" fill=\"none\" stroke=\"#888\"/>",
        top - 6.0,
        escape(title)
    );
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let y = bottom - PANEL_HEIGHT * f64::from(i) / 4.0;
        let _ = writeln!(
            out,
            "<line x1=\"{MARGIN_LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            MARGIN_LEFT + plot_w,
            MARGIN_LEFT - 6.0,
            y + 4.0,
            compact(v)
        );
        let t = t_max * f64::from(i) / 4.0;
        let x = MARGIN_LEFT + plot_w * f64::from(i) / 4.0;
        let _ = writeln!(
            out,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t:.1} s</text>",
            bottom + 16.0
        );
    }
    for (k, s) in series.iter().enumerate() {
        let points: Vec<String> = times
            .iter()
            .zip(&s.values)
            .map(|(t, v)| {
                format!("{:.1},{:.1}", MARGIN_LEFT + plot_w * t / t_max, bottom - PANEL_HEIGHT * v / y_max)
            })
            .collect();
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{}\">{}</text>",
            s.colour,
            points.join(" "),
            MARGIN_LEFT + 10.0 + 150.0 * k as f64,
            bottom + 34.0,
            s.colour,
            escape(s.name)
        );
    }
}

fn compact(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
