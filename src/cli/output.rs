//! Printing: plain tables (coloured only on a terminal), sizes, and JSON.

use std::io::IsTerminal;

use comfy_table::{Attribute, Cell, CellAlignment, Color, Table, presets};

/// Whether to colour standard output: a terminal, and no `NO_COLOR` in the environment.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A borderless table with a bold header, as `machinectl list` prints.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    if !colour() {
        t.force_no_tty();
    }
    // Styles cover the text only, so padding stays plain and line ends can be trimmed.
    t.style_text_only();
    t.set_header(
        header
            .iter()
            .map(|h| Cell::new(h).add_attribute(Attribute::Bold)),
    );
    t
}

/// Right-align the columns at `indices` (numbers).
pub fn align_right(t: &mut Table, indices: &[usize]) {
    for &i in indices {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// Print a table with two spaces between columns and none at the line ends.
pub fn print_table(t: &mut Table) {
    for col in t.column_iter_mut() {
        col.set_padding((0, 2));
    }
    for line in t.lines() {
        println!("{}", line.trim_end());
    }
}

/// A domain state, coloured by what it means.
pub fn state_cell(state: &str) -> Cell {
    let c = Cell::new(state);
    match state {
        "running" => c.fg(Color::Green),
        "paused" | "pmsuspended" | "blocked" | "shutdown" => c.fg(Color::Yellow),
        "crashed" => c.fg(Color::Red),
        _ => c,
    }
}

/// KiB as a person reads them: "512 MiB", "1.5 GiB".
pub fn kib(kib: u64) -> String {
    bytes(kib.saturating_mul(1024))
}

pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let one = format!("{v:.1}");
    match one.strip_suffix(".0") {
        Some(whole) => format!("{whole} {}", UNITS[unit]),
        None if unit == 0 => format!("{v:.0} {}", UNITS[unit]),
        None => format!("{one} {}", UNITS[unit]),
    }
}

pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Print a JSON value, pretty, on one document.
pub fn json(v: &serde_json::Value) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("virtbusctl: cannot encode JSON: {e}"),
    }
}

/// A D-Bus value as JSON (numbers, strings, booleans, arrays, dictionaries).
pub fn value_json(v: &zbus::zvariant::Variant<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    use zbus::Variant as V;
    match v {
        V::U8(n) => J::from(*n),
        V::Bool(b) => J::from(*b),
        V::I16(n) => J::from(*n),
        V::U16(n) => J::from(*n),
        V::I32(n) => J::from(*n),
        V::U32(n) => J::from(*n),
        V::I64(n) => J::from(*n),
        V::U64(n) => J::from(*n),
        V::F64(n) => J::from(*n),
        V::Str(s) => J::from(s.as_str()),
        V::Signature(s) => J::from(s.to_string()),
        V::ObjectPath(p) => J::from(p.as_str()),
        V::Variant(v) => value_json(v),
        V::Array(a) => J::Array(a.iter().map(value_json).collect()),
        V::Dict(d) => {
            let mut m = serde_json::Map::new();
            for (k, v) in d.iter() {
                let key = match value_json(k) {
                    J::String(s) => s,
                    other => other.to_string(),
                };
                m.insert(key, value_json(v));
            }
            J::Object(m)
        }
        V::Structure(s) => J::Array(s.fields().iter().map(value_json).collect()),
        #[allow(unreachable_patterns)]
        _ => J::Null,
    }
}

/// "1 domain", "2 domains".
pub fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// An object's name and its fields, right-aligned at the colon, as `status` prints them.
pub fn fields(title: &str, rows: &[(&str, String)]) {
    println!("{title}");
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("  {k:>width$}: {v}");
    }
}

/// Print XML as it came, ending in one newline, or `{xml}` with `--json`.
pub fn xml(json: bool, xml: &str) {
    if json {
        self::json(&serde_json::json!({ "xml": xml }));
    } else {
        print!("{xml}");
        if !xml.ends_with('\n') {
            println!();
        }
    }
}
