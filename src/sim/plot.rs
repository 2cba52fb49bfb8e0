//! Line-and-marker charts as PNG files, with no dependency: a small raster canvas, a 5x7
//! bitmap font (text is drawn in capitals), and a PNG writer (8-bit palette; deflate with the
//! fixed Huffman code and run-length matches, which is plenty for flat-colour charts). The
//! same chart gives the same bytes.

/// Palette: white, black, light grey, then the series colours.
const PALETTE: [[u8; 3]; 9] = [
    [255, 255, 255],
    [0, 0, 0],
    [215, 215, 215],
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [148, 103, 189],
    [255, 127, 14],
    [110, 110, 110],
];
const WHITE: u8 = 0;
const BLACK: u8 = 1;
const GRID: u8 = 2;
/// Colours a series may use.
pub const SERIES_COLOURS: usize = 6;

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// A polyline through the points (theory).
    Line,
    /// A marker at each point (measurements).
    Marker,
}

/// One series.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// 0..[`SERIES_COLOURS`].
    pub colour: usize,
    /// How it is drawn.
    pub style: Style,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// Measurements: a marker per point.
    pub fn marker(label: impl Into<String>, colour: usize, points: Vec<(f64, f64)>) -> Series {
        Series { label: label.into(), colour, style: Style::Marker, points }
    }

    /// Theory: a line through the points.
    pub fn line(label: impl Into<String>, colour: usize, points: Vec<(f64, f64)>) -> Series {
        Series { label: label.into(), colour, style: Style::Line, points }
    }
}

/// A chart.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Title, at the top.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Logarithmic y axis (points with y <= 0 are left out).
    pub log_y: bool,
    /// The series.
    pub series: Vec<Series>,
}

/// The plot area's width; the legend goes to its right.
const PLOT_W: usize = 640;
const H: usize = 480;
const LEFT: usize = 100;
const TOP: usize = 40;
const BOTTOM: usize = 64;

struct Canvas {
    px: Vec<u8>,
    w: usize,
}

impl Canvas {
    fn set(&mut self, x: i64, y: i64, c: u8) {
        if (0..self.w as i64).contains(&x) && (0..H as i64).contains(&y) {
            self.px[y as usize * self.w + x as usize] = c;
        }
    }

    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: u8) {
        for y in y0..=y1 {
            for x in x0..=x1 {
                self.set(x, y, c);
            }
        }
    }

    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: u8, thick: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.rect(x - thick / 2, y - thick / 2, x + (thick - 1) / 2, y + (thick - 1) / 2, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text with its top-left corner at (x, y), `scale` pixels per font dot.
    fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: u8) {
        for (i, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits >> (4 - col) & 1 == 1 {
                        let (px, py) = (x + (i as i64 * 6 + col) * scale, y + row as i64 * scale);
                        self.rect(px, py, px + scale - 1, py + scale - 1, c);
                    }
                }
            }
        }
    }

    /// Text rotated a quarter turn anticlockwise, reading upwards from (x, y) (bottom-left).
    fn text_up(&mut self, x: i64, y: i64, s: &str, scale: i64, c: u8) {
        for (i, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits >> (4 - col) & 1 == 1 {
                        let (px, py) = (x + row as i64 * scale, y - (i as i64 * 6 + col) * scale);
                        self.rect(px, py, px + scale - 1, py + scale - 1, c);
                    }
                }
            }
        }
    }
}

fn text_width(s: &str, scale: i64) -> i64 {
    s.chars().count() as i64 * 6 * scale
}

/// Tick positions: about five round values across `lo..hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

fn label(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e5) {
        let e = v.abs().log10().floor() as i32;
        let m = v / 10f64.powi(e);
        if (m - 1.0).abs() < 1e-9 {
            format!("1E{e}")
        } else {
            format!("{m:.1}E{e}")
        }
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    }
}

/// Renders the chart as a PNG file's bytes.
pub fn render_png(chart: &Chart) -> Vec<u8> {
    let legend_w = chart.series.iter().map(|s| text_width(&s.label, 1)).max().unwrap_or(0) as usize + 56;
    let right = legend_w + 16;
    let w = LEFT + PLOT_W + right;
    let mut c = Canvas { px: vec![WHITE; w * H], w };
    let ty = |y: f64| if chart.log_y { y.log10() } else { y };
    let pts: Vec<(f64, f64)> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!chart.log_y || *y > 0.0))
        .map(|(x, y)| (*x, ty(*y)))
        .collect();
    let (mut x0, mut x1, mut y0, mut y1) = pts.iter().fold(
        (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY),
        |(a, b, c, d), (x, y)| (a.min(*x), b.max(*x), c.min(*y), d.max(*y)),
    );
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if chart.log_y {
        (y0, y1) = (y0.floor(), y1.ceil().max(y0.floor() + 1.0));
    } else {
        y0 = y0.min(0.0);
        y1 += (y1 - y0).max(1e-9) * 0.08;
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    let (pw, ph) = ((w - LEFT - right) as f64, (H - TOP - BOTTOM) as f64);
    let sx = |x: f64| LEFT as i64 + ((x - x0) / (x1 - x0) * pw).round() as i64;
    let sy = |y: f64| (TOP as f64 + ph - (y - y0) / (y1 - y0) * ph).round() as i64;
    // Grid and tick labels.
    let yt: Vec<f64> =
        if chart.log_y { (y0 as i64..=y1 as i64).map(|e| e as f64).collect() } else { ticks(y0, y1) };
    for t in &yt {
        let y = sy(*t);
        c.line((LEFT as i64, y), ((w - right) as i64, y), GRID, 1);
        let s = if chart.log_y { label(10f64.powf(*t)) } else { label(*t) };
        c.text(LEFT as i64 - 6 - text_width(&s, 1) * 2, y - 7, &s, 2, BLACK);
    }
    for t in ticks(x0, x1) {
        let x = sx(t);
        c.line((x, TOP as i64), (x, (H - BOTTOM) as i64), GRID, 1);
        let s = label(t);
        c.text(x - text_width(&s, 2) / 2, (H - BOTTOM) as i64 + 8, &s, 2, BLACK);
    }
    // Axes, title, labels.
    c.line((LEFT as i64, TOP as i64), (LEFT as i64, (H - BOTTOM) as i64), BLACK, 2);
    c.line((LEFT as i64, (H - BOTTOM) as i64), ((w - right) as i64, (H - BOTTOM) as i64), BLACK, 2);
    c.text((w as i64 - text_width(&chart.title, 2)) / 2, 10, &chart.title, 2, BLACK);
    c.text((w as i64 - text_width(&chart.x_label, 2)) / 2, H as i64 - 26, &chart.x_label, 2, BLACK);
    c.text_up(8, (H as i64 + text_width(&chart.y_label, 2)) / 2, &chart.y_label, 2, BLACK);
    // Series.
    for s in &chart.series {
        let col = 3 + (s.colour % SERIES_COLOURS) as u8;
        let p: Vec<(i64, i64)> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!chart.log_y || *y > 0.0))
            .map(|(x, y)| (sx(*x), sy(ty(*y))))
            .collect();
        match s.style {
            Style::Line => {
                for w in p.windows(2) {
                    c.line(w[0], w[1], col, 2);
                }
            }
            Style::Marker => {
                for (x, y) in p {
                    c.rect(x - 4, y - 4, x + 4, y + 4, BLACK);
                    c.rect(x - 3, y - 3, x + 3, y + 3, col);
                }
            }
        }
    }
    // Legend, right of the plot.
    let lx = (w - right) as i64 + 16;
    let ly = TOP as i64 + 8;
    for (i, s) in chart.series.iter().enumerate() {
        let col = 3 + (s.colour % SERIES_COLOURS) as u8;
        let y = ly + 14 * i as i64;
        match s.style {
            Style::Line => c.line((lx, y + 4), (lx + 24, y + 4), col, 2),
            Style::Marker => {
                c.rect(lx + 8, y, lx + 16, y + 8, BLACK);
                c.rect(lx + 9, y + 1, lx + 15, y + 7, col);
            }
        }
        c.text(lx + 32, y + 1, &s.label, 1, BLACK);
    }
    encode_png(&c.px, w, H)
}

fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        '=' => [0, 0, 0x1F, 0, 0x1F, 0, 0],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '^' => [0x04, 0x0A, 0x11, 0, 0, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        '<' => [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        '*' => [0, 0x04, 0x15, 0x0E, 0x15, 0x04, 0],
        '\'' => [0x04, 0x04, 0, 0, 0, 0, 0],
        _ => [0; 7],
    }
}

// ---- PNG ----------------------------------------------------------------------------------

fn crc32(data: &[&[u8]]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for part in data {
        for &b in *part {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
}

/// An 8-bit palette PNG of `w` x `h` palette indices.
fn encode_png(px: &[u8], w: usize, h: usize) -> Vec<u8> {
    // Per row, the filter (Sub or Up) that leaves more zero bytes.
    let mut raw = Vec::with_capacity((w + 1) * h);
    for y in 0..h {
        let row = &px[y * w..(y + 1) * w];
        let sub: Vec<u8> = (0..w).map(|x| row[x].wrapping_sub(if x > 0 { row[x - 1] } else { 0 })).collect();
        let up: Vec<u8> =
            (0..w).map(|x| row[x].wrapping_sub(if y > 0 { px[(y - 1) * w + x] } else { 0 })).collect();
        let zeros = |v: &[u8]| v.iter().filter(|b| **b == 0).count();
        if zeros(&up) > zeros(&sub) {
            raw.push(2);
            raw.extend_from_slice(&up);
        } else {
            raw.push(1);
            raw.extend_from_slice(&sub);
        }
    }
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&(w as u32).to_be_bytes());
    ihdr.extend_from_slice(&(h as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 3, 0, 0, 0]); // depth 8, palette, deflate, adaptive, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    let plte: Vec<u8> = PALETTE.iter().flatten().copied().collect();
    chunk(&mut out, b"PLTE", &plte);
    chunk(&mut out, b"IDAT", &zlib(&raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    /// Appends `len` bits of `v`, least significant first.
    fn put(&mut self, v: u32, len: u32) {
        self.acc |= (v as u64) << self.n;
        self.n += len;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// Appends a Huffman code (most significant bit first).
    fn code(&mut self, code: u32, len: u32) {
        let rev = code.reverse_bits() >> (32 - len);
        self.put(rev, len);
    }

    fn literal(&mut self, v: u32) {
        match v {
            0..=143 => self.code(0x30 + v, 8),
            144..=255 => self.code(0x190 + v - 144, 9),
            256..=279 => self.code(v - 256, 7),
            _ => self.code(0xc0 + v - 280, 8),
        }
    }
}

const LEN_BASE: [u32; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195,
    227, 258,
];
const LEN_EXTRA: [u32; 29] =
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];

/// zlib stream: one fixed-Huffman deflate block whose only matches repeat the previous byte.
fn zlib(data: &[u8]) -> Vec<u8> {
    let mut b = Bits { out: vec![0x78, 0x01], acc: 0, n: 0 };
    b.put(1, 1); // final block
    b.put(1, 2); // fixed Huffman
    let mut i = 0;
    while i < data.len() {
        let mut run = 0;
        if i > 0 {
            while run < 258 && i + run < data.len() && data[i + run] == data[i - 1] {
                run += 1;
            }
        }
        if run >= 3 {
            let k = LEN_BASE.iter().rposition(|l| *l as usize <= run).expect("run >= 3");
            b.literal(257 + k as u32);
            b.put(run as u32 - LEN_BASE[k], LEN_EXTRA[k]);
            b.code(0, 5); // distance 1
            i += run;
        } else {
            b.literal(data[i] as u32);
            i += 1;
        }
    }
    b.literal(256);
    if b.n > 0 {
        b.out.push(b.acc as u8);
    }
    let (mut s1, mut s2) = (1u32, 0u32);
    for &x in data {
        s1 = (s1 + x as u32) % 65521;
        s2 = (s2 + s1) % 65521;
    }
    b.out.extend_from_slice(&((s2 << 16) | s1).to_be_bytes());
    b.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_and_adler_match_the_reference_values() {
        assert_eq!(crc32(&[b"123456789"]), 0xcbf4_3926);
        let z = zlib(b"Wikipedia");
        assert_eq!(&z[z.len() - 4..], &0x11E6_0398u32.to_be_bytes());
    }

    #[test]
    fn a_chart_renders_to_a_small_deterministic_png() {
        let chart = Chart {
            title: "test".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            log_y: true,
            series: vec![Series {
                label: "a".into(),
                colour: 0,
                style: Style::Line,
                points: vec![(0.0, 1.0), (1.0, 0.1), (2.0, 0.0)],
            }],
        };
        let a = render_png(&chart);
        assert_eq!(a, render_png(&chart));
        assert_eq!(&a[..8], b"\x89PNG\r\n\x1a\n");
        assert!(a.len() < 60_000, "{} bytes", a.len());
    }
}
