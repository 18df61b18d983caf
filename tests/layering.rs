//! The layer order of `src/`, checked on every run (docs/architecture.md draws it):
//!
//! ```text
//! main → server → gateways (amqp, management) → broker → queue → log
//!                                  beneath all: wire, limits, seq_map
//! ```
//!
//! A module may use any layer below its own and nothing above or beside it: no gateway uses
//! another gateway, `queue` never uses `broker`, `log` uses nothing but `limits` and
//! `seq_map`, the wire layer nothing but `limits`. `config` serves `server` and `main` and is
//! used by nobody else; `bench` uses only the wire layer and `limits`, and only `main` uses it;
//! the same holds for `ctl`.
//!
//! Every `crate::` (and `$crate::`) path in `src/` is read, group imports such as
//! `crate::{log, queue::Message}` included, and `super::` paths that climb out of a layer's
//! top module are resolved to the layer they reach. Comments are skipped: a doc link is not a
//! dependency.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers a module of `from` may name (its own layer is always allowed).
fn allowed(from: &str) -> &'static [&'static str] {
    const BENEATH: [&str; 3] = ["wire", "limits", "seq_map"];
    match from {
        "main" => &["server", "bench", "ctl", "config", "limits"],
        "server" => &["config", "amqp", "management", "broker", "queue", "log", "wire", "limits", "seq_map"],
        // The gateways: each on its own, none using another.
        "amqp" | "management" => &["broker", "queue", "log", "wire", "limits", "seq_map"],
        "broker" => &["queue", "log", "wire", "limits", "seq_map"],
        "queue" => &["log", "wire", "limits", "seq_map"],
        "log" => &["limits", "seq_map"],
        "config" => &["log", "limits"],
        "bench" => &["wire", "limits"],
        "ctl" => &["wire", "limits"],
        "wire" | "seq_map" => &["limits"],
        "limits" => &[],
        _ => &BENEATH,
    }
}

/// One import that breaks the layer order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    file: String,
    line: usize,
    from: String,
    to: String,
}

/// The module path of a file under `src/`: `broker/exchange/mod.rs` → `[broker, exchange]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" && stem != "lib" && stem != "main" {
            parts.push(stem.to_owned());
        } else if stem == "main" && parts.is_empty() {
            parts.push("main".to_owned());
        }
    }
    parts
}

/// The code of a line without its `//` comment (string literals in `src/` hold no `//`
/// that matters here).
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |at| &line[..at])
}

fn identifier(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

/// The first segments named after `crate::` at the start of `rest`: one for a plain path,
/// each item's first segment for a `{...}` group.
fn first_segments(rest: &str) -> Vec<String> {
    let Some(group) = rest.strip_prefix('{') else {
        return vec![identifier(rest).to_owned()];
    };
    let mut segments = Vec::new();
    let mut depth = 0usize;
    let mut item_start = true;
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => item_start = true,
            c if item_start && (c.is_alphanumeric() || c == '_') => {
                segments.push(identifier(&group[at..]).to_owned());
                item_start = false;
            }
            _ => {}
        }
    }
    segments
}

/// The top-level layers one line of `file` (module path `module`) names.
fn named_layers(line: &str, module: &[String], binary: bool) -> BTreeSet<String> {
    let line = code(line);
    let mut layers = BTreeSet::new();
    let root = if binary { "warren::" } else { "crate::" };
    for (at, _) in line.match_indices(root) {
        let before = line[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        layers.extend(first_segments(&line[at + root.len()..]));
    }
    // `super::` from a layer's top module (or `super::super::` from deeper) reaches the root.
    for (at, _) in line.match_indices("super::") {
        let before = line[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut rest = &line[at..];
        let mut depth = module.len();
        while let Some(after) = rest.strip_prefix("super::") {
            depth = depth.saturating_sub(1);
            rest = after;
        }
        if depth == 0 {
            layers.extend(first_segments(rest));
        }
    }
    layers.retain(|layer| !layer.is_empty() && layer != "self");
    layers
}

/// Every import in `source` (the file at `relative` under `src/`) that breaks the order.
fn check_file(relative: &Path, source: &str) -> Vec<Violation> {
    let module = module_path(relative);
    let Some(from) = module.first().cloned() else {
        return Vec::new(); // lib.rs: declarations only
    };
    let binary = from == "main";
    let mut violations = Vec::new();
    // Inline modules (`mod tests { ... }`) nest one level deeper for `super::`: the brace
    // depth at which each one opened.
    let mut inline_modules: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut path = module.clone();
    for (index, line) in source.lines().enumerate() {
        let code = code(line);
        let opens_module =
            code.trim_start().trim_start_matches("pub ").starts_with("mod ") && code.contains('{');
        if opens_module {
            inline_modules.push(depth);
            path.push(
                identifier(code.trim_start().trim_start_matches("pub ").trim_start_matches("mod "))
                    .to_owned(),
            );
        }
        depth += code.matches('{').count();
        depth = depth.saturating_sub(code.matches('}').count());
        let layers = named_layers(line, &path, binary);
        while inline_modules.last().is_some_and(|&opened| depth <= opened) {
            inline_modules.pop();
            path.pop();
        }
        for to in layers {
            let uses_config = to == "config" && !matches!(from.as_str(), "server" | "main" | "config");
            let uses_bench = to == "bench" && !matches!(from.as_str(), "main" | "bench");
            let uses_ctl = to == "ctl" && !matches!(from.as_str(), "main" | "ctl");
            if to != from && (!allowed(&from).contains(&to.as_str()) || uses_config || uses_bench || uses_ctl)
            {
                violations.push(Violation {
                    file: relative.display().to_string(),
                    line: index + 1,
                    from: from.clone(),
                    to,
                });
            }
        }
    }
    violations
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("src/ is readable").flatten().collect();
    entries.sort_by_key(|entry| entry.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_import_in_src_runs_down_the_layer_order() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "found only {} files under {}", files.len(), src.display());
    let mut violations = Vec::new();
    for path in &files {
        let source = std::fs::read_to_string(path).expect("source is UTF-8");
        violations.extend(check_file(path.strip_prefix(&src).expect("under src"), &source));
    }
    let report: Vec<String> = violations
        .iter()
        .map(|v| format!("src/{}:{}: `{}` uses `{}`", v.file, v.line, v.from, v.to))
        .collect();
    assert!(report.is_empty(), "imports against the layer order:\n{}", report.join("\n"));
}

#[test]
fn the_checker_catches_each_kind_of_wrong_edge() {
    let wrong = [
        ("queue/classic.rs", "use crate::broker::Broker;", "broker"),
        ("log/writer.rs", "use crate::wire::amqp::FieldTable;", "wire"),
        ("log/writer.rs", "let x = crate::queue::message::Message::default();", "queue"),
        ("wire/amqp/frame.rs", "use crate::log::now_ms;", "log"),
        ("amqp/channel/mod.rs", "use crate::management::Api;", "management"),
        ("broker/mod.rs", "use crate::{limits, amqp::reply::Reply};", "amqp"),
        ("broker/mod.rs", "use super::server::Server;", "server"),
        ("broker/exchange/mod.rs", "use super::super::amqp::Connection;", "amqp"),
        ("bench/run.rs", "use crate::broker::Broker;", "broker"),
        ("broker/mod.rs", "use crate::config::Config;", "config"),
        ("server/mod.rs", "use crate::bench::BenchArgs;", "bench"),
        ("ctl/commands.rs", "use crate::broker::Broker;", "broker"),
        ("management/mod.rs", "use crate::ctl::CtlArgs;", "ctl"),
        ("main.rs", "use warren::log::Log;", "log"),
        ("queue/mod.rs", "mod tests {\n    use super::super::broker::Broker;\n}", "broker"),
        ("queue/mod.rs", "mod tests {\n}\nuse super::broker::Broker;", "broker"),
    ];
    for (file, line, to) in wrong {
        let found = check_file(Path::new(file), line);
        assert_eq!(found.len(), 1, "{file}: `{line}` should be one violation, found {found:?}");
        assert_eq!(found[0].to, to, "{file}: `{line}`");
    }
    let right = [
        ("amqp/connection.rs", "use crate::broker::{Broker, ConnectionId};"),
        ("amqp/channel/mod.rs", "use super::reply::Reply; // crate::server in a comment"),
        ("queue/classic.rs", "use crate::{log::Log, limits, seq_map::SeqMap, wire::amqp::ShortStr};"),
        ("broker/exchange/mod.rs", "use super::Broker;"),
        ("bench/run.rs", "use crate::wire::amqp::Frame;"),
        ("ctl/http.rs", "use crate::limits;"),
        ("server/mod.rs", "use crate::config::Config;"),
        ("wire/amqp/macros.rs", "impl $crate::wire::amqp::primitives::MethodArgs for X {}"),
        ("main.rs", "use warren::config::Config;"),
        ("seq_map.rs", "mod tests {\n    use super::SeqMap;\n}"),
        ("broker/mod.rs", "#[cfg(test)]\nmod tests {\n    use super::super::limits::X;\n}"),
    ];
    for (file, line) in right {
        assert_eq!(check_file(Path::new(file), line), Vec::new(), "{file}: `{line}`");
    }
}
