//! A small, safe reader for the pickle subset that `torch.save` writes.
//!
//! Nothing is ever executed: globals are kept as names, and `REDUCE` is only resolved by the
//! torch-specific layer above for the few constructors it knows. Any other opcode is an error.

use super::Malformed;

/// A value on the pickle stack.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// `module.name`, not imported.
    Global {
        module: String,
        name: String,
    },
    /// An integer too wide for `i64`, as its little-endian two's-complement bytes (the legacy
    /// torch.save magic number is one).
    BigInt(Vec<u8>),
    /// A persistent id as loaded by `BINPERSID` (torch: a storage reference).
    PersistentId(Box<Value>),
    /// `callable(*args)` left unevaluated for the caller to interpret.
    Reduce {
        callable: Box<Value>,
        args: Box<Value>,
    },
    /// Marks the start of a variable-length group on the stack.
    Mark,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.data.len());
        let end = end.ok_or_else(|| corrupt(format!("pickle ends inside an opcode at byte {}", self.pos)))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn line(&mut self) -> Result<String, Malformed> {
        let rest = &self.data[self.pos..];
        let len = rest.iter().position(|&b| b == b'\n').ok_or_else(|| corrupt("unterminated GLOBAL name"))?;
        let text = std::str::from_utf8(&rest[..len]).map_err(|_| corrupt("GLOBAL name is not UTF-8"))?;
        self.pos += len + 1;
        Ok(text.to_string())
    }
    fn utf8(&mut self, len: usize) -> Result<String, Malformed> {
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("string is not UTF-8"))
    }
}

fn corrupt(why: impl Into<String>) -> Malformed {
    Malformed(format!("pickle: {}", why.into()))
}

/// Parses one pickle and returns the value `STOP` leaves on the stack.
pub fn parse(data: &[u8]) -> Result<Value, Malformed> {
    parse_prefix(data).map(|(value, _)| value)
}

/// Parses the pickle at the start of `data`; returns its value and the bytes it took, so that
/// several pickles written one after another can be read in turn.
pub fn parse_prefix(data: &[u8]) -> Result<(Value, usize), Malformed> {
    let mut r = Reader { data, pos: 0 };
    let mut stack: Vec<Value> = Vec::new();
    let mut memo: std::collections::HashMap<u32, Value> = std::collections::HashMap::new();
    let pop = |stack: &mut Vec<Value>| stack.pop().ok_or_else(|| corrupt("stack underflow"));
    let pop_mark = |stack: &mut Vec<Value>| -> Result<Vec<Value>, Malformed> {
        let mark = stack.iter().rposition(|v| *v == Value::Mark).ok_or_else(|| corrupt("MARK missing"))?;
        let items = stack.split_off(mark + 1);
        stack.pop();
        Ok(items)
    };
    loop {
        let at = r.pos;
        let op = r.u8()?;
        match op {
            0x80 => {
                let proto = r.u8()?;
                if proto > 5 {
                    return Err(corrupt(format!("unsupported pickle protocol {proto}")));
                }
            }
            0x95 => {
                r.take(8)?; // FRAME: a length hint only
            }
            b'.' => return Ok((pop(&mut stack)?, r.pos)),
            b'(' => stack.push(Value::Mark),
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'J' => stack.push(Value::Int(r.u32()? as i32 as i64)),
            b'K' => stack.push(Value::Int(r.u8()? as i64)),
            b'M' => stack.push(Value::Int(r.u16()? as i64)),
            0x8a => {
                let n = r.u8()? as usize;
                let bytes = r.take(n)?;
                if n > 8 {
                    stack.push(Value::BigInt(bytes.to_vec()));
                    continue;
                }
                let mut buf = if bytes.last().is_some_and(|b| b & 0x80 != 0) { [0xff; 8] } else { [0; 8] };
                buf[..n].copy_from_slice(bytes);
                stack.push(Value::Int(i64::from_le_bytes(buf)));
            }
            b'G' => {
                let b = r.take(8)?;
                let mut buf = [0u8; 8];
                buf.copy_from_slice(b);
                stack.push(Value::Float(f64::from_be_bytes(buf)));
            }
            b'X' => {
                let n = r.u32()? as usize;
                stack.push(Value::Str(r.utf8(n)?));
            }
            0x8c => {
                let n = r.u8()? as usize;
                stack.push(Value::Str(r.utf8(n)?));
            }
            b'C' => {
                let n = r.u8()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'B' => {
                let n = r.u32()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b')' => stack.push(Value::Tuple(Vec::new())),
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err(corrupt("stack underflow in TUPLE"));
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b']' => stack.push(Value::List(Vec::new())),
            b'}' => stack.push(Value::Dict(Vec::new())),
            b'a' => {
                let item = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::List(list)) => list.push(item),
                    _ => return Err(corrupt("APPEND onto a non-list")),
                }
            }
            b'e' => {
                let items = pop_mark(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::List(list)) => list.extend(items),
                    _ => return Err(corrupt("APPENDS onto a non-list")),
                }
            }
            b's' => {
                let value = pop(&mut stack)?;
                let key = pop(&mut stack)?;
                dict_insert(stack.last_mut(), vec![key, value])?;
            }
            b'u' => {
                let items = pop_mark(&mut stack)?;
                dict_insert(stack.last_mut(), items)?;
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                stack.push(Value::Global { module, name });
            }
            0x93 => {
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                match (module, name) {
                    (Value::Str(module), Value::Str(name)) => stack.push(Value::Global { module, name }),
                    _ => return Err(corrupt("STACK_GLOBAL without string names")),
                }
            }
            b'Q' => {
                let pid = pop(&mut stack)?;
                stack.push(Value::PersistentId(Box::new(pid)));
            }
            b'R' => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                if is_ordered_dict(&callable) && args == Value::Tuple(Vec::new()) {
                    stack.push(Value::Dict(Vec::new()));
                } else {
                    stack.push(Value::Reduce { callable: Box::new(callable), args: Box::new(args) });
                }
            }
            b'b' => {
                // BUILD sets an object's state; torch uses it for OrderedDict metadata only.
                pop(&mut stack)?;
                if stack.is_empty() {
                    return Err(corrupt("BUILD without an object"));
                }
            }
            b'q' => {
                let key = r.u8()? as u32;
                memo.insert(key, stack.last().cloned().ok_or_else(|| corrupt("BINPUT on empty stack"))?);
            }
            b'r' => {
                let key = r.u32()?;
                memo.insert(key, stack.last().cloned().ok_or_else(|| corrupt("LONG_BINPUT on empty stack"))?);
            }
            0x94 => {
                let key = memo.len() as u32;
                memo.insert(key, stack.last().cloned().ok_or_else(|| corrupt("MEMOIZE on empty stack"))?);
            }
            b'h' | b'j' => {
                let key = if op == b'h' { r.u8()? as u32 } else { r.u32()? };
                let value = memo.get(&key).cloned().ok_or_else(|| corrupt(format!("memo key {key} unset")))?;
                stack.push(value);
            }
            other => {
                return Err(corrupt(format!("unsupported pickle opcode 0x{other:02x} at byte {at}")));
            }
        }
    }
}

fn dict_insert(target: Option<&mut Value>, items: Vec<Value>) -> Result<(), Malformed> {
    if !items.len().is_multiple_of(2) {
        return Err(corrupt("SETITEMS with an odd number of items"));
    }
    let entries = match target {
        Some(Value::Dict(entries)) => entries,
        _ => return Err(corrupt("SETITEM onto a non-dict")),
    };
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        entries.push((k, v));
    }
    Ok(())
}

fn is_ordered_dict(value: &Value) -> bool {
    matches!(value, Value::Global { module, name } if module == "collections" && name == "OrderedDict")
}
