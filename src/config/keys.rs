//! Where each key of a `pipeline.toml` is: its full dotted path
//! (`dataset.folds.k`) and its own line. Config errors name both, whether
//! they come from deserialising (a wrong type, an unknown key: located by
//! the error's byte span) or from validation afterwards (located by the key
//! path their message starts with).

use std::collections::BTreeMap;
use std::ops::Range;
use toml::de::{DeTable, DeValue};

/// One key of the document.
struct Key {
    path: String,
    /// Byte span of the key itself and of its value.
    key: Range<usize>,
    value: Range<usize>,
    /// A table (`[header]` or inline): shown by its path alone.
    table: bool,
}

pub struct KeyLines<'a> {
    text: &'a str,
    /// In document walk order: parents before children.
    keys: Vec<Key>,
    by_path: BTreeMap<String, usize>,
}

impl<'a> KeyLines<'a> {
    /// Indexes `text`; a document that does not parse indexes nothing (the
    /// deserialiser then reports the syntax error with its own line).
    pub fn new(text: &'a str) -> Self {
        let mut keys = Vec::new();
        if let Ok(doc) = DeTable::parse(text) {
            walk(doc.get_ref(), "", &mut keys);
        }
        let by_path = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.path.clone(), i))
            .collect();
        KeyLines {
            text,
            keys,
            by_path,
        }
    }

    /// 1-based line of byte offset `at`.
    fn line_of(&self, at: usize) -> usize {
        let at = at.min(self.text.len());
        self.text.as_bytes()[..at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// Line of the key `path` (its `[table]` header for a table), if the file has it.
    pub fn line(&self, path: &str) -> Option<usize> {
        self.by_path
            .get(path)
            .map(|&i| self.line_of(self.keys[i].key.start))
    }

    /// The innermost key whose key or value span holds `span`.
    fn key_at(&self, span: &Range<usize>) -> Option<&Key> {
        let holds = |r: &Range<usize>| r.start <= span.start && span.end <= r.end.max(r.start + 1);
        self.keys
            .iter()
            .filter(|k| holds(&k.key) || holds(&k.value))
            .max_by_key(|k| k.path.matches('.').count())
    }

    /// A deserialisation error as `line N: path = value: message`.
    pub fn toml_error(&self, e: &toml::de::Error) -> anyhow::Error {
        let msg = e.message().trim_end();
        // A message that names its key path (our own `try_from` checks) is
        // placed at that key.
        if let Some(located) = self.locate(msg) {
            return anyhow::anyhow!("{located}");
        }
        let Some(span) = e.span() else {
            return anyhow::anyhow!("{e}");
        };
        match self.error_key(e) {
            Some((_, shown)) => {
                anyhow::anyhow!("line {}: {shown}: {msg}", self.line_of(span.start))
            }
            None => anyhow::anyhow!("line {}: {msg}", self.line_of(span.start)),
        }
    }

    /// The key a deserialisation error is at: its path, and how to show it
    /// (`path = value` for a short value the error is about, else the path).
    pub fn error_key(&self, e: &toml::de::Error) -> Option<(String, String)> {
        let span = e.span()?;
        let k = self.key_at(&span)?;
        let value = self.text.get(k.value.clone()).unwrap_or("").trim();
        let shown = if !k.table && k.value == span && !value.contains('\n') && value.len() <= 60 {
            format!("{} = {value}", k.path)
        } else {
            k.path.clone()
        };
        Some((k.path.clone(), shown))
    }

    /// `line N: message` if `message` starts with a key path of this file
    /// (or a path whose table is in it, for a key left out); else `None`.
    pub fn locate(&self, message: &str) -> Option<String> {
        let end = message.find([' ', ':', '=']).unwrap_or(message.len());
        let mut path = &message[..end];
        while !path.is_empty() {
            if let Some(line) = self.line(path) {
                return Some(format!("line {line}: {message}"));
            }
            path = &path[..path.rfind('.').unwrap_or(0)];
        }
        None
    }
}

fn walk(table: &DeTable<'_>, prefix: &str, out: &mut Vec<Key>) {
    for (k, v) in table.iter() {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        out.push(Key {
            path: path.clone(),
            key: k.span(),
            value: v.span(),
            table: matches!(v.get_ref(), DeValue::Table(_)),
        });
        match v.get_ref() {
            DeValue::Table(t) => walk(t, &path, out),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(t) = item.get_ref() {
                        walk(t, &format!("{path}.{i}"), out);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "data_dir = \"d\"\n\n[dataset]\nkind = \"x\"\n\n[dataset.folds]\nk = 3\n[experiments.B0]\nhead = { lr = 1 }\n";

    #[test]
    fn every_key_has_its_own_line() {
        let k = KeyLines::new(DOC);
        assert_eq!(k.line("data_dir"), Some(1));
        assert_eq!(k.line("dataset"), Some(3));
        assert_eq!(k.line("dataset.kind"), Some(4));
        assert_eq!(k.line("dataset.folds"), Some(6));
        assert_eq!(k.line("dataset.folds.k"), Some(7));
        assert_eq!(k.line("experiments.B0.head.lr"), Some(9));
        assert_eq!(k.line("dataset.folds.seed"), None);
    }

    #[test]
    fn messages_are_placed_at_the_key_they_name() {
        let k = KeyLines::new(DOC);
        assert_eq!(
            k.locate("dataset.folds.k = 3: too many").as_deref(),
            Some("line 7: dataset.folds.k = 3: too many")
        );
        // A key left out is placed at its table.
        assert_eq!(
            k.locate("dataset.folds.seed: missing").as_deref(),
            Some("line 6: dataset.folds.seed: missing")
        );
        assert_eq!(k.locate("something else"), None);
    }
}
