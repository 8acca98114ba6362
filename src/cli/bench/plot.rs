//! `lmic bench --plot`: compressed size against speed, one colour per codec,
//! because people choose a compressor by looking at that trade-off.

use super::Row;
use lmic::error::{Error, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// DejaVu Sans cut down to ASCII and a few symbols (26 KB; licence in
/// assets/DejaVuSans-LICENSE.txt): plotters' ab_glyph backend needs the font
/// bytes, and a fresh machine may have no fonts at all.
static FONT: &[u8] = include_bytes!("../../../assets/DejaVuSans-subset.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is ours and known to parse (the plot test draws text).
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(
        format!("drawing {}", path.display()),
        std::io::Error::other(e.to_string()),
    )
}

/// Draws the per-codec totals: x = speed in multiples of real time (log
/// scale), y = compressed size in % of the input. A filled dot is
/// compression, a ring decompression, joined by a line.
pub fn draw(totals: &[Row], path: &Path) -> Result<()> {
    register_font();
    let pts: Vec<(&Row, f64, f64, f64)> = totals
        .iter()
        .filter(|r| r.ok && r.enc_s > 0.0 && r.dec_s > 0.0)
        .filter_map(|r| {
            let size = r.size? as f64;
            Some((
                r,
                100.0 * size / r.raw_bytes.max(1) as f64,
                r.seconds_audio / r.enc_s,
                r.seconds_audio / r.dec_s,
            ))
        })
        .collect();
    if pts.is_empty() {
        return Err(Error::Usage("nothing to plot: no codec completed".into()));
    }
    let xs = pts.iter().flat_map(|p| [p.2, p.3]);
    let (xmin, xmax) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let ymax = pts.iter().map(|p| p.1).fold(0.0, f64::max);
    let x_range = (xmin / 2.0)..(xmax * 2.0);
    let y_range = 0.0..(ymax * 1.1).max(1.0);

    let root = BitMapBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let seconds: f64 = pts[0].0.seconds_audio;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("lmic bench: {seconds:.1} s of audio, every round trip verified"),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range.log_scale(), y_range)
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("speed (× real time; dot: compress, ring: decompress)")
        .y_desc("compressed size (% of input)")
        .x_label_formatter(&|x| format!("{x}"))
        .draw()
        .map_err(|e| err(path, e))?;
    for (i, &(r, rate, enc, dec)) in pts.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                [(enc, rate), (dec, rate)],
                colour.stroke_width(2),
            ))
            .map_err(|e| err(path, e))?
            .label(format!("{} ({rate:.1}%)", r.codec))
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, colour.filled()));
        chart
            .draw_series([
                Circle::new((enc, rate), 6, colour.filled()),
                Circle::new((dec, rate), 6, colour.stroke_width(2)),
            ])
            .map_err(|e| err(path, e))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .position(SeriesLabelPosition::LowerLeft)
        .draw()
        .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))?;
    Ok(())
}
