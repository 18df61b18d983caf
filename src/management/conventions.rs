//! The list conventions every management list endpoint shares: filtering by `name`
//! (substring, or a regular expression with `use_regex=true`), `sort` and `sort_reverse`
//! on a dotted path, `page` / `page_size` with `pagination=true`, and `columns` picking
//! (dotted) fields. Pure functions over JSON values: no I/O, no broker.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::limits::HTTP_PAGE_SIZE_MAX;

/// A list query that cannot be answered: 400 with this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadQuery(pub String);

/// The value at a dotted `path` (`queue_totals.messages`) in `item`.
pub fn lookup<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(item, |value, key| value.get(key))
}

/// Keeps only the `columns` (comma-separated dotted paths) of `item`, nested as they were.
pub fn pick_columns(item: &Value, columns: &str) -> Value {
    let mut out = Map::new();
    for column in columns.split(',').filter(|c| !c.is_empty()) {
        if let Some(value) = lookup(item, column) {
            let keys: Vec<&str> = column.split('.').collect();
            insert_at(&mut out, &keys, value.clone());
        }
    }
    Value::Object(out)
}

/// Puts `value` at the path `keys` in `object`, creating the objects on the way.
fn insert_at(object: &mut Map<String, Value>, keys: &[&str], value: Value) {
    match keys {
        [] => {}
        [last] => {
            object.insert((*last).to_string(), value);
        }
        [first, rest @ ..] => {
            let entry = object.entry((*first).to_string()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(next) = entry {
                insert_at(next, rest, value);
            }
        }
    }
}

/// Orders two JSON values: numbers by value, strings by text, missing values first.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().unwrap_or(0.0).total_cmp(&y.as_f64().unwrap_or(0.0))
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
    }
}

/// Sorts by the dotted path `sort` (by `vhost` then `name` when none is given).
pub fn sort_items(items: &mut [Value], sort: Option<&str>, reverse: bool) {
    match sort.filter(|s| !s.is_empty()) {
        Some(path) => items.sort_by(|a, b| compare(lookup(a, path), lookup(b, path))),
        None => items.sort_by(|a, b| {
            compare(a.get("vhost"), b.get("vhost")).then_with(|| compare(a.get("name"), b.get("name")))
        }),
    }
    if reverse {
        items.reverse();
    }
}

/// Whether a name passes the `name` filter.
type NameMatcher = Box<dyn Fn(&str) -> bool>;

/// The query parameters of a list, parsed.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// `columns`.
    pub columns: Option<String>,
    /// `sort`.
    pub sort: Option<String>,
    /// `sort_reverse=true`.
    pub sort_reverse: bool,
    /// `pagination=true`, or `page` given.
    pub paginate: bool,
    /// `page` (from 1).
    pub page: usize,
    /// `page_size`.
    pub page_size: usize,
    /// `name` filter.
    pub name: Option<String>,
    /// `use_regex=true`.
    pub use_regex: bool,
}

impl ListQuery {
    /// Reads the conventions from query parameters.
    ///
    /// # Errors
    /// RabbitMQ's reasons for a page or page size that is not a positive integer or too large.
    pub fn parse(param: impl Fn(&str) -> Option<String>) -> Result<ListQuery, BadQuery> {
        let number = |key: &str, default: usize| -> Result<usize, BadQuery> {
            match param(key) {
                None => Ok(default),
                Some(text) => match text.parse::<usize>() {
                    Ok(n) if n >= 1 => Ok(n),
                    _ => Err(BadQuery(format!("{key} must be a positive integer"))),
                },
            }
        };
        let page = number("page", 1)?;
        let page_size = number("page_size", 100)?;
        if page_size > HTTP_PAGE_SIZE_MAX {
            return Err(BadQuery(format!("Page size cannot be greater than {HTTP_PAGE_SIZE_MAX}")));
        }
        let truthy = |key: &str| param(key).is_some_and(|v| v == "true");
        Ok(ListQuery {
            columns: param("columns").filter(|c| !c.is_empty()),
            sort: param("sort"),
            sort_reverse: truthy("sort_reverse"),
            paginate: truthy("pagination") || param("page").is_some(),
            page,
            page_size,
            name: param("name").filter(|n| !n.is_empty()),
            use_regex: truthy("use_regex"),
        })
    }

    /// [`ListQuery::apply`] over `entries` named `(vhost, name)`, building the JSON of only
    /// the entries the answer holds when it can: a page ordered by vhost and name (the
    /// default) or by name is cut from the names alone, so asking for the first 100 of
    /// 10,000 queues builds 100 objects. Any other order needs every object built.
    ///
    /// # Errors
    /// As [`ListQuery::apply`].
    pub fn apply_named<T>(
        &self,
        mut entries: Vec<(String, String, T)>,
        build: impl Fn(&T) -> Value,
    ) -> Result<Value, BadQuery> {
        let by_names = match self.sort.as_deref().filter(|s| !s.is_empty()) {
            None => Some(false),
            Some("name") => Some(true),
            Some(_) => None,
        };
        let Some(name_only) = by_names.filter(|_| self.paginate) else {
            return self.apply(entries.iter().map(|(_, _, entry)| build(entry)).collect());
        };
        let total_count = entries.len();
        if let Some(name) = &self.name {
            let matches = self.name_matcher(name)?;
            entries.retain(|(_, entry_name, _)| matches(entry_name));
        }
        if name_only {
            entries.sort_by(|a, b| a.1.cmp(&b.1));
        } else {
            entries.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        }
        if self.sort_reverse {
            entries.reverse();
        }
        self.page_of(entries, total_count, |(_, _, entry)| build(&entry))
    }

    /// The page object of `items`, already filtered and ordered (`total_count` before the
    /// filter), building and picking the columns of only the items on the page.
    fn page_of<T>(
        &self,
        items: Vec<T>,
        total_count: usize,
        build: impl Fn(T) -> Value,
    ) -> Result<Value, BadQuery> {
        let filtered_count = items.len();
        let page_count = filtered_count.div_ceil(self.page_size).max(1);
        if self.page > page_count {
            return Err(BadQuery("Page out of range".to_string()));
        }
        let page: Vec<Value> = items
            .into_iter()
            .skip((self.page - 1) * self.page_size)
            .take(self.page_size)
            .map(|item| self.pick(build(item)))
            .collect();
        Ok(serde_json::json!({
            "filtered_count": filtered_count,
            "item_count": page.len(),
            "page": self.page,
            "page_count": page_count,
            "page_size": self.page_size,
            "total_count": total_count,
            "items": page,
        }))
    }

    /// `item` with only the asked `columns`.
    fn pick(&self, item: Value) -> Value {
        match &self.columns {
            Some(columns) => pick_columns(&item, columns),
            None => item,
        }
    }

    /// The `name` filter: a case-insensitive substring, or a regular expression.
    fn name_matcher(&self, name: &str) -> Result<NameMatcher, BadQuery> {
        if self.use_regex {
            let regex = regex::Regex::new(name).map_err(|e| BadQuery(format!("invalid regex: {e}")))?;
            Ok(Box::new(move |text| regex.is_match(text)))
        } else {
            let needle = name.to_lowercase();
            Ok(Box::new(move |text| text.to_lowercase().contains(&needle)))
        }
    }

    /// Applies filter, sort, page and columns to `items`, giving the list or the page
    /// object.
    ///
    /// # Errors
    /// A bad regular expression, or a page past the last.
    pub fn apply(&self, mut items: Vec<Value>) -> Result<Value, BadQuery> {
        let total_count = items.len();
        if self.paginate {
            if let Some(name) = &self.name {
                let matches = self.name_matcher(name)?;
                items.retain(|item| item.get("name").and_then(Value::as_str).is_some_and(&matches));
            }
        }
        sort_items(&mut items, self.sort.as_deref(), self.sort_reverse);
        if !self.paginate {
            return Ok(Value::Array(items.into_iter().map(|item| self.pick(item)).collect()));
        }
        self.page_of(items, total_count, |item| item)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query(pairs: &[(&str, &str)]) -> Result<ListQuery, BadQuery> {
        ListQuery::parse(|key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string()))
    }

    fn items() -> Vec<Value> {
        vec![
            json!({"name": "b", "vhost": "/", "messages": 5, "totals": {"n": 2}}),
            json!({"name": "a", "vhost": "/", "messages": 10, "totals": {"n": 3}}),
            json!({"name": "c1", "vhost": "/", "messages": 1, "totals": {"n": 1}}),
        ]
    }

    #[test]
    fn columns_pick_dotted_paths() {
        let item = json!({"name": "q", "queue_totals": {"messages": 3, "other": 1}, "x": 1});
        assert_eq!(
            pick_columns(&item, "name,queue_totals.messages,missing"),
            json!({"name": "q", "queue_totals": {"messages": 3}})
        );
    }

    #[test]
    fn default_sort_is_by_name() {
        let list = query(&[]).expect("query").apply(items()).expect("list");
        let names: Vec<_> = list.as_array().expect("array").iter().map(|i| i["name"].clone()).collect();
        assert_eq!(names, vec![json!("a"), json!("b"), json!("c1")]);
    }

    #[test]
    fn sort_by_dotted_number_and_reverse() {
        let list = query(&[("sort", "totals.n"), ("sort_reverse", "true"), ("columns", "name")])
            .expect("query")
            .apply(items())
            .expect("list");
        assert_eq!(list, json!([{"name": "a"}, {"name": "b"}, {"name": "c1"}]));
        let list = query(&[("sort", "messages")]).expect("query").apply(items()).expect("list");
        assert_eq!(list[0]["name"], "c1");
    }

    #[test]
    fn pagination_counts() {
        let page = query(&[("page", "2"), ("page_size", "2"), ("pagination", "true")])
            .expect("query")
            .apply(items())
            .expect("page");
        assert_eq!(
            page,
            json!({"filtered_count": 3, "item_count": 1, "page": 2, "page_count": 2, "page_size": 2,
                   "total_count": 3, "items": [items()[2].clone()]})
        );
    }

    #[test]
    fn name_filter_and_regex() {
        let page =
            query(&[("pagination", "true"), ("name", "C")]).expect("query").apply(items()).expect("page");
        assert_eq!(page["filtered_count"], 1);
        assert_eq!(page["total_count"], 3);
        let page = query(&[("pagination", "true"), ("name", "^[ab]$"), ("use_regex", "true")])
            .expect("query")
            .apply(items())
            .expect("page");
        assert_eq!(page["filtered_count"], 2);
        assert!(query(&[("pagination", "true"), ("name", "("), ("use_regex", "true")])
            .expect("query")
            .apply(items())
            .is_err());
    }

    #[test]
    fn bad_pages() {
        assert!(query(&[("page", "0")]).is_err());
        assert!(query(&[("page", "x")]).is_err());
        assert_eq!(
            query(&[("page_size", "501")]).err(),
            Some(BadQuery("Page size cannot be greater than 500".to_string()))
        );
        let out = query(&[("page", "3"), ("page_size", "2")]).expect("query").apply(items());
        assert_eq!(out, Err(BadQuery("Page out of range".to_string())));
        // An empty list has one (empty) page.
        let empty = query(&[("page", "1")]).expect("query").apply(Vec::new()).expect("page");
        assert_eq!(empty["page_count"], 1);
    }

    /// A page cut from the names gives what building every item and cutting gives, for
    /// the default order, by name, reversed, filtered; other orders fall back.
    #[test]
    fn pages_cut_from_names_match_pages_cut_from_items() {
        let entries = || -> Vec<(String, String, Value)> {
            items()
                .into_iter()
                .map(|item| {
                    (
                        item["vhost"].as_str().expect("a vhost").to_owned(),
                        item["name"].as_str().expect("a name").to_owned(),
                        item,
                    )
                })
                .collect()
        };
        for pairs in [
            vec![("page", "1"), ("page_size", "2")],
            vec![("page", "2"), ("page_size", "2")],
            vec![("pagination", "true"), ("sort", "name"), ("sort_reverse", "true")],
            vec![("pagination", "true"), ("name", "C")],
            vec![("pagination", "true"), ("name", "^[ab]$"), ("use_regex", "true"), ("columns", "name")],
            vec![("pagination", "true"), ("sort", "messages")],
            vec![("sort", "messages")],
            vec![],
        ] {
            let q = query(&pairs).expect("a query");
            let built = std::cell::Cell::new(0);
            let named = q
                .apply_named(entries(), |item| {
                    built.set(built.get() + 1);
                    item.clone()
                })
                .expect("a list");
            assert_eq!(named, q.apply(items()).expect("a list"), "{pairs:?}");
            if pairs.contains(&("page_size", "2")) {
                assert!(built.get() <= 2, "{pairs:?}: built {}", built.get());
            }
        }
    }
}
