//! The changes committed through the redo log since the last checkpoint, held in memory
//! above redb's file.
//!
//! A commit on the fast path writes its changes to the redo log only; they reach redb at the
//! next checkpoint, all at once, where an append and the settle that follows it become one
//! write. Until then readers see the file through this overlay: the overlay's value of a key
//! (or its removal) wins over the file's. It holds exactly the frames of the log's current
//! epoch, each key at its last value, so it is empty after every checkpoint.
//!
//! This is not a cache: the file never holds a value newer than the overlay's.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::StoreError;

/// One table's key and value as read: owned copies.
pub(super) type Row = (Vec<u8>, Vec<u8>);
/// A key and its new value (`None`: removed).
pub(super) type Overlaid = (Vec<u8>, Option<Vec<u8>>);

/// Changes since the last checkpoint, by table number and key; `None` is a removal.
#[derive(Debug, Default, Clone)]
pub(super) struct Overlay {
    changes: BTreeMap<(u8, Vec<u8>), Option<Vec<u8>>>,
    bytes: usize,
}

impl Overlay {
    /// Sets `key` of `table` to `value` (`None`: removed).
    pub(super) fn set(&mut self, table: u8, key: Vec<u8>, value: Option<Vec<u8>>) {
        let added = key.len() + value.as_ref().map_or(0, Vec::len);
        let key_len = key.len();
        if let Some(old) = self.changes.insert((table, key), value) {
            self.bytes -= key_len + old.map_or(0, |v| v.len());
        }
        self.bytes += added;
    }

    /// The overlay's word on `key` of `table`: `None` when it has none (read the file),
    /// `Some(None)` when the key is removed.
    pub(super) fn get(&self, table: u8, key: &[u8]) -> Option<Option<&[u8]>> {
        self.changes
            .get(&(table, key.to_vec()))
            .map(|v| v.as_deref())
    }

    /// Every change, in table and key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u8, &[u8], Option<&[u8]>)> {
        self.changes
            .iter()
            .map(|((table, key), value)| (*table, key.as_slice(), value.as_deref()))
    }

    /// A copy of the changes to `table` with keys from `start` (inclusive) to `end`
    /// (exclusive; `None`: to the table's end), in key order.
    pub(super) fn range(&self, table: u8, start: &[u8], end: Option<&[u8]>) -> Vec<Overlaid> {
        let upper = match end {
            Some(end) => Bound::Excluded((table, end.to_vec())),
            None => Bound::Excluded((table.saturating_add(1), Vec::new())),
        };
        self.changes
            .range((Bound::Included((table, start.to_vec())), upper))
            .map(|((_, key), value)| (key.clone(), value.clone()))
            .collect()
    }

    /// Roughly how much memory the changes take: keys and values.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Forgets every change: they are in the file now.
    pub(super) fn clear(&mut self) {
        self.changes.clear();
        self.bytes = 0;
    }
}

/// The rows of the file's `file` (in key order, ascending or, with `descending`, descending)
/// with `staged` (in ascending key order, as [`Overlay::range`] gives them) laid over them:
/// a staged value replaces the file's, a staged removal hides it, a staged new key is
/// added in its place.
pub(super) fn merge<I>(
    file: I,
    staged: Vec<Overlaid>,
    descending: bool,
) -> impl Iterator<Item = Result<Row, StoreError>>
where
    I: Iterator<Item = Result<Row, StoreError>>,
{
    let mut file = file.peekable();
    let mut staged: Box<dyn Iterator<Item = Overlaid>> = if descending {
        Box::new(staged.into_iter().rev())
    } else {
        Box::new(staged.into_iter())
    };
    let mut next_staged = staged.next();
    std::iter::from_fn(move || {
        loop {
            let file_key = match file.peek() {
                Some(Ok((key, _))) => Some(key.as_slice()),
                Some(Err(_)) => return file.next(),
                None => None,
            };
            let take_staged = match (&next_staged, file_key) {
                (None, None) => return None,
                (None, Some(_)) => false,
                (Some(_), None) => true,
                (Some((staged_key, _)), Some(file_key)) => {
                    let order = staged_key.as_slice().cmp(file_key);
                    if order == std::cmp::Ordering::Equal {
                        // The staged change replaces the file's row.
                        file.next();
                        true
                    } else {
                        (order == std::cmp::Ordering::Less) != descending
                    }
                }
            };
            if !take_staged {
                return file.next();
            }
            let (key, value) = next_staged.take()?;
            next_staged = staged.next();
            if let Some(value) = value {
                return Some(Ok((key, value)));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rows: &[(&str, &str)]) -> Vec<Result<Row, StoreError>> {
        rows.iter()
            .map(|(k, v)| Ok((k.as_bytes().to_vec(), v.as_bytes().to_vec())))
            .collect()
    }

    fn staged(rows: &[(&str, Option<&str>)]) -> Vec<Overlaid> {
        rows.iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
            .collect()
    }

    fn text(rows: impl Iterator<Item = Result<Row, StoreError>>) -> Vec<String> {
        rows.map(|r| {
            let (k, v) = r.expect("no error");
            format!(
                "{}={}",
                String::from_utf8_lossy(&k),
                String::from_utf8_lossy(&v)
            )
        })
        .collect()
    }

    #[test]
    fn staged_changes_replace_hide_and_add_rows_in_both_directions() {
        let on_file = [("b", "1"), ("c", "1"), ("e", "1")];
        let over = [
            ("a", Some("2")),
            ("c", None),
            ("d", Some("2")),
            ("e", Some("2")),
        ];
        let cases: [(bool, &[&str]); 2] = [
            (false, &["a=2", "b=1", "d=2", "e=2"]),
            (true, &["e=2", "d=2", "b=1", "a=2"]),
        ];
        for (descending, want) in cases {
            let mut rows = file(&on_file);
            if descending {
                rows.reverse();
            }
            let got = text(merge(rows.into_iter(), staged(&over), descending));
            assert_eq!(got, want, "descending: {descending}");
        }
    }

    #[test]
    fn a_merge_with_one_side_empty_is_the_other_side() {
        assert_eq!(
            text(merge(file(&[("a", "1")]).into_iter(), Vec::new(), false)),
            ["a=1"]
        );
        assert_eq!(
            text(merge(
                Vec::new().into_iter(),
                staged(&[("a", Some("2")), ("b", None)]),
                true
            )),
            ["a=2"]
        );
    }

    #[test]
    fn a_file_error_is_passed_on() {
        let rows = vec![Ok((b"a".to_vec(), b"1".to_vec())), Err(StoreError::Stopped)];
        let got: Vec<_> = merge(rows.into_iter(), staged(&[("b", Some("2"))]), false).collect();
        assert!(got[0].is_ok());
        assert!(matches!(got[1], Err(StoreError::Stopped)));
    }

    #[test]
    fn the_overlay_keeps_each_keys_last_change_by_table_and_counts_its_bytes() {
        let mut o = Overlay::default();
        o.set(1, b"k".to_vec(), Some(b"long value".to_vec()));
        o.set(2, b"k".to_vec(), Some(b"x".to_vec()));
        o.set(1, b"k".to_vec(), Some(b"v".to_vec()));
        o.set(1, b"m".to_vec(), None);
        assert_eq!(o.get(1, b"k"), Some(Some(b"v".as_slice())));
        assert_eq!(o.get(1, b"m"), Some(None));
        assert_eq!(o.get(1, b"z"), None);
        assert_eq!(o.bytes(), 2 + 2 + 1);
        assert_eq!(
            o.range(1, b"", None),
            staged(&[("k", Some("v")), ("m", None)])
        );
        assert_eq!(o.range(1, b"l", Some(b"n")), staged(&[("m", None)]));
        assert_eq!(o.iter().count(), 3);
        o.clear();
        assert_eq!(o.iter().count(), 0);
        assert_eq!(o.bytes(), 0);
    }
}
