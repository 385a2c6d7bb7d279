//! A line chart as SVG: one line per series, time across, a count up. Written by hand (a few
//! dozen elements) rather than with a plotting library; `svg_to_png` rasterises it with resvg
//! (pure Rust) when a PNG is asked for.

use std::fmt::Write;

/// One line of the chart.
pub(crate) struct Series {
    /// The legend's label.
    pub(crate) label: String,
    /// (Unix seconds, value) points, in time order.
    pub(crate) points: Vec<(i64, f64)>,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 220.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const TICKS: usize = 5;
const COLORS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];
/// Series drawn at most; the legend says how many were left out.
const MAX_SERIES: usize = 40;

/// Renders `series` as an SVG document titled `title`, the y axis labelled `y_label`.
pub(crate) fn line_chart(title: &str, y_label: &str, series: &[Series]) -> String {
    let points = series.iter().flat_map(|line| line.points.iter());
    let (mut t_min, mut t_max, mut y_max) = (i64::MAX, i64::MIN, 0.0f64);
    for &(t, y) in points {
        t_min = t_min.min(t);
        t_max = t_max.max(t);
        y_max = y_max.max(y);
    }
    if t_min > t_max {
        (t_min, t_max) = (0, 1);
    }
    if t_max == t_min {
        t_max = t_min + 1;
    }
    let y_top = nice_ceiling(y_max.max(1.0));
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let x = |t: i64| LEFT + (t - t_min) as f64 / (t_max - t_min) as f64 * plot_width;
    let y = |value: f64| TOP + plot_height - value / y_top * plot_height;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="{}" font-size="16" font-weight="bold">{}</text>"#,
        TOP - 20.0,
        escape(title)
    );
    // Grid and axes.
    for tick in 0..=TICKS {
        let value = y_top * tick as f64 / TICKS as f64;
        let y_position = y(value);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{y_position:.1}" x2="{:.1}" y2="{y_position:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_width,
            LEFT - 8.0,
            y_position + 4.0,
            format_value(value)
        );
        let t = t_min + ((t_max - t_min) as f64 * tick as f64 / TICKS as f64) as i64;
        let x_position = x(t);
        let _ = write!(
            svg,
            r##"<line x1="{x_position:.1}" y1="{:.1}" x2="{x_position:.1}" y2="{:.1}" stroke="#999"/><text x="{x_position:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_height,
            TOP + plot_height + 5.0,
            TOP + plot_height + 20.0,
            escape(&format_time(t))
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="#333"/><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/>"##,
        TOP + plot_height,
        TOP + plot_height,
        LEFT + plot_width,
        TOP + plot_height
    );
    let _ = write!(
        svg,
        r#"<text x="20" y="{:.1}" transform="rotate(-90 20 {:.1})" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle">dump time (UTC)</text>"#,
        TOP + plot_height / 2.0,
        TOP + plot_height / 2.0,
        escape(y_label),
        LEFT + plot_width / 2.0,
        HEIGHT - 12.0
    );
    // Lines, points and the legend.
    for (index, line) in series.iter().take(MAX_SERIES).enumerate() {
        let color = COLORS[index % COLORS.len()];
        let path: Vec<String> = line
            .points
            .iter()
            .map(|&(t, value)| format!("{:.1},{:.1}", x(t), y(value)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for &(t, value) in &line.points {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{}: {} at {}</title></circle>"#,
                x(t),
                y(value),
                escape(&line.label),
                format_value(value),
                escape(&format_time(t))
            );
        }
        let legend_y = TOP + 16.0 * index as f64;
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="12" height="3" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            WIDTH - RIGHT + 16.0,
            legend_y - 4.0,
            WIDTH - RIGHT + 34.0,
            legend_y,
            escape(&line.label)
        );
    }
    if series.len() > MAX_SERIES {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">... and {} more</text>"#,
            WIDTH - RIGHT + 16.0,
            TOP + 16.0 * MAX_SERIES as f64,
            series.len() - MAX_SERIES
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Renders an SVG document as a PNG image, text in the system's fonts (a machine without fonts
/// still gets the lines, axes and points).
pub(crate) fn svg_to_png(svg: &str) -> anyhow::Result<Vec<u8>> {
    use resvg::{tiny_skia, usvg};

    let mut options = usvg::Options::default();
    let fonts = options.fontdb_mut();
    fonts.load_system_fonts();
    // The chart asks for the generic `sans-serif`: point it at a font this machine has.
    let family = fonts
        .faces()
        .flat_map(|face| face.families.iter().map(|(name, _)| name.clone()))
        .min_by_key(|name| {
            (
                !name.contains("Sans"),
                !name.starts_with("DejaVu"),
                name.clone(),
            )
        });
    let svg = match family {
        Some(family) => {
            fonts.set_sans_serif_family(family);
            svg.to_owned()
        }
        None => {
            tracing::warn!("no fonts on this machine: the PNG has no labels (an .svg has them)");
            strip_text(svg)
        }
    };
    let tree = usvg::Tree::from_str(&svg, &options)?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| anyhow::anyhow!("cannot allocate a {size:?} image"))?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    Ok(pixmap.encode_png()?)
}

/// Removes the `<text>` elements, for rendering without fonts.
fn strip_text(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len());
    let mut rest = svg;
    while let Some(start) = rest.find("<text") {
        out.push_str(&rest[..start]);
        match rest[start..].find("</text>") {
            Some(end) => rest = &rest[start + end + "</text>".len()..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The smallest 1, 2 or 5 times a power of ten at or above `value`.
fn nice_ceiling(value: f64) -> f64 {
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * magnitude)
        .find(|&candidate| candidate >= value)
        .unwrap_or(10.0 * magnitude)
}

fn format_value(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value >= 1e4 {
        format!("{:.0}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

fn format_time(unix_seconds: i64) -> String {
    jiff::Timestamp::from_second(unix_seconds)
        .map(|timestamp| timestamp.strftime("%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| unix_seconds.to_string())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_line_chart_draws_one_line_per_series_with_its_points() {
        let series = vec![
            Series {
                label: "web-1 pid 7".to_owned(),
                points: vec![
                    (1_800_000_000, 10.0),
                    (1_800_000_600, 20.0),
                    (1_800_001_200, 45.0),
                ],
            },
            Series {
                label: "web-2 <pid 8>".to_owned(),
                points: vec![(1_800_000_000, 5.0), (1_800_000_600, 5.0)],
            },
        ];
        let svg = line_chart("app/x.rb:3 & more", "live objects", &series);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("app/x.rb:3 &amp; more"));
        assert!(svg.contains("web-2 &lt;pid 8&gt;"));
        // The y axis tops out at a round number above the largest value.
        assert!(svg.contains(">50<"), "{svg}");
    }

    #[test]
    fn test_svg_to_png_renders_the_chart() {
        let series = vec![Series {
            label: "web-1 pid 7".to_owned(),
            points: vec![(1_800_000_000, 10.0), (1_800_000_600, 20.0)],
        }];
        let png = svg_to_png(&line_chart("t", "objects", &series)).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // Width and height from the IHDR chunk.
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 960);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 520);
    }

    #[test]
    fn test_strip_text_keeps_everything_else() {
        assert_eq!(
            strip_text(r#"<svg><text x="1">a</text><line/><text>b</text></svg>"#),
            "<svg><line/></svg>"
        );
    }

    #[test]
    fn test_nice_ceiling_rounds_up_to_1_2_5() {
        assert_eq!(nice_ceiling(45.0), 50.0);
        assert_eq!(nice_ceiling(101.0), 200.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
    }
}
