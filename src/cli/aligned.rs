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
            .map(|(i, (c, &w))| match align(i) {
                Align::Left => format!("{c:<w$}"),
                Align::Right => format!("{c:>w$}"),
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
}
