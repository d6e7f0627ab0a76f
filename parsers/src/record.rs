//! The unit a parser hands on: one record of the source file, with the line it started on.

/// One record of a source file as text cells, with the physical line number where it starts.
///
/// A record is reusable: parsers fill an existing `Record` in place so that a file of any size
/// is read without allocating per row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    row_number: u64,
    text: String,
    ends: Vec<usize>,
}

impl Record {
    /// An empty record, ready to be filled by a parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a record from its cells; meant for tests and for callers that already hold cells.
    pub fn from_cells<I, S>(row_number: u64, cells: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut record = Self::new();
        record.clear(row_number);
        for cell in cells {
            record.push_cell(cell.as_ref());
        }
        record
    }

    /// The physical line (1-based) in the source file where this record starts.
    pub fn row_number(&self) -> u64 {
        self.row_number
    }

    /// Empties the record and sets the line it starts on.
    pub fn clear(&mut self, row_number: u64) {
        self.row_number = row_number;
        self.text.clear();
        self.ends.clear();
    }

    /// Appends one cell.
    pub fn push_cell(&mut self, cell: &str) {
        self.text.push_str(cell);
        self.ends.push(self.text.len());
    }

    /// Replaces the content with cells given as one text and the end offset of each cell.
    ///
    /// The caller guarantees that the ends are non-decreasing char boundaries of `text`.
    pub(crate) fn fill(&mut self, row_number: u64, text: &str, ends: &[usize]) {
        self.row_number = row_number;
        self.text.clear();
        self.text.push_str(text);
        self.ends.clear();
        self.ends.extend_from_slice(ends);
    }

    /// The number of cells.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the record has no cells at all.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The cell at `index` (0-based), if the record has that many cells.
    pub fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)?;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        self.text.get(start..end)
    }

    /// The cells in order.
    pub fn cells(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_come_back_in_order_and_out_of_range_is_none() {
        let record = Record::from_cells(7, ["a", "", "ccc"]);
        assert_eq!(record.row_number(), 7);
        assert_eq!(record.len(), 3);
        assert_eq!(record.cells().collect::<Vec<_>>(), vec!["a", "", "ccc"]);
        assert_eq!(record.get(3), None);
    }

    #[test]
    fn clearing_reuses_the_record() {
        let mut record = Record::from_cells(1, ["x", "y"]);
        record.clear(2);
        assert!(record.is_empty());
        record.push_cell("z");
        assert_eq!(record.get(0), Some("z"));
        assert_eq!(record.row_number(), 2);
    }
}
