//! JFR (Java Flight Recorder) files as the JDK (format 2.1) and async-profiler (2.0) write
//! them: a file is a sequence of self-contained chunks, each a 68-byte header, events, constant
//! pools and the metadata that describes every event and pool type's fields.
//!
//! A focused reader: [`Chunk::parse`] reads the metadata and indexes the constant pools that
//! stacks need (stack traces, methods, classes, symbols, packages, strings); [`Chunk::events`]
//! walks the events and decodes only the sample events stackd keeps ([`Kind`]), skipping every
//! other event by its size. Nothing is decoded twice: a stack or a method is read from its pool
//! when it is first asked for ([`Chunk::stack`], [`Chunk::method`]).
//!
//! Every offset, count and size comes from the file and is checked before it is used: a
//! damaged chunk is an [`Error`] naming what and where, never a panic or an allocation sized by
//! the file. No I/O: the caller hands over a whole chunk's bytes ([`header`] says how many).

mod metadata;
mod reader;

use std::collections::HashMap;

use metadata::Metadata;
use reader::Reader;

/// Bytes of a chunk header.
pub const HEADER_SIZE: usize = 68;

const MAGIC: &[u8; 4] = b"FLR\0";

/// Event type ids of the two structural events.
const METADATA_EVENT: u64 = 0;
const CHECKPOINT_EVENT: u64 = 1;

/// Nesting of inline values at most (a real file has three levels); deeper is damage.
const MAX_DEPTH: usize = 16;

/// Why a chunk cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("not a JFR file (it starts with {0}, not FLR\\0)")]
    NotJfr(String),
    #[error("JFR format {0}.{1} is not read (stackd reads 1.x and 2.x, as the JDK 11 to 21 and async-profiler write)")]
    Version(u16, u16),
    /// The chunk is longer than the bytes there are: cut off, or still being written.
    #[error("the chunk is incomplete: its header says {need} bytes, {have} are there")]
    Incomplete { need: u64, have: u64 },
    #[error("the chunk is damaged: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, Error>;

fn corrupt(what: impl Into<String>) -> Error {
    Error::Corrupt(what.into())
}

/// A chunk's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub major: u16,
    pub minor: u16,
    /// Bytes of the whole chunk, header included.
    pub size: u64,
    pub cpool_offset: u64,
    pub meta_offset: u64,
    /// Unix nanoseconds at the chunk's start.
    pub start_nanos: i64,
    pub duration_nanos: i64,
    pub start_ticks: i64,
    pub ticks_per_second: i64,
    /// Integers are LEB128-compressed (every JDK and async-profiler file); else fixed width.
    pub compressed: bool,
}

/// The header at the start of `bytes` (at least [`HEADER_SIZE`] of them), checked: magic,
/// version, and offsets inside the chunk. A size of 0 is a chunk still being written (the JDK
/// and async-profiler write the size last): [`Error::Incomplete`].
pub fn header(bytes: &[u8]) -> Result<Header> {
    if bytes.len() < 4 || &bytes[..4] != MAGIC {
        let shown: String = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
        return Err(Error::NotJfr(if shown.is_empty() { "nothing".into() } else { shown }));
    }
    if bytes.len() < HEADER_SIZE {
        return Err(Error::Incomplete { need: HEADER_SIZE as u64, have: bytes.len() as u64 });
    }
    let u16_at = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    let i64_at = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
    let (major, minor) = (u16_at(4), u16_at(6));
    if !(1..=2).contains(&major) {
        return Err(Error::Version(major, minor));
    }
    let size = i64_at(8);
    if size == 0 {
        return Err(Error::Incomplete { need: u64::MAX, have: bytes.len() as u64 });
    }
    let size = u64::try_from(size).ok().filter(|s| *s >= HEADER_SIZE as u64).ok_or_else(|| corrupt(format!("chunk size {size}")))?;
    let offset = |at: usize, what: &str| {
        u64::try_from(i64_at(at))
            .ok()
            .filter(|o| (HEADER_SIZE as u64..size).contains(o))
            .ok_or_else(|| corrupt(format!("the {what} offset {} is outside the chunk of {size} bytes", i64_at(at))))
    };
    let header = Header {
        major,
        minor,
        size,
        cpool_offset: offset(16, "constant pool")?,
        meta_offset: offset(24, "metadata")?,
        start_nanos: i64_at(32),
        duration_nanos: i64_at(40),
        start_ticks: i64_at(48),
        ticks_per_second: i64_at(56),
        compressed: u32::from_be_bytes([bytes[64], bytes[65], bytes[66], bytes[67]]) & 1 == 1,
    };
    if header.ticks_per_second <= 0 {
        return Err(corrupt(format!("{} ticks per second", header.ticks_per_second)));
    }
    Ok(header)
}

/// The sample events stackd keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `jdk.ExecutionSample`: on-CPU, or wall when async-profiler ran in wall mode.
    Execution,
    /// `jdk.NativeMethodSample`: a thread in native code.
    NativeMethod,
    /// `profiler.WallClockSample` (async-profiler 3 and later): `samples` samples.
    WallClock,
    /// `jdk.ObjectAllocationSample`: `weight` bytes.
    AllocationSample,
    /// `jdk.ObjectAllocationInNewTLAB`: a TLAB of `tlabSize` bytes.
    AllocationInNewTlab,
    /// `jdk.ObjectAllocationOutsideTLAB`: `allocationSize` bytes.
    AllocationOutsideTlab,
    /// `jdk.JavaMonitorEnter`: blocked `duration` ticks.
    MonitorEnter,
    /// `jdk.ThreadPark`: parked `duration` ticks.
    ThreadPark,
    /// `jdk.ActiveSetting`: a recording setting (`name`, `value`).
    Setting,
}

impl Kind {
    fn of(name: &str) -> Option<Kind> {
        Some(match name {
            "jdk.ExecutionSample" => Kind::Execution,
            "jdk.NativeMethodSample" => Kind::NativeMethod,
            "profiler.WallClockSample" => Kind::WallClock,
            "jdk.ObjectAllocationSample" => Kind::AllocationSample,
            "jdk.ObjectAllocationInNewTLAB" => Kind::AllocationInNewTlab,
            "jdk.ObjectAllocationOutsideTLAB" => Kind::AllocationOutsideTlab,
            "jdk.JavaMonitorEnter" => Kind::MonitorEnter,
            "jdk.ThreadPark" => Kind::ThreadPark,
            "jdk.ActiveSetting" => Kind::Setting,
            _ => return None,
        })
    }

    /// The field that weighs an event of this kind (1 when none).
    fn weight_field(self) -> Option<&'static str> {
        match self {
            Kind::WallClock => Some("samples"),
            Kind::AllocationSample => Some("weight"),
            Kind::AllocationInNewTlab => Some("tlabSize"),
            Kind::AllocationOutsideTlab => Some("allocationSize"),
            Kind::MonitorEnter | Kind::ThreadPark => Some("duration"),
            _ => None,
        }
    }
}

/// One sample event: what [`Chunk::events`] hands over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    pub kind: Kind,
    /// `startTime`, in the chunk's ticks ([`Chunk::unix_ms`]).
    pub ticks: i64,
    /// The `stackTrace` key (0: none).
    pub stack: u64,
    /// The weight (samples, bytes; for locks, duration in ticks: [`Chunk::ticks_to_ns`]); 1 for
    /// unweighted samples.
    pub weight: u64,
    /// `objectClass` of allocations (0: none).
    pub class: u64,
    /// `contextId`: the Pyroscope Java agent's async-profiler tags samples with the context
    /// (label set) the thread ran in (0: none, and in every recording without the field).
    pub context: u64,
    /// A setting's name and value ([`Kind::Setting`]; its `id`, the event type it is of, is in
    /// `weight`).
    pub setting: Option<(std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
}

/// What one field of an event plan does.
#[derive(Clone, Copy, Debug)]
enum Role {
    Skip,
    Time,
    Stack,
    Weight,
    Class,
    Context,
    SettingName,
    SettingValue,
}

/// How an event type of a [`Kind`] is read: its fields in order, each with its role.
#[derive(Debug)]
struct Plan {
    kind: Kind,
    fields: Vec<(metadata::FieldType, Role)>,
}

/// One frame of a stack trace, leaf first as JFR stores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The `method` key ([`Chunk::method`]).
    pub method: u64,
    pub line: i32,
    /// The `type` key ([`Chunk::frame_type`]).
    pub kind: u64,
}

/// A method, resolved: its class's binary name (`java.lang.String`, `Foo/0x1234` for a hidden
/// class; empty for async-profiler's native frames) and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Method {
    pub class: String,
    pub name: String,
    /// `ACC_NATIVE` is set.
    pub native: bool,
}

/// The constant pools stacks need: key → offset of the value in the chunk.
#[derive(Debug, Default)]
struct Pools {
    stacks: HashMap<u64, u32, ahash::RandomState>,
    methods: HashMap<u64, u32, ahash::RandomState>,
    classes: HashMap<u64, u32, ahash::RandomState>,
    symbols: HashMap<u64, u32, ahash::RandomState>,
    packages: HashMap<u64, u32, ahash::RandomState>,
    strings: HashMap<u64, u32, ahash::RandomState>,
    frame_types: HashMap<u64, u32, ahash::RandomState>,
}

/// One chunk, its metadata read and its constant pools indexed.
#[derive(Debug)]
pub struct Chunk<'a> {
    bytes: &'a [u8],
    pub header: Header,
    meta: Metadata,
    pools: Pools,
    plans: HashMap<u64, Plan, ahash::RandomState>,
}

impl<'a> Chunk<'a> {
    /// Read a whole chunk (`bytes` holds at least the header's size; only that much is read).
    pub fn parse(bytes: &'a [u8]) -> Result<Chunk<'a>> {
        let header = header(bytes)?;
        if (bytes.len() as u64) < header.size {
            return Err(Error::Incomplete { need: header.size, have: bytes.len() as u64 });
        }
        let bytes = &bytes[..header.size as usize];
        let meta = {
            let mut r = Reader::new(bytes, header.meta_offset as usize, header.compressed);
            let size = r.int().map_err(|e| e.at("the metadata event's size"))?;
            let end = event_end(header.meta_offset as usize, size, bytes.len())?;
            if r.long()? != METADATA_EVENT {
                return Err(corrupt("the metadata offset does not point at the metadata event"));
            }
            let mut r = Reader::new(&bytes[..end], r.pos(), header.compressed);
            Metadata::parse(&mut r)?
        };
        let mut chunk = Chunk { bytes, header, meta, pools: Pools::default(), plans: HashMap::default() };
        chunk.index_pools()?;
        chunk.plan_events()?;
        Ok(chunk)
    }

    fn reader(&self, at: usize) -> Reader<'a> {
        Reader::new(self.bytes, at, self.header.compressed)
    }

    /// Follow the checkpoint events from the last one back to the first, noting where each
    /// value of the pools stacks need begins, and skipping every other value.
    fn index_pools(&mut self) -> Result<()> {
        let want = |name: &str| -> Option<u8> {
            Some(match name {
                "jdk.types.StackTrace" => 0,
                "jdk.types.Method" => 1,
                "java.lang.Class" => 2,
                "jdk.types.Symbol" => 3,
                "jdk.types.Package" => 4,
                "java.lang.String" => 5,
                "jdk.types.FrameType" => 6,
                _ => return None,
            })
        };
        let mut at = self.header.cpool_offset as usize;
        let mut seen = 0usize;
        loop {
            seen += 1;
            if seen > self.bytes.len() / 8 {
                return Err(corrupt("the constant pools loop"));
            }
            let mut r = self.reader(at);
            let size = r.int().map_err(|e| e.at("a checkpoint's size"))?;
            let end = event_end(at, size, self.bytes.len())?;
            let mut r = Reader::new(&self.bytes[..end], r.pos(), self.header.compressed);
            if r.long()? != CHECKPOINT_EVENT {
                return Err(corrupt(format!("no checkpoint event at offset {at}")));
            }
            r.long()?; // start
            r.long()?; // duration
            let delta = r.long()? as i64;
            r.byte()?; // flush / type mask
            let pools = r.int()?;
            for _ in 0..pools {
                let type_id = r.long()?;
                let count = r.int()?;
                let index = self.meta.index_of(type_id).ok_or_else(|| corrupt(format!("a constant pool of the unknown type {type_id}")))?;
                let slot = want(&self.meta.class_at(index).name);
                for _ in 0..count {
                    let key = r.long()?;
                    let value_at = r.pos() as u32;
                    if let Some(slot) = slot {
                        let map = match slot {
                            0 => &mut self.pools.stacks,
                            1 => &mut self.pools.methods,
                            2 => &mut self.pools.classes,
                            3 => &mut self.pools.symbols,
                            4 => &mut self.pools.packages,
                            5 => &mut self.pools.strings,
                            _ => &mut self.pools.frame_types,
                        };
                        map.entry(key).or_insert(value_at);
                    }
                    self.meta.skip_value(&mut r, index, 0)?;
                }
            }
            if delta == 0 {
                return Ok(());
            }
            let previous = (at as i64).checked_add(delta).filter(|p| *p >= HEADER_SIZE as i64 && (*p as usize) < at);
            at = previous.ok_or_else(|| corrupt(format!("a checkpoint points at {delta} bytes from offset {at}")))? as usize;
        }
    }

    /// A plan for each event type stackd keeps.
    fn plan_events(&mut self) -> Result<()> {
        for class in self.meta.classes() {
            let Some(kind) = Kind::of(&class.name) else { continue };
            let weight = kind.weight_field();
            let fields = class
                .fields
                .iter()
                .map(|f| {
                    let role = match f.name.as_str() {
                        "startTime" => Role::Time,
                        "stackTrace" => Role::Stack,
                        "objectClass" => Role::Class,
                        "contextId" if kind != Kind::Setting => Role::Context,
                        "name" if kind == Kind::Setting => Role::SettingName,
                        // The event type the setting is of (its class id).
                        "id" if kind == Kind::Setting => Role::Weight,
                        "value" if kind == Kind::Setting => Role::SettingValue,
                        n if Some(n) == weight => Role::Weight,
                        _ => Role::Skip,
                    };
                    (f.ty, role)
                })
                .collect();
            self.plans.insert(class.id, Plan { kind, fields });
        }
        Ok(())
    }

    /// Call `sink` with each sample event of the chunk, in file order.
    pub fn events(&self, mut sink: impl FnMut(Event<'_>)) -> Result<()> {
        let mut at = HEADER_SIZE;
        let end = self.bytes.len();
        while at < end {
            let mut r = self.reader(at);
            let size = r.int().map_err(|e| e.at(&format!("the size of the event at offset {at}")))?;
            let next = event_end(at, size, end)?;
            let type_id = r.long()?;
            if let Some(plan) = self.plans.get(&type_id) {
                let mut r = Reader::new(&self.bytes[..next], r.pos(), self.header.compressed);
                let event = self.read_event(&mut r, plan).map_err(|e| e.at(&format!("the event at offset {at}")))?;
                sink(event);
            }
            at = next;
        }
        Ok(())
    }

    fn read_event(&self, r: &mut Reader<'a>, plan: &Plan) -> Result<Event<'a>> {
        let mut e = Event { kind: plan.kind, ticks: 0, stack: 0, weight: 1, class: 0, context: 0, setting: None };
        let (mut name, mut value) = (None, None);
        for (ty, role) in &plan.fields {
            match role {
                Role::Skip => self.meta.skip_field(r, *ty, 0)?,
                Role::Time => e.ticks = self.meta.number(r, *ty)? as i64,
                Role::Stack => e.stack = self.meta.number(r, *ty)?,
                Role::Class => e.class = self.meta.number(r, *ty)?,
                Role::Context => e.context = self.meta.number(r, *ty)?,
                Role::Weight => e.weight = self.meta.number(r, *ty)?,
                Role::SettingName => name = Some(self.string(r)?),
                Role::SettingValue => value = Some(self.string(r)?),
            }
        }
        if let (Some(n), Some(v)) = (name, value) {
            e.setting = Some((n, v));
        }
        Ok(e)
    }

    /// A string value (inline, or from the string pool).
    fn string(&self, r: &mut Reader<'a>) -> Result<std::borrow::Cow<'a, str>> {
        match r.string()? {
            reader::Str::Inline(s) => Ok(s),
            reader::Str::Pool(key) => {
                let at = *self.pools.strings.get(&key).ok_or_else(|| corrupt(format!("the string {key} is not in the pool")))?;
                match self.reader(at as usize).string()? {
                    reader::Str::Inline(s) => Ok(s),
                    reader::Str::Pool(_) => Err(corrupt("a pooled string refers to the pool again")),
                }
            }
        }
    }

    /// The frames of stack trace `key`, leaf first, into `frames`; whether the recorder cut the
    /// stack (`truncated`). `Ok(None)` when the key is not in the pool.
    pub fn stack(&self, key: u64, frames: &mut Vec<Frame>) -> Result<Option<bool>> {
        frames.clear();
        let Some(&at) = self.pools.stacks.get(&key) else { return Ok(None) };
        let layout = self.meta.stack_layout.as_ref().ok_or_else(|| corrupt("stack traces without their type"))?;
        let mut r = self.reader(at as usize);
        let mut truncated = false;
        for (i, ty) in layout.trace_fields.iter().enumerate() {
            if Some(i) == layout.truncated {
                truncated = r.byte()? != 0;
            } else if Some(i) == layout.frames {
                let n = r.len()?;
                frames.reserve(n.min(4096));
                for _ in 0..n {
                    let mut frame = Frame { method: 0, line: 0, kind: 0 };
                    for (j, fty) in layout.frame_fields.iter().enumerate() {
                        if Some(j) == layout.method {
                            frame.method = self.meta.number(&mut r, *fty)?;
                        } else if Some(j) == layout.line {
                            frame.line = self.meta.number(&mut r, *fty)? as i32;
                        } else if Some(j) == layout.kind {
                            frame.kind = self.meta.number(&mut r, *fty)?;
                        } else {
                            self.meta.skip_field(&mut r, *fty, 0)?;
                        }
                    }
                    frames.push(frame);
                }
            } else {
                self.meta.skip_field(&mut r, *ty, 0)?;
            }
        }
        Ok(Some(truncated))
    }

    /// Method `key`: its class's name and its own. `Ok(None)` when it is not in the pool.
    pub fn method(&self, key: u64) -> Result<Option<Method>> {
        let Some(&at) = self.pools.methods.get(&key) else { return Ok(None) };
        let layout = self.meta.method_layout.as_ref().ok_or_else(|| corrupt("methods without their type"))?;
        let mut r = self.reader(at as usize);
        let (mut class, mut name, mut modifiers) = (0, 0, 0);
        for (i, ty) in layout.fields.iter().enumerate() {
            match i {
                _ if Some(i) == layout.class => class = self.meta.number(&mut r, *ty)?,
                _ if Some(i) == layout.name => name = self.meta.number(&mut r, *ty)?,
                _ if Some(i) == layout.modifiers => modifiers = self.meta.number(&mut r, *ty)?,
                _ => self.meta.skip_field(&mut r, *ty, 0)?,
            }
        }
        Ok(Some(Method { class: self.class_name(class)?.unwrap_or_default(), name: self.symbol(name)?, native: modifiers & 0x100 != 0 }))
    }

    /// Class `key`'s binary name: `java.lang.String`; a hidden class `Name/0x1234` as Java
    /// prints it (JFR writes `Name+0x1234/…`). `Ok(None)` when it is not in the pool.
    pub fn class_name(&self, key: u64) -> Result<Option<String>> {
        let Some(&at) = self.pools.classes.get(&key) else { return Ok(None) };
        let layout = self.meta.class_layout.as_ref().ok_or_else(|| corrupt("classes without their type"))?;
        let mut r = self.reader(at as usize);
        let mut name = 0;
        for (i, ty) in layout.fields.iter().enumerate() {
            if Some(i) == layout.name {
                name = self.meta.number(&mut r, *ty)?;
                break;
            }
            self.meta.skip_field(&mut r, *ty, 0)?;
        }
        Ok(Some(binary_name(&self.symbol(name)?)))
    }

    /// Frame type `key`'s description (`Interpreted`, `JIT compiled`, `Inlined`, `Native`, and
    /// async-profiler's `C++` and `Kernel`); empty when it is not in the pool.
    pub fn frame_type(&self, key: u64) -> Result<std::borrow::Cow<'a, str>> {
        let Some(&at) = self.pools.frame_types.get(&key) else { return Ok(std::borrow::Cow::Borrowed("")) };
        let mut r = self.reader(at as usize);
        // Its one field, `description`.
        self.string(&mut r)
    }

    /// Symbol `key`'s text (empty when it is not in the pool: async-profiler's native frames
    /// have no class).
    fn symbol(&self, key: u64) -> Result<String> {
        let Some(&at) = self.pools.symbols.get(&key) else { return Ok(String::new()) };
        let mut r = self.reader(at as usize);
        Ok(self.string(&mut r)?.into_owned())
    }

    /// The type id of the event class `name` (what a `jdk.ActiveSetting`'s `id` names).
    pub fn event_type(&self, name: &str) -> Option<u64> {
        self.meta.classes().find(|c| c.name == name).map(|c| c.id)
    }

    /// Whether the type `id` has this name (a recording may hold two types of one name: the
    /// JDK's and one a program declared).
    pub fn is_event_type(&self, id: u64, name: &str) -> bool {
        self.meta.index_of(id).is_some_and(|i| self.meta.class_at(i).name == name)
    }

    /// Unix milliseconds of a tick count of this chunk.
    pub fn unix_ms(&self, ticks: i64) -> i64 {
        let h = &self.header;
        let since = (i128::from(ticks) - i128::from(h.start_ticks)) * 1000 / i128::from(h.ticks_per_second);
        (i128::from(h.start_nanos) / 1_000_000 + since).clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// Nanoseconds of a duration in this chunk's ticks.
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        (u128::from(ticks) * 1_000_000_000 / self.header.ticks_per_second as u128).min(u64::MAX as u128) as u64
    }
}

/// A class's internal name (`java/lang/String`) as Java prints it (`java.lang.String`); a hidden
/// class as `Name/0x…`, whether the JDK wrote it `Name+0x…/hash` or async-profiler `Name/0x…`.
pub fn binary_name(internal: &str) -> String {
    if let Some((base, rest)) = internal.split_once('+').filter(|(_, rest)| rest.starts_with("0x")) {
        return format!("{}/{}", base.replace('/', "."), rest.split('/').next().unwrap_or(rest));
    }
    if let Some((base, addr)) = internal.rsplit_once('/') {
        if addr.len() > 2 && addr.starts_with("0x") && addr[2..].bytes().all(|b| b.is_ascii_hexdigit()) {
            return format!("{}/{addr}", base.replace('/', "."));
        }
    }
    internal.replace('/', ".")
}

/// Where an event of `size` bytes starting at `at` ends, checked against the chunk's end.
fn event_end(at: usize, size: u64, end: usize) -> Result<usize> {
    usize::try_from(size)
        .ok()
        .filter(|s| *s > 0)
        .and_then(|s| at.checked_add(s))
        .filter(|e| *e <= end)
        .ok_or_else(|| corrupt(format!("an event of {size} bytes at offset {at} runs past the chunk's end ({end})")))
}

impl Error {
    /// Say where: `… (reading <what>)`.
    fn at(self, what: &str) -> Error {
        match self {
            Error::Corrupt(m) => Error::Corrupt(format!("{m} (reading {what})")),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
