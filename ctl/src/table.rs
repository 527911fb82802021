//! Boxed text tables, as calicoctl prints them.

/// Renders `rows` under `header` with `+---+` borders; columns are as wide
/// as their widest cell.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = {
        let parts: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        format!("+{}+\n", parts.join("+"))
    };
    let fmt_row = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c:<w$} "))
            .collect();
        format!("|{}|\n", parts.join("|"))
    };
    let mut out = line.clone();
    out += &fmt_row(header.iter().map(|h| h.to_string()).collect());
    out += &line;
    for row in rows {
        out += &fmt_row(row.clone());
    }
    out += &line;
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_fit_their_widest_cell() {
        let t = super::render(
            &["PEER ADDRESS", "STATE"],
            &[vec!["172.30.1.12".into(), "up".into()]],
        );
        assert_eq!(
            t,
            "+--------------+-------+\n\
             | PEER ADDRESS | STATE |\n\
             +--------------+-------+\n\
             | 172.30.1.12  | up    |\n\
             +--------------+-------+\n"
        );
    }
}
