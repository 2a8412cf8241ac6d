//! Why a node is stale, in words short enough to read: changed params as
//! `path: old -> new` with long values cut, arrays compared element by
//! element, and per-input changes counted by the stage that produced them.

use serde_json::Value;

/// Longest value shown in a reason; longer ones are cut with `…`.
const MAX_VALUE: usize = 40;

/// Human-readable differences between two param trees, as `path: old -> new`.
pub fn param_changes(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_into("", old, new, &mut out);
    out
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn diff_into(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = join(path, k);
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_into(&p, x, y, out),
                    (None, Some(y)) => out.push(format!("{p}: (unset) -> {}", show(y))),
                    (Some(x), None) => out.push(format!("{p}: {} -> (unset)", show(x))),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_into(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            let p = if path.is_empty() { "params" } else { path };
            out.push(format!("{p}: {} items -> {}", a.len(), b.len()));
        }
        (a, b) if a != b => out.push(format!(
            "{}: {} -> {}",
            if path.is_empty() { "params" } else { path },
            show(a),
            show(b)
        )),
        _ => {}
    }
}

/// A leaf for people: an f32 setting (stored widened to f64, e.g.
/// 0.00009999999747378752) prints as the f32 it was (0.0001); long values
/// are cut.
fn show(v: &Value) -> String {
    let s = match v.as_f64() {
        Some(x) if v.is_f64() && f64::from(x as f32) == x => format!("{}", x as f32),
        _ => v.to_string(),
    };
    shorten(&s, MAX_VALUE)
}

/// `s` cut to at most `max` characters, ending in `…` when cut.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn widened_f32_settings_print_as_written() {
        let old = json!({ "lr": 1e-4f32, "epochs": 200, "gain": 0.1 });
        let new = json!({ "lr": 3e-4f32, "epochs": 300, "gain": 0.2 });
        assert_eq!(
            param_changes(&old, &new),
            [
                "epochs: 200 -> 300",
                "gain: 0.1 -> 0.2",
                "lr: 0.0001 -> 0.0003"
            ]
        );
    }

    #[test]
    fn param_changes_name_the_changed_leaf() {
        let old = json!({"quality": "high", "rate": 24000, "nested": {"a": 1}});
        let new = json!({"quality": "fast", "rate": 24000, "nested": {"a": 2, "b": true}});
        assert_eq!(
            param_changes(&old, &new),
            vec![
                "nested.a: 1 -> 2".to_string(),
                "nested.b: (unset) -> true".to_string(),
                "quality: \"high\" -> \"fast\"".to_string(),
            ]
        );
        assert!(param_changes(&old, &old).is_empty());
    }

    #[test]
    fn arrays_diff_by_element_and_long_values_are_cut() {
        // One description edited in a list of 18 experiments: one short line,
        // not the whole array twice.
        let exp = |d: &str| json!({"id": "A1", "description": d, "features": "raw"});
        let mut a: Vec<Value> = (0..18).map(|_| exp("same")).collect();
        let b = a.clone();
        a[3] = exp(&"a long description of an experiment ".repeat(4));
        let changes = param_changes(&json!({ "experiments": a }), &json!({ "experiments": b }));
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(
            changes[0].starts_with("experiments[3].description: \"a long"),
            "{changes:?}"
        );
        assert!(
            changes[0].contains("…\" -> \"same\"") || changes[0].contains("… -> \"same\""),
            "{changes:?}"
        );
        assert!(changes[0].len() < 120, "{}", changes[0]);
        let grown = param_changes(&json!({"e": [1, 2]}), &json!({"e": [1, 2, 3]}));
        assert_eq!(grown, ["e: 2 items -> 3"]);
    }
}
