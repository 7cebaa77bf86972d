//! Plain-text tables for the terminal: every column as wide as its widest cell (header
//! included), two spaces between columns, no trailing blanks.

/// How a column's cells sit in their width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    /// Numbers, so they compare at a glance.
    Right,
}

/// The header line, then one line per row. `align(i)` says how column `i` sits; a row shorter
/// than the header leaves its last columns empty.
pub fn aligned_lines<S: AsRef<str>>(header: &[S], rows: &[Vec<String>], align: impl Fn(usize) -> Align) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.as_ref().chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| {
                // Padded by hand: `format!("{c:<w$}")` panics on a width past u16::MAX, and a
                // cell (a worker id, a job name) may be that long.
                let pad = " ".repeat(w.saturating_sub(c.chars().count()));
                match align(i) {
                    Align::Left => format!("{c}{pad}"),
                    Align::Right => format!("{pad}{c}"),
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut lines = vec![line(&mut header.iter().map(|h| h.as_ref()))];
    lines.extend(rows.iter().map(|r| line(&mut r.iter().map(String::as_str))));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_take_their_widest_cell_and_numbers_align_right() {
        let rows = vec![vec!["a".to_string(), "7".to_string()], vec!["longer".to_string(), "1234".to_string()]];
        let lines = aligned_lines(&["NAME", "N"], &rows, |i| if i == 1 { Align::Right } else { Align::Left });
        assert_eq!(lines, ["NAME       N", "a          7", "longer  1234"]);
    }

    #[test]
    fn a_cell_past_65535_characters_is_shown_whole() {
        let long = "w".repeat(70_000);
        let rows = vec![vec![long.clone(), "1".to_string()], vec!["a".to_string(), "22".to_string()]];
        let lines = aligned_lines(&["ID", "N"], &rows, |i| if i == 1 { Align::Right } else { Align::Left });
        assert_eq!(lines[1], format!("{long}   1"));
        assert_eq!(lines[2].len(), 70_000 + 4);
        assert!(lines[2].starts_with("a ") && lines[2].ends_with(" 22"));
    }
}
