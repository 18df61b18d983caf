//! Topic exchange routing: a trie of binding-pattern words.
//!
//! This file owns [`TopicTrie`] and the topic word splitting rules. Keys and
//! patterns are split on `.` exactly as RabbitMQ does: the empty string has
//! zero words, and every other string has one more word than it has dots,
//! empty words included (`"a..b"` is `a`, ``, `b`; `"."` is two empty
//! words). In a pattern `*` matches exactly one word, `#` zero or more, and
//! any other word matches only an equal word. So `#` matches the empty key,
//! `*` does not, and the empty pattern matches only the empty key.
//!
//! Each trie node is a pattern prefix; its children are a map of literal
//! words plus optional `*` and `#` children, and it holds the destinations
//! whose pattern ends there. Matching walks the trie with an explicit stack
//! (no recursion, so deep patterns cannot overflow the call stack). A `#`
//! child is tried at every remaining word position; below a `#` the same
//! (node, word position) state can be reached along several paths, so those
//! states are remembered and expanded only once, which bounds the work by
//! nodes × words × words even for patterns like `#.#.#.#.a`.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// Index of a node in [`TopicTrie::nodes`].
type NodeId = usize;

/// The root node (the empty pattern prefix); never freed.
const ROOT: NodeId = 0;

/// Splits a routing key or pattern into words, RabbitMQ style.
pub(super) fn split_words(key: &[u8]) -> Vec<&[u8]> {
    if key.is_empty() {
        Vec::new()
    } else {
        key.split(|&byte| byte == b'.').collect()
    }
}

/// How a pattern word leads from a node to its child.
#[derive(Debug, Clone, Copy)]
enum Edge<'a> {
    /// A literal word.
    Word(&'a [u8]),
    /// `*`: exactly one word.
    Star,
    /// `#`: zero or more words.
    Hash,
}

impl<'a> Edge<'a> {
    /// Classifies one pattern word.
    fn of(word: &'a [u8]) -> Self {
        match word {
            b"*" => Edge::Star,
            b"#" => Edge::Hash,
            _ => Edge::Word(word),
        }
    }
}

/// One pattern prefix.
#[derive(Debug, Clone)]
struct Node<D> {
    /// Children by literal word.
    words: HashMap<Box<[u8]>, NodeId>,
    /// Child for `*`.
    star: Option<NodeId>,
    /// Child for `#`.
    hash: Option<NodeId>,
    /// Destinations bound with the pattern that ends at this node.
    dests: HashSet<D>,
}

impl<D> Node<D> {
    /// A node with no children and no destinations.
    fn empty() -> Self {
        Self { words: HashMap::new(), star: None, hash: None, dests: HashSet::new() }
    }

    /// Whether the node can be dropped from the trie.
    fn is_unused(&self) -> bool {
        self.dests.is_empty() && self.words.is_empty() && self.star.is_none() && self.hash.is_none()
    }

    /// The child along `edge`, if any.
    fn child(&self, edge: Edge<'_>) -> Option<NodeId> {
        match edge {
            Edge::Word(word) => self.words.get(word).copied(),
            Edge::Star => self.star,
            Edge::Hash => self.hash,
        }
    }

    /// Sets the child along `edge`.
    fn set_child(&mut self, edge: Edge<'_>, child: NodeId) {
        match edge {
            Edge::Word(word) => {
                self.words.insert(word.into(), child);
            }
            Edge::Star => self.star = Some(child),
            Edge::Hash => self.hash = Some(child),
        }
    }

    /// Detaches the child along `edge`.
    fn clear_child(&mut self, edge: Edge<'_>) {
        match edge {
            Edge::Word(word) => {
                self.words.remove(word);
            }
            Edge::Star => self.star = None,
            Edge::Hash => self.hash = None,
        }
    }
}

/// The set of (pattern, destination) pairs of one topic exchange.
///
/// Binding identity (arguments, duplicates) is handled by the caller; this
/// trie holds each (pattern, destination) pair at most once.
#[derive(Debug, Clone)]
pub(super) struct TopicTrie<D> {
    /// Node storage; slot [`ROOT`] is the root.
    nodes: Vec<Node<D>>,
    /// Freed slots of `nodes`, reused before growing.
    free: Vec<NodeId>,
}

impl<D: Copy + Eq + Hash> TopicTrie<D> {
    /// An empty trie (just the root).
    pub(super) fn new() -> Self {
        Self { nodes: vec![Node::empty()], free: Vec::new() }
    }

    /// Allocates an empty node.
    fn alloc(&mut self) -> NodeId {
        match self.free.pop() {
            Some(id) => id,
            None => {
                self.nodes.push(Node::empty());
                self.nodes.len() - 1
            }
        }
    }

    /// Adds `dest` for `pattern`. Returns whether it was new.
    pub(super) fn insert(&mut self, pattern: &[u8], dest: D) -> bool {
        let mut current = ROOT;
        for word in split_words(pattern) {
            let edge = Edge::of(word);
            let existing = self.nodes.get(current).and_then(|node| node.child(edge));
            current = match existing {
                Some(child) => child,
                None => {
                    let child = self.alloc();
                    if let Some(node) = self.nodes.get_mut(current) {
                        node.set_child(edge, child);
                    }
                    child
                }
            };
        }
        self.nodes.get_mut(current).is_some_and(|node| node.dests.insert(dest))
    }

    /// Removes `dest` for `pattern`, pruning nodes left unused. Returns
    /// whether it was present.
    pub(super) fn remove(&mut self, pattern: &[u8], dest: D) -> bool {
        let words = split_words(pattern);
        // (parent, edge, child) for every step from the root.
        let mut path = Vec::with_capacity(words.len());
        let mut current = ROOT;
        for word in words {
            let edge = Edge::of(word);
            let Some(child) = self.nodes.get(current).and_then(|node| node.child(edge)) else {
                return false;
            };
            path.push((current, edge, child));
            current = child;
        }
        let removed = self.nodes.get_mut(current).is_some_and(|node| node.dests.remove(&dest));
        if removed {
            self.prune(&path);
        }
        removed
    }

    /// Frees the unused nodes at the end of `path`, deepest first.
    fn prune(&mut self, path: &[(NodeId, Edge<'_>, NodeId)]) {
        for &(parent, edge, child) in path.iter().rev() {
            if !self.nodes.get(child).is_some_and(Node::is_unused) {
                return;
            }
            if let Some(node) = self.nodes.get_mut(parent) {
                node.clear_child(edge);
            }
            if let Some(node) = self.nodes.get_mut(child) {
                *node = Node::empty();
            }
            self.free.push(child);
        }
    }

    /// Appends the destinations of every pattern matching `key`. A
    /// destination bound with several matching patterns is appended once per
    /// pattern; the caller dedupes.
    pub(super) fn route(&self, key: &[u8], out: &mut Vec<D>) {
        let words = split_words(key);
        let count = words.len();
        // (node, words consumed, reached through a `#`).
        let mut stack: Vec<(NodeId, usize, bool)> = vec![(ROOT, 0, false)];
        // States below a `#`, which several paths can reach.
        let mut seen: HashSet<(NodeId, usize)> = HashSet::new();
        while let Some((id, consumed, below_hash)) = stack.pop() {
            if below_hash && !seen.insert((id, consumed)) {
                continue;
            }
            let Some(node) = self.nodes.get(id) else {
                continue;
            };
            if let Some(hash) = node.hash {
                // `#` swallows zero or more of the remaining words.
                for next in consumed..=count {
                    if !seen.contains(&(hash, next)) {
                        stack.push((hash, next, true));
                    }
                }
            }
            match words.get(consumed) {
                None => out.extend(node.dests.iter().copied()),
                Some(word) => {
                    if let Some(&child) = node.words.get(*word) {
                        stack.push((child, consumed + 1, below_hash));
                    }
                    if let Some(star) = node.star {
                        stack.push((star, consumed + 1, below_hash));
                    }
                }
            }
        }
    }

    /// Number of live nodes, root included (for tests of pruning).
    #[cfg(test)]
    pub(super) fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }
}
