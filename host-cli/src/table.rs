//! Plain-text tables for the terminal: right-aligned numbers, left-aligned first column.

pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: ToString>(header: &[S]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut width = vec![0; cols];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |r: &Vec<String>| {
            let cells: Vec<String> = r
                .iter()
                .zip(&width)
                .enumerate()
                .map(|(k, (c, &w))| if k == 0 { format!("{c:<w$}") } else { format!("{c:>w$}") })
                .collect();
            cells.join("  ").trim_end().to_string()
        };
        let mut out = line(&self.header) + "\n";
        out += &width.iter().map(|&w| "-".repeat(w)).collect::<Vec<_>>().join("  ");
        out += "\n";
        for r in &self.rows {
            out += &line(r);
            out += "\n";
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_columns() {
        let mut t = super::Table::new(&["layer", "cycles"]);
        t.row(vec!["a".into(), "12345".into()]);
        t.row(vec!["long name".into(), "7".into()]);
        assert_eq!(t.render(), "layer      cycles\n---------  ------\na           12345\nlong name       7\n");
    }
}
