//! A reader for the Python pickles nltk_data's Punkt models are (protocols 2 to 4, the opcodes
//! plain containers, strings, numbers and object construction use). It builds the object
//! graph as data: classes are names, calls are recorded, nothing is imported or executed.

/// An object's place in [`Pickle`]'s arena.
pub type Id = usize;

/// One unpickled object.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    /// A class or function by name (`GLOBAL`).
    Global {
        module: String,
        name: String,
    },
    /// `callable(*args)` (`REDUCE`, `NEWOBJ`), with what was set on it afterwards: its state
    /// (`BUILD`), and items (a `defaultdict`'s, by `SETITEMS`; a list subclass's, by `APPENDS`).
    Object {
        callable: Id,
        args: Id,
        state: Option<Id>,
        items: Vec<(Id, Id)>,
        list: Vec<Id>,
    },
}

/// An unpickled object graph.
#[derive(Debug)]
pub struct Pickle {
    values: Vec<Value>,
    root: Id,
}

struct Reader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], String> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len()).ok_or("the pickle ends early")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.at..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or("a GLOBAL without its line end")?;
        let line = String::from_utf8(rest[..end].to_vec()).map_err(|_| "a GLOBAL name is not UTF-8")?;
        self.at += end + 1;
        Ok(line)
    }

    fn string(&mut self, len: u64) -> Result<String, String> {
        let len = usize::try_from(len).map_err(|_| "a string too long")?;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "a string that is not UTF-8".to_string())
    }
}

/// The unpickling machine: an arena, a stack of ids, marks, and the memo.
#[derive(Default)]
struct Machine {
    values: Vec<Value>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u64, Id>,
}

impl Machine {
    fn push(&mut self, value: Value) {
        self.values.push(value);
        self.stack.push(self.values.len() - 1);
    }

    fn pop(&mut self) -> Result<Id, String> {
        self.stack.pop().ok_or_else(|| "the pickle's stack runs empty".to_string())
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>, String> {
        let mark = self.marks.pop().ok_or("no MARK to pop to")?;
        if mark > self.stack.len() {
            return Err("a MARK past the stack".into());
        }
        Ok(self.stack.split_off(mark))
    }

    fn top(&self) -> Result<Id, String> {
        self.stack.last().copied().ok_or_else(|| "the pickle's stack is empty".to_string())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), String> {
        let id = *self.memo.get(&key).ok_or(format!("memo {key} is not set"))?;
        self.stack.push(id);
        Ok(())
    }

    fn append(&mut self, items: Vec<Id>) -> Result<(), String> {
        let top = self.top()?;
        match &mut self.values[top] {
            Value::List(list) | Value::Set(list) | Value::Object { list, .. } => list.extend(items),
            _ => return Err("APPENDS onto something that is not a list".into()),
        }
        Ok(())
    }

    fn set_items(&mut self, flat: Vec<Id>) -> Result<(), String> {
        if flat.len() % 2 != 0 {
            return Err("SETITEMS with an odd number of values".into());
        }
        let pairs = flat.chunks(2).map(|p| (p[0], p[1]));
        let top = self.top()?;
        match &mut self.values[top] {
            Value::Dict(items) | Value::Object { items, .. } => items.extend(pairs),
            _ => return Err("SETITEMS onto something that is not a dict".into()),
        }
        Ok(())
    }

    fn call(&mut self) -> Result<(), String> {
        let args = self.pop()?;
        let callable = self.pop()?;
        self.push(Value::Object { callable, args, state: None, items: Vec::new(), list: Vec::new() });
        Ok(())
    }

    fn build(&mut self) -> Result<(), String> {
        let new_state = self.pop()?;
        let top = self.top()?;
        match &mut self.values[top] {
            Value::Object { state, .. } => *state = Some(new_state),
            _ => return Err("BUILD onto something that is not an object".into()),
        }
        Ok(())
    }

    fn tuple(&mut self, n: usize) -> Result<(), String> {
        let at = self.stack.len().checked_sub(n).ok_or("a TUPLE past the stack")?;
        let items = self.stack.split_off(at);
        self.push(Value::Tuple(items));
        Ok(())
    }

    /// Runs one opcode; `Some(root)` at STOP.
    fn step(&mut self, op: u8, r: &mut Reader<'_>) -> Result<Option<Id>, String> {
        match op {
            0x80 => drop(r.take(1)?), // PROTO
            0x95 => drop(r.take(8)?), // FRAME
            b'.' => return self.top().map(Some),
            b'c' => {
                let (module, name) = (r.line()?, r.line()?);
                self.push(Value::Global { module, name });
            }
            0x93 => {
                let (name, module) = (self.pop()?, self.pop()?);
                let text = |id: Id| match &self.values[id] {
                    Value::Str(s) => Ok(s.clone()),
                    _ => Err("STACK_GLOBAL of non-strings".to_string()),
                };
                let global = Value::Global { module: text(module)?, name: text(name)? };
                self.push(global);
            }
            b'q' | b'r' | 0x94 => {
                let key = match op {
                    b'q' => r.uint(1)?,
                    b'r' => r.uint(4)?,
                    _ => self.memo.len() as u64,
                };
                let top = self.top()?;
                self.memo.insert(key, top);
            }
            b'h' => self.memo_get(r.uint(1)?)?,
            b'j' => self.memo_get(r.uint(4)?)?,
            b'(' => self.marks.push(self.stack.len()),
            b')' => self.push(Value::Tuple(Vec::new())),
            b']' => self.push(Value::List(Vec::new())),
            b'}' => self.push(Value::Dict(Vec::new())),
            0x8f => self.push(Value::Set(Vec::new())),
            b'N' => self.push(Value::None),
            0x88 | 0x89 => self.push(Value::Bool(op == 0x88)),
            b'K' => self.push(Value::Int(r.uint(1)? as i64)),
            b'M' => self.push(Value::Int(r.uint(2)? as i64)),
            b'J' => self.push(Value::Int(i64::from(r.uint(4)? as u32 as i32))),
            b'X' => {
                let len = r.uint(4)?;
                self.push(Value::Str(r.string(len)?));
            }
            0x8c => {
                let len = r.uint(1)?;
                self.push(Value::Str(r.string(len)?));
            }
            0x8d => {
                let len = r.uint(8)?;
                self.push(Value::Str(r.string(len)?));
            }
            0x85..=0x87 => self.tuple(usize::from(op - 0x84))?,
            b't' => {
                let items = self.pop_mark()?;
                self.push(Value::Tuple(items));
            }
            b'a' => {
                let item = self.pop()?;
                self.append(vec![item])?;
            }
            b'e' | 0x90 => {
                let items = self.pop_mark()?;
                self.append(items)?;
            }
            b's' => {
                let (value, key) = (self.pop()?, self.pop()?);
                self.set_items(vec![key, value])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            b'R' | 0x81 => self.call()?,
            b'b' => self.build()?,
            other => return Err(format!("unsupported pickle opcode 0x{other:02x} at byte {}", r.at - 1)),
        }
        Ok(None)
    }
}

impl Pickle {
    /// Reads a whole pickle.
    pub fn read(bytes: &[u8]) -> Result<Self, String> {
        let mut reader = Reader { bytes, at: 0 };
        let mut machine = Machine::default();
        loop {
            let op = reader.take(1)?[0];
            if let Some(root) = machine.step(op, &mut reader)? {
                return Ok(Self { values: machine.values, root });
            }
        }
    }

    pub fn root(&self) -> Id {
        self.root
    }

    pub fn value(&self, id: Id) -> &Value {
        &self.values[id]
    }

    pub fn string(&self, id: Id) -> Option<&str> {
        match &self.values[id] {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self, id: Id) -> Option<i64> {
        match self.values[id] {
            Value::Int(n) => Some(n),
            _ => None,
        }
    }

    /// The value under `name` in an object's state dict.
    pub fn state_field(&self, object: Id, name: &str) -> Option<Id> {
        let Value::Object { state: Some(state), .. } = &self.values[object] else { return None };
        self.dict_items(*state).into_iter().find(|&(key, _)| self.string(key) == Some(name)).map(|(_, value)| value)
    }

    /// A dict's pairs, or those set on an object (a `defaultdict`).
    pub fn dict_items(&self, id: Id) -> Vec<(Id, Id)> {
        match &self.values[id] {
            Value::Dict(items) | Value::Object { items, .. } => items.clone(),
            _ => Vec::new(),
        }
    }

    /// A set's members: `set(list)` as pickled by protocols 2 and 3, or a protocol-4 set.
    pub fn set_items(&self, id: Id) -> Vec<Id> {
        match &self.values[id] {
            Value::Set(items) | Value::List(items) => items.clone(),
            Value::Object { args, list, .. } => match &self.values[*args] {
                Value::Tuple(args) => args.first().map(|&arg| self.set_items(arg)).unwrap_or_default(),
                _ => list.clone(),
            },
            _ => Vec::new(),
        }
    }
}
