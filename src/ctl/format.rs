//! Output as rabbitmqctl prints it: tab-separated rows under a header line, or
//! `--formatter json`, an array of one object per row with the chosen columns in order.

use serde_json::Value;

use super::columns::Source;

/// How rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// `--formatter json`.
    pub json: bool,
    /// Print the header line (not with `--no-table-headers` or `--quiet`).
    pub headers: bool,
}

/// The value of one column of one API object.
pub fn cell(object: &Value, source: Source) -> Value {
    match source {
        Source::Constant(text) => Value::String(text.to_owned()),
        Source::Field(path) => {
            let mut value = object;
            for part in path.split('.') {
                match value.get(part) {
                    Some(inner) => value = inner,
                    None => return Value::Null,
                }
            }
            value.clone()
        }
    }
}

/// A value as rabbitmqctl's table shows it: text bare, `null` empty, lists of text as
/// `[a, b]`, tables (arguments) as `[{"key",value}]`, anything else as compact JSON.
pub fn table_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let texts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            format!("[{}]", texts.join(", "))
        }
        Value::Array(_) => value.to_string(),
        Value::Object(map) => {
            let pairs: Vec<String> =
                map.iter().map(|(key, v)| format!("{{{},{v}}}", Value::String(key.clone()))).collect();
            format!("[{}]", pairs.join(", "))
        }
    }
}

/// The rows of a listing, printed in `style`: empty lists print nothing in a table (no
/// header either, as rabbitmqctl) and `[]` in JSON.
pub fn render(objects: &[Value], columns: &[(&'static str, Source)], style: Style) -> String {
    let mut out = String::new();
    if style.json {
        out.push_str("[\n");
        let rows: Vec<String> = objects.iter().map(|object| json_row(object, columns)).collect();
        out.push_str(&rows.join(",\n"));
        if !rows.is_empty() {
            out.push('\n');
        }
        out.push_str("]\n");
        return out;
    }
    if objects.is_empty() {
        return out;
    }
    if style.headers {
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        out.push_str(&names.join("\t"));
        out.push('\n');
    }
    for object in objects {
        let cells: Vec<String> = columns
            .iter()
            .map(|(name, source)| {
                let value = cell(object, *source);
                // A policy's definition prints as the JSON it was set from.
                if *name == "definition" && value.is_object() {
                    value.to_string()
                } else {
                    table_text(&value)
                }
            })
            .collect();
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    out
}

/// One object with the columns in their order (serde_json's map would sort them).
fn json_row(object: &Value, columns: &[(&'static str, Source)]) -> String {
    let fields: Vec<String> = columns
        .iter()
        .map(|(name, source)| format!("{}:{}", Value::String((*name).to_owned()), cell(object, *source)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn queue() -> Value {
        json!({"name": "q1", "messages": 3, "durable": true, "policy": null,
               "arguments": {"x-max-length": 10}, "consumer_details": [],
               "channel_details": {"name": "c (1)"}})
    }

    #[test]
    fn cells_follow_dotted_paths_and_constants() {
        assert_eq!(cell(&queue(), Source::Field("channel_details.name")), json!("c (1)"));
        assert_eq!(cell(&queue(), Source::Field("missing.deep")), Value::Null);
        assert_eq!(cell(&queue(), Source::Constant("exchange")), json!("exchange"));
    }

    #[test]
    fn table_values_look_like_rabbitmqctl() {
        assert_eq!(table_text(&json!(null)), "");
        assert_eq!(table_text(&json!("q1")), "q1");
        assert_eq!(table_text(&json!(true)), "true");
        assert_eq!(table_text(&json!(["administrator", "monitoring"])), "[administrator, monitoring]");
        assert_eq!(table_text(&json!({"x-max-length": 10})), r#"[{"x-max-length",10}]"#);
        assert_eq!(table_text(&json!({})), "[]");
    }

    #[test]
    fn tables_have_a_header_unless_asked_not_to() {
        let columns = [("name", Source::Field("name")), ("messages", Source::Field("messages"))];
        let rows = [queue()];
        let table = Style { json: false, headers: true };
        assert_eq!(render(&rows, &columns, table), "name\tmessages\nq1\t3\n");
        let bare = Style { json: false, headers: false };
        assert_eq!(render(&rows, &columns, bare), "q1\t3\n");
        assert_eq!(render(&[], &columns, table), "");
        let policy = serde_json::json!({"name": "lim", "definition": {"max-length": 5}});
        let columns = [("name", Source::Field("name")), ("definition", Source::Field("definition"))];
        assert_eq!(render(&[policy], &columns, bare), "lim\t{\"max-length\":5}\n");
    }

    #[test]
    fn json_rows_keep_column_order() {
        let columns = [
            ("name", Source::Field("name")),
            ("durable", Source::Field("durable")),
            ("arguments", Source::Field("arguments")),
        ];
        let json = Style { json: true, headers: true };
        assert_eq!(
            render(&[queue()], &columns, json),
            "[\n{\"name\":\"q1\",\"durable\":true,\"arguments\":{\"x-max-length\":10}}\n]\n"
        );
        assert_eq!(render(&[], &columns, json), "[\n]\n");
    }
}
