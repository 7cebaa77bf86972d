//! A small, safe reader for the pickle subset that `torch.save` writes.
//!
//! Nothing is ever executed: globals are kept as names, and `REDUCE` is only resolved by the
//! torch-specific layer above for the few constructors it knows. Any other opcode is an error.
//!
//! Values live in an arena ([`Pickle`]) and refer to each other by [`NodeId`], so a memoized
//! value that is fetched again (`BINGET`) is shared, never copied, and nothing that drops,
//! prints or walks the values recurses. Limits, checked while parsing:
//!
//! * values nest at most [`MAX_DEPTH`] containers deep (torch state dicts nest fewer than 10);
//! * a pickle is at most [`MAX_PICKLE_BYTES`] long (GPT-2 XL's state dict takes ~120 KB);
//! * what the values, the memo and the stack take, counted at their element sizes, stays
//!   within [`BYTES_PER_BYTE`] per byte read so far plus [`BYTES_SLACK`] (torch's pickles take
//!   about 12 per byte); so what a pickle materializes is proportional to its length, at most
//!   32 × 16 MiB + 64 KiB;
//! * a container may not be changed after it was put inside another one, which torch never
//!   does; this keeps every value's depth final once it is used, and rules out cycles.

use std::mem::size_of;

use super::pickle_ops::Parser;
use super::Malformed;

/// How many containers deep values may nest.
pub const MAX_DEPTH: u16 = 100;
/// The longest pickle read.
pub const MAX_PICKLE_BYTES: usize = 16 << 20;
/// Bytes of values, memo and stack allowed per byte of pickle read.
pub const BYTES_PER_BYTE: usize = 32;
/// Bytes of values, memo and stack allowed on top of [`BYTES_PER_BYTE`].
pub const BYTES_SLACK: usize = 64 << 10;

/// What a memo entry takes in its hash map, roughly: key, id, control byte, spare room.
pub const MEMO_ENTRY_BYTES: usize = 16;
/// What a reference to a value takes, in a container or on the stack.
pub const ID_BYTES: usize = size_of::<NodeId>();

/// A value in a [`Pickle`]'s arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(u32);

/// A value of the pickle; containers refer to their items by id.
#[derive(Debug)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    // Read by nothing (torch's state dicts hold no floats that matter) but kept for `Debug`.
    #[allow(dead_code)]
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<NodeId>),
    List(Vec<NodeId>),
    Dict(Vec<(NodeId, NodeId)>),
    /// `module.name`, not imported.
    Global {
        module: String,
        name: String,
    },
    /// An integer too wide for `i64`, as its little-endian two's-complement bytes (the legacy
    /// torch.save magic number is one).
    BigInt(Vec<u8>),
    /// A persistent id as loaded by `BINPERSID` (torch: a storage reference).
    PersistentId(NodeId),
    /// `callable(*args)` left unevaluated for the caller to interpret.
    Reduce {
        callable: NodeId,
        args: NodeId,
    },
}

/// A short name of a value's type, for error messages (never the value: it may be huge).
pub fn describe(value: &Value) -> &'static str {
    match value {
        Value::None => "None",
        Value::Bool(_) => "a bool",
        Value::Int(_) | Value::BigInt(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Str(_) => "a string",
        Value::Bytes(_) => "bytes",
        Value::Tuple(_) => "a tuple",
        Value::List(_) => "a list",
        Value::Dict(_) => "a dict",
        Value::Global { .. } => "a global",
        Value::PersistentId(_) => "a persistent id",
        Value::Reduce { .. } => "a constructor call",
    }
}

#[derive(Debug)]
struct Node {
    value: Value,
    /// Containers nested below this value (0 for scalars).
    depth: u16,
    /// Set once the value is an item of a container; it may not change after that.
    sealed: bool,
}

/// Every value one pickle built, and which of them `STOP` returned.
#[derive(Debug)]
pub struct Pickle {
    nodes: Vec<Node>,
    root: NodeId,
}

/// Returned for an id that is not in the arena; ids only come from the arena, so never in
/// practice, but a fallback is cheaper to reason about than an index that could panic.
static MISSING: Value = Value::None;

impl Pickle {
    pub fn root(&self) -> NodeId {
        self.root
    }
    pub fn get(&self, id: NodeId) -> &Value {
        self.nodes.get(id.0 as usize).map_or(&MISSING, |n| &n.value)
    }
    pub fn str(&self, id: NodeId) -> Option<&str> {
        match self.get(id) {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// Every value, reachable or not, in the order they were built.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.nodes.iter().map(|n| &n.value)
    }
    /// How many values the arena holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
}

/// The limits one parse runs under.
#[derive(Clone, Copy)]
pub struct Limits {
    pub max_depth: u16,
    pub max_len: usize,
    pub bytes_per_byte: usize,
    pub bytes_slack: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: MAX_DEPTH,
            max_len: MAX_PICKLE_BYTES,
            bytes_per_byte: BYTES_PER_BYTE,
            bytes_slack: BYTES_SLACK,
        }
    }
}

/// The values being built, with the limits enforced as they grow.
pub struct Arena {
    nodes: Vec<Node>,
    /// Bytes taken by the values, the memo and the stack, as counted by [`Arena::charge`].
    bytes: usize,
    limits: Limits,
}

impl Arena {
    pub fn new(limits: Limits) -> Self {
        Self { nodes: Vec::new(), bytes: 0, limits }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn finish(self, root: NodeId) -> Pickle {
        Pickle { nodes: self.nodes, root }
    }

    pub fn get(&self, id: NodeId) -> &Value {
        self.nodes.get(id.0 as usize).map_or(&MISSING, |n| &n.value)
    }

    /// Counts `bytes` more taken by the values, the memo or the stack.
    pub fn charge(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// Refuses a pickle whose values outgrow the bytes read so far (`read`).
    pub fn check_budget(&self, read: usize) -> Result<(), Malformed> {
        let allowed = read.saturating_mul(self.limits.bytes_per_byte).saturating_add(self.limits.bytes_slack);
        if self.bytes > allowed {
            return Err(Malformed::limit(format!(
                "pickle: its values take more than {} bytes per byte read",
                self.limits.bytes_per_byte
            )));
        }
        Ok(())
    }

    /// Seals `items` (they are now inside a container) and returns the depth a container
    /// holding them has.
    fn adopt(&mut self, items: &[NodeId]) -> Result<u16, Malformed> {
        let mut depth = 1u16;
        for id in items {
            let node = self.nodes.get_mut(id.0 as usize).ok_or_else(|| Malformed::corrupt("pickle: dangling value"))?;
            node.sealed = true;
            depth = depth.max(node.depth.saturating_add(1));
        }
        if depth > self.limits.max_depth {
            return Err(Malformed::limit(format!("pickle: values nest more than {} deep", self.limits.max_depth)));
        }
        Ok(depth)
    }

    /// Adds a value; a container's items (already in the arena) become part of it.
    pub fn add(&mut self, value: Value) -> Result<NodeId, Malformed> {
        let items = children(&value);
        let depth = if is_container(&value) { self.adopt(&items)? } else { 0 };
        self.charge(size_of::<Node>() + items.len() * ID_BYTES + payload_len(&value));
        let id = u32::try_from(self.nodes.len()).map_err(|_| Malformed::limit("pickle: too many values"))?;
        self.nodes.push(Node { value, depth, sealed: false });
        Ok(NodeId(id))
    }

    /// Appends `items` to the list, or `items` as key/value pairs to the dict, `target`.
    pub fn extend(&mut self, target: NodeId, items: Vec<NodeId>, op: &str) -> Result<(), Malformed> {
        let depth = self.adopt(&items)?;
        self.charge(items.len() * ID_BYTES);
        let node = self.nodes.get_mut(target.0 as usize).ok_or_else(|| Malformed::corrupt("pickle: dangling value"))?;
        if node.sealed {
            return Err(Malformed::corrupt(format!("pickle: {op} changes a container already used inside another")));
        }
        node.depth = node.depth.max(depth);
        match &mut node.value {
            Value::List(list) if op.starts_with("APPEND") => list.extend(items),
            Value::Dict(entries) if op.starts_with("SETITEM") => {
                if !items.len().is_multiple_of(2) {
                    return Err(Malformed::corrupt("pickle: SETITEMS with an odd number of items"));
                }
                entries.extend(items.chunks_exact(2).filter_map(|pair| match pair {
                    [k, v] => Some((*k, *v)),
                    _ => None,
                }));
            }
            other => return Err(Malformed::corrupt(format!("pickle: {op} onto {}", describe(other)))),
        }
        Ok(())
    }
}

fn is_container(value: &Value) -> bool {
    matches!(value, Value::Tuple(_) | Value::List(_) | Value::Dict(_) | Value::PersistentId(_) | Value::Reduce { .. })
}

/// The items a new container holds.
fn children(value: &Value) -> Vec<NodeId> {
    match value {
        Value::Tuple(items) | Value::List(items) => items.clone(),
        Value::Dict(entries) => entries.iter().flat_map(|&(k, v)| [k, v]).collect(),
        Value::PersistentId(id) => vec![*id],
        Value::Reduce { callable, args } => vec![*callable, *args],
        _ => Vec::new(),
    }
}

/// Bytes a scalar value holds beyond its node.
fn payload_len(value: &Value) -> usize {
    match value {
        Value::Str(s) => s.len(),
        Value::Bytes(b) | Value::BigInt(b) => b.len(),
        Value::Global { module, name } => module.len() + name.len(),
        _ => 0,
    }
}

/// Parses one pickle and returns the values it built, rooted at what `STOP` returned.
pub fn parse(data: &[u8]) -> Result<Pickle, Malformed> {
    parse_prefix(data).map(|(pickle, _)| pickle)
}

/// Parses the pickle at the start of `data`; returns its values and the bytes it took, so that
/// several pickles written one after another can be read in turn.
pub fn parse_prefix(data: &[u8]) -> Result<(Pickle, usize), Malformed> {
    parse_with(data, Limits::default())
}

/// [`parse_prefix`] under explicit limits (the tests tighten them).
pub fn parse_with(data: &[u8], limits: Limits) -> Result<(Pickle, usize), Malformed> {
    Parser::new(data, Arena::new(limits)).run()
}
