//! JSON values printed as RabbitMQ prints them in its error texts: Erlang's `~p` of the
//! term its JSON decoder makes (strings are binaries, objects are maps, `null` is an atom).
//! The texts of policy and limit validation embed such terms, and clients show them.
//!
//! Erlang breaks `~p` output into lines past 80 columns; this does not (the texts Warren
//! produces are one line where RabbitMQ's long ones wrap).

use serde_json::Value;

/// `value` as Erlang's `~p` prints it.
pub fn format(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// A key and its value as the tuple `{<<"key">>,Value}`.
pub fn format_pair(key: &str, value: &Value) -> String {
    let mut out = String::from("{");
    write_binary(&mut out, key);
    out.push(',');
    write_value(&mut out, value);
    out.push('}');
    out
}

/// A list of key and value tuples, `[{<<"a">>,1},{<<"b">>,2}]`.
pub fn format_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a Value)>) -> String {
    let items: Vec<String> = pairs.into_iter().map(|(key, value)| format_pair(key, value)).collect();
    format!("[{}]", items.join(","))
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => write_binary(out, text),
        Value::Array(items) => write_list(out, items),
        Value::Object(map) => {
            // Erlang prints a map's keys in term order; binaries compare bytewise.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("#{");
            for (index, key) in keys.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_binary(out, key);
                out.push_str(" => ");
                write_value(out, &map[key.as_str()]);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, number: &serde_json::Number) {
    if number.is_f64() {
        let float = number.as_f64().unwrap_or_default();
        // Erlang always prints a float with a fraction: 2.0, 1.5.
        if float.fract() == 0.0 && float.abs() < 1e16 {
            out.push_str(&format!("{float:.1}"));
        } else {
            out.push_str(&format!("{float}"));
        }
    } else {
        out.push_str(&number.to_string());
    }
}

/// A list whose items are all printable character codes is printed as a string.
fn write_list(out: &mut String, items: &[Value]) {
    let printable = !items.is_empty()
        && items.iter().all(|item| item.as_u64().is_some_and(|code| (32..127).contains(&code)));
    if printable {
        out.push('"');
        for item in items {
            let code = item.as_u64().and_then(|code| char::from_u32(code as u32)).unwrap_or('?');
            push_escaped(out, code);
        }
        out.push('"');
        return;
    }
    out.push('[');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_value(out, item);
    }
    out.push(']');
}

fn write_binary(out: &mut String, text: &str) {
    out.push_str("<<\"");
    for c in text.chars() {
        push_escaped(out, c);
    }
    out.push('"');
    if !text.is_ascii() {
        out.push_str("/utf8");
    }
    out.push_str(">>");
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if (c as u32) < 32 => out.push_str(&format!("\\{:o}", c as u32)),
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn prints_terms_as_erlang_does() {
        assert_eq!(format(&json!("abc")), "<<\"abc\">>");
        assert_eq!(format(&json!("é")), "<<\"é\"/utf8>>");
        assert_eq!(format(&json!(12)), "12");
        assert_eq!(format(&json!(-3)), "-3");
        assert_eq!(format(&json!(1.5)), "1.5");
        assert_eq!(format(&json!(2.0)), "2.0");
        assert_eq!(format(&json!(true)), "true");
        assert_eq!(format(&json!(null)), "null");
        assert_eq!(format(&json!([1000, "a"])), "[1000,<<\"a\">>]");
        assert_eq!(format(&json!([104, 105])), "\"hi\"");
        assert_eq!(format(&json!([])), "[]");
        assert_eq!(format(&json!({"b": 1, "a": "x"})), "#{<<\"a\">> => <<\"x\">>,<<\"b\">> => 1}");
        assert_eq!(format(&json!("q\"\\")), "<<\"q\\\"\\\\\">>");
    }

    #[test]
    fn prints_pairs_as_a_proplist() {
        let (foo, one) = (json!("bar"), json!(1));
        assert_eq!(format_pairs([("foo", &foo), ("x", &one)]), "[{<<\"foo\">>,<<\"bar\">>},{<<\"x\">>,1}]");
    }
}
