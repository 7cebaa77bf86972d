//! The opcodes of [`super::pickle`]: a byte reader and the stack machine that turns them into
//! arena values. Every push comes from one opcode, so the stack, the memo and the arena grow
//! at most linearly with the input; after each opcode, what they take is checked against the
//! bytes read so far.

use std::collections::HashMap;

use super::pickle::{Arena, NodeId, Pickle, Value, ID_BYTES, MEMO_ENTRY_BYTES};
use super::Malformed;

fn corrupt(why: impl Into<String>) -> Malformed {
    Malformed::corrupt(format!("pickle: {}", why.into()))
}

struct Reader<'a> {
    /// The input, cut to the longest pickle read.
    data: &'a [u8],
    pos: usize,
    /// Set when `data` was cut: running off its end then means the pickle is too long.
    cut_at: Option<usize>,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n);
        let bytes = end.and_then(|end| self.data.get(self.pos..end));
        let bytes = bytes.ok_or_else(|| self.ran_off())?;
        self.pos += n;
        Ok(bytes)
    }
    fn ran_off(&self) -> Malformed {
        match self.cut_at {
            Some(max) => Malformed::limit(format!("pickle: longer than {max} bytes")),
            None => corrupt(format!("ends inside an opcode at byte {}", self.pos)),
        }
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        self.take(N)?.try_into().map_err(|_| corrupt("short read"))
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(u8::from_le_bytes(self.array()?))
    }
    fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn len32(&mut self) -> Result<usize, Malformed> {
        usize::try_from(self.u32()?).map_err(|_| corrupt("length does not fit in memory"))
    }
    fn line(&mut self) -> Result<String, Malformed> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let Some(len) = rest.iter().position(|&b| b == b'\n') else {
            return Err(if self.cut_at.is_some() { self.ran_off() } else { corrupt("unterminated GLOBAL name") });
        };
        let text = self.take(len)?;
        self.take(1)?;
        std::str::from_utf8(text).map(str::to_string).map_err(|_| corrupt("GLOBAL name is not UTF-8"))
    }
    fn utf8(&mut self, len: usize) -> Result<String, Malformed> {
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map(str::to_string).map_err(|_| corrupt("string is not UTF-8"))
    }
}

/// The pickle virtual machine, without any code execution.
pub struct Parser<'a> {
    r: Reader<'a>,
    arena: Arena,
    stack: Vec<NodeId>,
    /// The stack's length at each open MARK: as in Python's unpickler, an opcode only sees the
    /// items above the innermost one.
    marks: Vec<usize>,
    memo: HashMap<u32, NodeId>,
}

enum Step {
    Go,
    Stop(NodeId),
}

impl<'a> Parser<'a> {
    pub fn new(data: &'a [u8], arena: Arena) -> Self {
        let max_len = arena.limits().max_len;
        let cut_at = (data.len() > max_len).then_some(max_len);
        let data = data.get(..max_len).unwrap_or(data);
        let r = Reader { data, pos: 0, cut_at };
        Self { r, arena, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() }
    }

    /// Runs to `STOP`: the values built, and the bytes read.
    pub fn run(mut self) -> Result<(Pickle, usize), Malformed> {
        loop {
            let at = self.r.pos;
            let op = self.r.u8()?;
            if let Step::Stop(root) = self.step(op, at)? {
                return Ok((self.arena.finish(root), self.r.pos));
            }
            self.arena.check_budget(self.r.pos)?;
        }
    }

    fn step(&mut self, op: u8, at: usize) -> Result<Step, Malformed> {
        match op {
            0x80 => {
                let proto = self.r.u8()?;
                if proto > 5 {
                    return Err(corrupt(format!("unsupported pickle protocol {proto}")));
                }
            }
            0x95 => {
                self.r.take(8)?; // FRAME: a length hint only
            }
            b'.' => return Ok(Step::Stop(self.pop("STOP")?)),
            b'(' => {
                self.arena.charge(std::mem::size_of::<usize>());
                self.marks.push(self.stack.len());
            }
            b'a' | b'e' | b's' | b'u' | b'b' => self.mutate(op)?,
            b'q' | b'r' | 0x94 | b'h' | b'j' => self.memo_op(op)?,
            _ => {
                let value = match self.scalar(op)? {
                    Some(value) => value,
                    None => self.container(op, at)?,
                };
                let id = self.arena.add(value)?;
                self.arena.charge(ID_BYTES);
                self.stack.push(id);
            }
        }
        Ok(Step::Go)
    }

    /// A value read from the opcode's argument bytes, or `None` if `op` builds from the stack.
    fn scalar(&mut self, op: u8) -> Result<Option<Value>, Malformed> {
        Ok(Some(match op {
            b'N' => Value::None,
            0x88 => Value::Bool(true),
            0x89 => Value::Bool(false),
            b'J' => Value::Int(i64::from(i32::from_le_bytes(self.r.array()?))),
            b'K' => Value::Int(i64::from(self.r.u8()?)),
            b'M' => Value::Int(i64::from(self.r.u16()?)),
            0x8a => self.long1()?,
            b'G' => Value::Float(f64::from_be_bytes(self.r.array()?)),
            b'X' => {
                let n = self.r.len32()?;
                Value::Str(self.r.utf8(n)?)
            }
            0x8c => {
                let n = usize::from(self.r.u8()?);
                Value::Str(self.r.utf8(n)?)
            }
            b'C' => {
                let n = usize::from(self.r.u8()?);
                Value::Bytes(self.r.take(n)?.to_vec())
            }
            b'B' => {
                let n = self.r.len32()?;
                Value::Bytes(self.r.take(n)?.to_vec())
            }
            b'c' => {
                let module = self.r.line()?;
                let name = self.r.line()?;
                Value::Global { module, name }
            }
            _ => return Ok(None),
        }))
    }

    /// LONG1: a little-endian two's-complement integer of up to 255 bytes.
    fn long1(&mut self) -> Result<Value, Malformed> {
        let n = usize::from(self.r.u8()?);
        let bytes = self.r.take(n)?;
        if n > 8 {
            return Ok(Value::BigInt(bytes.to_vec()));
        }
        let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
        let mut buf = if negative { [0xff; 8] } else { [0; 8] };
        buf.iter_mut().zip(bytes).for_each(|(b, &v)| *b = v);
        Ok(Value::Int(i64::from_le_bytes(buf)))
    }

    /// A value built from items on the stack.
    fn container(&mut self, op: u8, at: usize) -> Result<Value, Malformed> {
        Ok(match op {
            b')' => Value::Tuple(Vec::new()),
            b']' => Value::List(Vec::new()),
            b'}' => Value::Dict(Vec::new()),
            b't' => Value::Tuple(self.pop_mark()?),
            0x85..=0x87 => Value::Tuple(self.pop_n(usize::from(op - 0x84))?),
            0x93 => {
                let name = self.pop("STACK_GLOBAL")?;
                let module = self.pop("STACK_GLOBAL")?;
                match (self.arena.get(module), self.arena.get(name)) {
                    (Value::Str(module), Value::Str(name)) => {
                        Value::Global { module: module.clone(), name: name.clone() }
                    }
                    _ => return Err(corrupt("STACK_GLOBAL without string names")),
                }
            }
            b'Q' => Value::PersistentId(self.pop("BINPERSID")?),
            b'R' => {
                let args = self.pop("REDUCE")?;
                let callable = self.pop("REDUCE")?;
                // `OrderedDict()` is the one call that is evaluated: it is torch's state dict.
                let empty_args = matches!(self.arena.get(args), Value::Tuple(items) if items.is_empty());
                if empty_args && is_ordered_dict(self.arena.get(callable)) {
                    Value::Dict(Vec::new())
                } else {
                    Value::Reduce { callable, args }
                }
            }
            other => return Err(corrupt(format!("unsupported pickle opcode 0x{other:02x} at byte {at}"))),
        })
    }

    /// APPEND(S), SETITEM(S) and BUILD: change the container below the items.
    fn mutate(&mut self, op: u8) -> Result<(), Malformed> {
        let (items, name) = match op {
            b'a' => (vec![self.pop("APPEND")?], "APPEND"),
            b'e' => (self.pop_mark()?, "APPENDS"),
            b's' => (self.pop_n(2)?, "SETITEM"),
            b'u' => (self.pop_mark()?, "SETITEMS"),
            _ => {
                // BUILD sets an object's state; torch uses it for OrderedDict metadata only,
                // which the state dict does not need.
                self.pop("BUILD")?;
                self.top("BUILD")?;
                return Ok(());
            }
        };
        let target = self.top(name)?;
        self.arena.extend(target, items, name)
    }

    fn memo_op(&mut self, op: u8) -> Result<(), Malformed> {
        let key = match op {
            b'q' | b'h' => u32::from(self.r.u8()?),
            b'r' | b'j' => self.r.u32()?,
            _ => u32::try_from(self.memo.len()).map_err(|_| corrupt("memo full"))?,
        };
        if matches!(op, b'h' | b'j') {
            // Shared, not copied: the memo and the stack hold the same value.
            let id = *self.memo.get(&key).ok_or_else(|| corrupt(format!("memo key {key} unset")))?;
            self.arena.charge(ID_BYTES);
            self.stack.push(id);
        } else {
            let id = self.top("BINPUT")?;
            if self.memo.insert(key, id).is_none() {
                self.arena.charge(MEMO_ENTRY_BYTES);
            }
        }
        Ok(())
    }

    fn frame_start(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self, op: &str) -> Result<NodeId, Malformed> {
        if self.stack.len() <= self.frame_start() {
            return Err(corrupt(format!("{op} on an empty stack")));
        }
        self.stack.pop().ok_or_else(|| corrupt(format!("{op} on an empty stack")))
    }

    fn top(&self, op: &str) -> Result<NodeId, Malformed> {
        if self.stack.len() <= self.frame_start() {
            return Err(corrupt(format!("{op} on an empty stack")));
        }
        self.stack.last().copied().ok_or_else(|| corrupt(format!("{op} on an empty stack")))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<NodeId>, Malformed> {
        let at = self.stack.len().checked_sub(n).filter(|&at| at >= self.frame_start());
        let at = at.ok_or_else(|| corrupt("stack underflow"))?;
        Ok(self.stack.split_off(at))
    }

    fn pop_mark(&mut self) -> Result<Vec<NodeId>, Malformed> {
        let start = self.marks.pop().ok_or_else(|| corrupt("MARK missing"))?;
        if start > self.stack.len() {
            return Err(corrupt("stack underflow"));
        }
        Ok(self.stack.split_off(start))
    }
}

fn is_ordered_dict(value: &Value) -> bool {
    matches!(value, Value::Global { module, name } if module == "collections" && name == "OrderedDict")
}
